// gmm_prototype_samples on the CPU: TUSK's prototype GMM sampler in one kernel.
//
// Forward, following tusk/ops/reference/gmm_prototype_samples.py step by step:
//   1. nearest prototype of each feature (squared L2 in float64, ties to the lower index; a NaN
//      distance wins, as in torch.argmin), in parallel over features;
//   2. per-prototype counts and spreads, the smoothed float64 shares and the largest-remainder
//      integer counts (serial: O(N + M log M), and the order of every float64 sum is fixed);
//   3. assignment grouped by prototype index, samples = normalize(prototypes[a] + noise), in
//      parallel over samples.
// Non-finite inputs make the shares non-finite; then every sample is NaN and every assignment 0
// (NaN in, NaN out) instead of counts that would not sum to N.
//
// Backward: the normalisation backward per sample (parallel over samples), then the sum of the
// rows of each prototype, visited in sample order by tasks that own disjoint channel ranges:
// deterministic, no atomics.
#include <cmath>
#include <limits>
#include <numeric>

#include "common.h"

namespace tusk {
namespace {

// F.normalize's default eps: samples are v / max(|v|, eps).
constexpr double kNormEps = 1e-12;

// Nearest prototype of one feature (already in float64) and its squared distance. Each sum over
// channels runs in kLanes interleaved partial sums, combined in a fixed order: the compiler
// vectorises it, where one running sum per prototype is a serial chain (the whole forward took
// 52 us that way against 36 us now, one thread, N = 288, M = 10, C = 32).
constexpr int64_t kLanes = 4;

inline int64_t nearest_prototype(const double* feature, const double* protos, int64_t M, int64_t C,
                                 double* best_dist) {
  int64_t best = 0;
  double best_value = 0;
  for (int64_t m = 0; m < M; ++m) {
    const double* pm = protos + m * C;
    double lanes[kLanes] = {0, 0, 0, 0};
    int64_t c = 0;
    for (; c + kLanes <= C; c += kLanes) {
      for (int64_t j = 0; j < kLanes; ++j) {
        const double d = feature[c + j] - pm[c + j];
        lanes[j] += d * d;
      }
    }
    for (; c < C; ++c) {
      const double d = feature[c] - pm[c];
      lanes[0] += d * d;
    }
    const double dist = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
    if (std::isnan(dist)) {  // torch.argmin: the first NaN wins
      best = m;
      best_value = dist;
      break;
    }
    if (m == 0 || dist < best_value) {
      best = m;
      best_value = dist;
    }
  }
  *best_dist = best_value;
  return best;
}

// Steps 2 of the header: integer counts per prototype summing to N, or false when the shares
// are not finite.
bool prototype_counts(const int64_t* nearest, const double* deviation, int64_t N, int64_t M,
                      double smoothing, std::vector<int64_t>& counts) {
  std::vector<double> spread(M, 0.0), count(M, 0.0);
  for (int64_t n = 0; n < N; ++n) {
    count[nearest[n]] += 1.0;
    spread[nearest[n]] += deviation[n];
  }
  double mean = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    spread[m] = count[m] > 0 ? spread[m] / count[m] : 1.0;
    mean += spread[m];
  }
  mean /= static_cast<double>(M);
  double variance = 0.0;
  for (int64_t m = 0; m < M; ++m) variance += (spread[m] - mean) * (spread[m] - mean);
  variance /= static_cast<double>(M);

  const double n = static_cast<double>(N);
  std::vector<double> quota(M), fraction(M);
  double total = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    quota[m] = count[m] + n * (smoothing + variance);
    total += quota[m];
  }
  if (!std::isfinite(total) || !(total > 0)) return false;
  double assigned = 0.0;
  for (int64_t m = 0; m < M; ++m) {
    quota[m] = quota[m] / total * n;
    const double base = std::floor(quota[m]);
    fraction[m] = quota[m] - base;
    counts[m] = static_cast<int64_t>(base);
    assigned += base;
  }
  const double remainder = n - assigned;
  if (!(remainder >= 0 && remainder <= static_cast<double>(M))) return false;
  // One more sample to each of the `remainder` prototypes with the largest fractional parts,
  // ties to the lower index (a stable sort by descending fraction).
  std::vector<int64_t> order(M);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return fraction[a] > fraction[b]; });
  for (int64_t r = 0; r < static_cast<int64_t>(remainder); ++r) ++counts[order[r]];
  return true;
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& prototypes, const at::Tensor& features, const at::Tensor& noise,
                    double smoothing, at::Tensor& samples, at::Tensor& assignment) {
  using acc = acc_t<scalar_t>;
  const int64_t M = prototypes.size(0), C = prototypes.size(1), N = features.size(0);
  const scalar_t* p = prototypes.data_ptr<scalar_t>();
  const scalar_t* f = features.data_ptr<scalar_t>();
  const scalar_t* z = noise.data_ptr<scalar_t>();
  scalar_t* out = samples.data_ptr<scalar_t>();
  int64_t* a = assignment.data_ptr<int64_t>();

  std::vector<double> protos(p, p + M * C);  // float64 copy
  std::vector<int64_t> nearest(N);
  std::vector<double> deviation(N);
  at::parallel_for(0, N, grain_for(3 * M * C), [&](int64_t begin, int64_t end) {
    std::vector<double> feature(C);
    for (int64_t n = begin; n < end; ++n) {
      std::copy(f + n * C, f + (n + 1) * C, feature.begin());
      double best;
      nearest[n] = nearest_prototype(feature.data(), protos.data(), M, C, &best);
      deviation[n] = best / static_cast<double>(C);
    }
  });

  std::vector<int64_t> counts(M, 0);
  if (!prototype_counts(nearest.data(), deviation.data(), N, M, smoothing, counts)) {
    std::fill(a, a + N, int64_t(0));
    samples.fill_(std::numeric_limits<double>::quiet_NaN());
    return;
  }
  for (int64_t m = 0, i = 0; m < M; ++m)
    for (int64_t k = 0; k < counts[m]; ++k) a[i++] = m;

  // Twice the usual grain: split only when each thread gets kGrainFlops. At TUSK's sizes
  // (N = 288, C = 32: a few microseconds) waking the second thread costs more than it saves.
  at::parallel_for(0, N, 2 * grain_for(4 * C), [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* pm = p + a[n] * C;
      const scalar_t* zn = z + n * C;
      scalar_t* on = out + n * C;
      acc sq = 0;
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t v = pm[c] + zn[c];
        on[c] = v;
        sq += static_cast<acc>(v) * static_cast<acc>(v);
      }
      const acc inv = acc(1) / std::max(std::sqrt(sq), static_cast<acc>(kNormEps));
      for (int64_t c = 0; c < C; ++c) on[c] = static_cast<scalar_t>(on[c] * inv);
    }
  });
}

// grad_v[n] = d normalize(v_n) / d v_n applied to grad[n], v_n = prototypes[a[n]] + noise[n].
template <typename scalar_t>
void normalize_backward_kernel(const at::Tensor& grad, const at::Tensor& prototypes,
                               const at::Tensor& noise, const at::Tensor& assignment,
                               at::Tensor& grad_v) {
  using acc = acc_t<scalar_t>;
  const int64_t C = prototypes.size(1), N = noise.size(0);
  const scalar_t* g = grad.data_ptr<scalar_t>();
  const scalar_t* p = prototypes.data_ptr<scalar_t>();
  const scalar_t* z = noise.data_ptr<scalar_t>();
  const int64_t* a = assignment.data_ptr<int64_t>();
  scalar_t* gv = grad_v.data_ptr<scalar_t>();
  at::parallel_for(0, N, 2 * grain_for(6 * C), [&](int64_t begin, int64_t end) {  // see forward
    for (int64_t n = begin; n < end; ++n) {
      const scalar_t* pm = p + a[n] * C;
      const scalar_t* zn = z + n * C;
      const scalar_t* gn = g + n * C;
      scalar_t* out = gv + n * C;
      acc sq = 0, dot = 0;
      for (int64_t c = 0; c < C; ++c) {
        const acc v = static_cast<acc>(pm[c] + zn[c]);
        sq += v * v;
        dot += v * static_cast<acc>(gn[c]);
      }
      const acc norm = std::sqrt(sq);
      if (norm >= static_cast<acc>(kNormEps)) {
        // (g - s (s.g)) / |v| with s = v / |v|.
        const acc inv = acc(1) / norm;
        const acc coef = dot * inv * inv * inv;
        for (int64_t c = 0; c < C; ++c) {
          const acc v = static_cast<acc>(pm[c] + zn[c]);
          out[c] = static_cast<scalar_t>(static_cast<acc>(gn[c]) * inv - v * coef);
        }
      } else {  // the clamp is active: v / eps is linear in v
        const acc inv = acc(1) / static_cast<acc>(kNormEps);
        for (int64_t c = 0; c < C; ++c) out[c] = static_cast<scalar_t>(static_cast<acc>(gn[c]) * inv);
      }
    }
  });
}

// grad_prototypes[m] = sum of grad_v over the samples of prototype m, in sample order.
template <typename scalar_t>
void sum_by_prototype_kernel(const at::Tensor& grad_v, const at::Tensor& assignment,
                             at::Tensor& grad_prototypes) {
  using acc = acc_t<scalar_t>;
  const int64_t M = grad_prototypes.size(0), C = grad_prototypes.size(1), N = grad_v.size(0);
  const scalar_t* gv = grad_v.data_ptr<scalar_t>();
  const int64_t* a = assignment.data_ptr<int64_t>();
  scalar_t* gp = grad_prototypes.data_ptr<scalar_t>();
  // Tasks own channel ranges, so each output element has one writer.
  at::parallel_for(0, C, grain_for(2 * (N + M)), [&](int64_t begin, int64_t end) {
    const int64_t width = end - begin;
    std::vector<acc> sums(M * width, acc(0));
    for (int64_t n = 0; n < N; ++n) {
      const scalar_t* row = gv + n * C + begin;
      acc* dst = sums.data() + a[n] * width;
      for (int64_t c = 0; c < width; ++c) dst[c] += static_cast<acc>(row[c]);
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < width; ++c) gp[m * C + begin + c] = static_cast<scalar_t>(sums[m * width + c]);
  });
}

void check_inputs(const at::Tensor& prototypes, const at::Tensor& noise) {
  check_float_tensor(prototypes, "prototypes", 2);
  check_float_tensor(noise, "noise", 2);
  check_cpu(prototypes, "prototypes");
  check_cpu(noise, "noise");
  check_same_dtype(prototypes, noise, "prototypes", "noise");
  TORCH_CHECK(prototypes.size(0) > 0 && prototypes.size(1) > 0,
              "prototypes must be [M, C] with M, C >= 1, got ", prototypes.sizes());
  TORCH_CHECK(noise.size(1) == prototypes.size(1), "noise must be [N, C] with C=", prototypes.size(1),
              ", got ", noise.sizes());
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> gmm_prototype_samples_cpu(const at::Tensor& prototypes_in,
                                                            const at::Tensor& features_in,
                                                            const at::Tensor& noise_in, double smoothing) {
  check_inputs(prototypes_in, noise_in);
  check_float_tensor(features_in, "features", 2);
  check_cpu(features_in, "features");
  check_same_dtype(prototypes_in, features_in, "prototypes", "features");
  TORCH_CHECK(features_in.sizes() == noise_in.sizes(), "features and noise must both be [N, C], got ",
              features_in.sizes(), " and ", noise_in.sizes());
  TORCH_CHECK(std::isfinite(smoothing) && smoothing >= 0, "smoothing must be finite and >= 0, got ",
              smoothing);
  const at::Tensor prototypes = prototypes_in.contiguous(), features = features_in.contiguous();
  const at::Tensor noise = noise_in.contiguous();
  at::Tensor samples = at::empty_like(noise);
  at::Tensor assignment = at::empty({noise.size(0)}, noise.options().dtype(at::kLong));
  if (noise.size(0) == 0) return {samples, assignment};
  AT_DISPATCH_FLOATING_TYPES(prototypes.scalar_type(), "gmm_prototype_samples_cpu", [&] {
    forward_kernel<scalar_t>(prototypes, features, noise, smoothing, samples, assignment);
  });
  return {samples, assignment};
}

at::Tensor gmm_prototype_samples_backward_cpu(const at::Tensor& grad_in, const at::Tensor& prototypes_in,
                                              const at::Tensor& noise_in, const at::Tensor& assignment_in) {
  check_inputs(prototypes_in, noise_in);
  check_cpu(grad_in, "grad");
  check_same_dtype(prototypes_in, grad_in, "prototypes", "grad");
  TORCH_CHECK(grad_in.sizes() == noise_in.sizes(), "grad must be [N, C] = ", noise_in.sizes(), ", got ",
              grad_in.sizes());
  TORCH_CHECK(assignment_in.scalar_type() == at::kLong && assignment_in.dim() == 1 &&
                  assignment_in.size(0) == noise_in.size(0),
              "assignment must be [N] int64 with N=", noise_in.size(0), ", got ", assignment_in.sizes(),
              " ", assignment_in.scalar_type());
  const at::Tensor prototypes = prototypes_in.contiguous(), noise = noise_in.contiguous();
  const at::Tensor grad = grad_in.contiguous(), assignment = assignment_in.contiguous();
  const int64_t M = prototypes.size(0);
  const int64_t* a = assignment.data_ptr<int64_t>();
  for (int64_t n = 0; n < assignment.size(0); ++n) {
    TORCH_CHECK(a[n] >= 0 && a[n] < M, "assignment values must lie in [0, ", M, "), got ", a[n]);
  }
  at::Tensor grad_prototypes = at::zeros_like(prototypes);
  if (noise.size(0) == 0) return grad_prototypes;
  at::Tensor grad_v = at::empty_like(noise);
  AT_DISPATCH_FLOATING_TYPES(prototypes.scalar_type(), "gmm_prototype_samples_backward_cpu", [&] {
    normalize_backward_kernel<scalar_t>(grad, prototypes, noise, assignment, grad_v);
    sum_by_prototype_kernel<scalar_t>(grad_v, assignment, grad_prototypes);
  });
  return grad_prototypes;
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("gmm_prototype_samples", &tusk::gmm_prototype_samples_cpu);
  m.impl("gmm_prototype_samples_backward", &tusk::gmm_prototype_samples_backward_cpu);
}
