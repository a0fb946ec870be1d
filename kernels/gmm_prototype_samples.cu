// gmm_prototype_samples on CUDA: per-prototype sample counts from nearest-prototype statistics
// (float64, as the reference), then N unit-norm noisy prototype copies grouped by prototype.
// Contract: tusk/ops/reference/gmm_prototype_samples.py; integer bookkeeping: tusk/gmm.h.
//
// Forward, four launches, no host synchronisation (N, M, C are shapes):
//  1. nearest  one warp per feature: lanes over prototypes, squared distances in float64,
//              warp argmin (ties to the lower index, NaN wins as in torch.argmin); then the
//              feature's mean squared deviation from its prototype (lanes over channels).
//  2. stats    one block per prototype: count and summed deviation of its features (fixed-tree
//              block reductions) -> spread (1 for an empty prototype).
//  3. counts   one block: variance of the spreads, smoothed shares, largest-remainder counts
//              (rank of each fractional part by counting, ties to the lower index), cumulative
//              counts.
//  4. samples  one warp per sample: its prototype by binary search in the cumulative counts
//              (= torch.searchsorted(right=True)), prototype + noise, L2-normalised
//              (x / max(|x|, 1e-12), as F.normalize).
// Backward: one warp per sample forms d normalize / d x (grad - y (y . grad)) / |x| in float32
// (float64 for float64) scratch; then one block per (prototype, 32 channels) sums its samples'
// rows in a fixed order (8 warps over samples, then the 8 partials in order): deterministic.
#include "cuda_utils.cuh"
#include "tusk/cuda/gmm_prototype_samples.h"
#include "tusk/gmm.h"
#include "tusk/workspace.h"

namespace tusk {
namespace cuda {
namespace {

constexpr double kNormEps = 1e-12;  // F.normalize's eps
constexpr int kCountThreads = 1024;
constexpr int kSegmentWarps = 8;

// (distance, index) order of torch.argmin: NaN first, then smaller distance, then lower index.
__device__ __forceinline__ bool nearer(double d, int64_t m, double best_d, int64_t best_m) {
  const bool nan_d = is_nan(d), nan_best = is_nan(best_d);
  if (nan_d || nan_best) return nan_d && (!nan_best || m < best_m);
  return d < best_d || (d == best_d && m < best_m);
}

template <typename scalar_t>
__global__ void nearest_kernel(const scalar_t* __restrict__ prototypes,
                               const scalar_t* __restrict__ features, int64_t count,
                               int64_t points, int64_t channels, int64_t* __restrict__ nearest,
                               double* __restrict__ deviation) {
  const int lane = threadIdx.x % kWarp;
  for (int64_t i = global_warp(); i < points; i += global_warps()) {
    const scalar_t* f = features + i * channels;
    double best_d = INFINITY;
    int64_t best_m = INT64_MAX;
    for (int64_t m = lane; m < count; m += kWarp) {
      const scalar_t* q = prototypes + m * channels;
      double d = 0;
      for (int64_t c = 0; c < channels; ++c) {
        const double diff = static_cast<double>(load(f + c)) - static_cast<double>(load(q + c));
        d += diff * diff;
      }
      if (nearer(d, m, best_d, best_m)) {
        best_d = d;
        best_m = m;
      }
    }
#pragma unroll
    for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
      const double other_d = __shfl_xor_sync(kFullMask, best_d, offset);
      const int64_t other_m = __shfl_xor_sync(kFullMask, best_m, offset);
      if (nearer(other_d, other_m, best_d, best_m)) {
        best_d = other_d;
        best_m = other_m;
      }
    }
    // Every lane now holds the same winner (count >= 1, so best_m is a real prototype).
    const scalar_t* q = prototypes + best_m * channels;
    double dev = 0;
    for (int64_t c = lane; c < channels; c += kWarp) {
      const double diff = static_cast<double>(load(f + c)) - static_cast<double>(load(q + c));
      dev += diff * diff;
    }
    dev = warp_sum(dev);
    if (lane == 0) {
      nearest[i] = best_m;
      deviation[i] = dev / static_cast<double>(channels);
    }
  }
}

__global__ void stats_kernel(const int64_t* __restrict__ nearest,
                             const double* __restrict__ deviation, int64_t count, int64_t points,
                             double* __restrict__ counts, double* __restrict__ spread) {
  __shared__ double scratch[kWarp];
  for (int64_t m = blockIdx.x; m < count; m += gridDim.x) {
    double n = 0, dev = 0;
    for (int64_t i = threadIdx.x; i < points; i += blockDim.x) {
      if (nearest[i] == m) {
        n += 1;
        dev += deviation[i];
      }
    }
    n = block_sum(n, scratch);
    dev = block_sum(dev, scratch);
    if (threadIdx.x == 0) {
      counts[m] = n;
      spread[m] = n > 0 ? dev / n : 1.0;
    }
  }
}

__global__ void __launch_bounds__(kCountThreads)
    counts_kernel(const double* __restrict__ counts, const double* __restrict__ spread,
                  int64_t count, int64_t points, double smoothing, double* __restrict__ fraction,
                  double* __restrict__ base, int64_t* __restrict__ cumulative) {
  __shared__ double scratch[kWarp];
  const double m_count = static_cast<double>(count), n = static_cast<double>(points);
  double sum = 0;
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) sum += spread[m];
  const double mean = block_sum(sum, scratch) / m_count;
  double sq = 0;
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    const double d = spread[m] - mean;
    sq += d * d;
  }
  const double variance = block_sum(sq, scratch) / m_count;  // population variance
  double total = 0;
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    total += counts[m] + n * (smoothing + variance);
  }
  total = block_sum(total, scratch);
  double base_sum = 0;
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    const double quota = (counts[m] + n * (smoothing + variance)) / total * n;
    base[m] = floor(quota);
    fraction[m] = quota - base[m];
    base_sum += base[m];
  }
  const double remainder = n - block_sum(base_sum, scratch);  // ends with a barrier: fraction visible
  // Final counts, stored in `cumulative` first, then prefix-summed in place by one thread (M is
  // the number of prototypes: small).
  for (int64_t m = threadIdx.x; m < count; m += blockDim.x) {
    const int64_t rank = remainder_rank(fraction, count, m);
    cumulative[m] = static_cast<int64_t>(base[m]) + (static_cast<double>(rank) < remainder ? 1 : 0);
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    int64_t running = 0;
    for (int64_t m = 0; m < count; ++m) {
      running += cumulative[m];
      cumulative[m] = running;
    }
  }
}

template <typename scalar_t>
__global__ void samples_kernel(const scalar_t* __restrict__ prototypes,
                               const scalar_t* __restrict__ noise,
                               const int64_t* __restrict__ cumulative, int64_t count,
                               int64_t points, int64_t channels, scalar_t* __restrict__ samples,
                               int64_t* __restrict__ assignment) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  for (int64_t i = global_warp(); i < points; i += global_warps()) {
    const int64_t m = prototype_of_sample(cumulative, count, i);
    const scalar_t* q = prototypes + m * channels;
    const scalar_t* e = noise + i * channels;
    acc sq = 0;
    for (int64_t c = lane; c < channels; c += kWarp) {
      const acc v = load(q + c) + load(e + c);
      sq += v * v;
    }
    const acc denom = max_value(sqrt_value(warp_sum(sq)), static_cast<acc>(kNormEps));
    for (int64_t c = lane; c < channels; c += kWarp) {
      samples[i * channels + c] = from_acc<scalar_t>((load(q + c) + load(e + c)) / denom);
    }
    if (lane == 0) assignment[i] = m;
  }
}

template <typename scalar_t>
__global__ void sample_grad_kernel(const scalar_t* __restrict__ grad,
                                   const scalar_t* __restrict__ prototypes,
                                   const scalar_t* __restrict__ noise,
                                   const int64_t* __restrict__ assignment, int64_t count,
                                   int64_t points, int64_t channels,
                                   acc_t<scalar_t>* __restrict__ grad_v) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  for (int64_t i = global_warp(); i < points; i += global_warps()) {
    const int64_t m = assignment[i];
    acc* out = grad_v + i * channels;
    if (m < 0 || m >= count) {  // not from the forward: contributes nothing, never read out of range
      for (int64_t c = lane; c < channels; c += kWarp) out[c] = 0;
      continue;
    }
    const scalar_t* q = prototypes + m * channels;
    const scalar_t* e = noise + i * channels;
    const scalar_t* g = grad + i * channels;
    acc sq = 0, vg = 0;
    for (int64_t c = lane; c < channels; c += kWarp) {
      const acc v = load(q + c) + load(e + c);
      sq += v * v;
      vg += v * load(g + c);
    }
    const acc norm = sqrt_value(warp_sum(sq));
    vg = warp_sum(vg);
    const acc eps = static_cast<acc>(kNormEps);
    for (int64_t c = lane; c < channels; c += kWarp) {
      out[c] = normalize_grad(load(q + c) + load(e + c), load(g + c), norm, vg, eps);
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kSegmentWarps * kWarp)
    prototype_sum_kernel(const acc_t<scalar_t>* __restrict__ grad_v,
                         const int64_t* __restrict__ assignment, int64_t count, int64_t points,
                         int64_t channels, scalar_t* __restrict__ grad_prototypes) {
  using acc = acc_t<scalar_t>;
  __shared__ acc partial[kSegmentWarps][kWarp];
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int64_t channel_tiles = ceil_div(channels, kWarp);
  for (int64_t block = blockIdx.x; block < count * channel_tiles; block += gridDim.x) {
    const int64_t m = block / channel_tiles, c = (block % channel_tiles) * kWarp + lane;
    acc v = 0;
    for (int64_t i = warp; i < points; i += kSegmentWarps) {
      if (assignment[i] == m && c < channels) v += grad_v[i * channels + c];
    }
    partial[warp][lane] = v;
    __syncthreads();
    if (warp == 0 && c < channels) {
      acc total = 0;
      for (int w = 0; w < kSegmentWarps; ++w) total += partial[w][lane];
      grad_prototypes[m * channels + c] = from_acc<scalar_t>(total);
    }
    __syncthreads();
  }
}

struct ForwardWorkspace {
  int64_t* nearest;
  double* deviation;
  double* counts;
  double* spread;
  double* fraction;
  double* base;
  int64_t* cumulative;
  uint64_t bytes;
};

ForwardWorkspace forward_workspace(void* base_ptr, int64_t count, int64_t points) {
  WorkspaceLayout layout(base_ptr);
  ForwardWorkspace ws;
  ws.nearest = layout.take<int64_t>(points);
  ws.deviation = layout.take<double>(points);
  ws.counts = layout.take<double>(count);
  ws.spread = layout.take<double>(count);
  ws.fraction = layout.take<double>(count);
  ws.base = layout.take<double>(count);
  ws.cumulative = layout.take<int64_t>(count);
  ws.bytes = layout.used;
  return ws;
}

bool sizes_ok(int64_t count, int64_t points, int64_t channels) {
  return count >= 1 && points >= 0 && channels >= 1;
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

extern "C" size_t tusk_gmm_prototype_samples_workspace_bytes(int64_t count, int64_t points) {
  if (count < 1 || points < 0) return 0;
  return forward_workspace(nullptr, count, points).bytes;
}

extern "C" cudaError_t tusk_gmm_prototype_samples_forward(
    tusk_dtype dtype, const void* prototypes, const void* features, const void* noise,
    int64_t count, int64_t points, int64_t channels, double smoothing, void* samples,
    int64_t* assignment, void* workspace, cudaStream_t stream) {
  if (!sizes_ok(count, points, channels) || !(smoothing >= 0)) return cudaErrorInvalidValue;
  if (points == 0) return cudaSuccess;
  const ForwardWorkspace ws = forward_workspace(workspace, count, points);
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    const scalar_t* protos = static_cast<const scalar_t*>(prototypes);
    nearest_kernel<scalar_t><<<blocks_for(points * kWarp), kThreads, 0, stream>>>(
        protos, static_cast<const scalar_t*>(features), count, points, channels, ws.nearest,
        ws.deviation);
    stats_kernel<<<static_cast<unsigned>(min_value(count, kMaxBlocks)), kThreads, 0, stream>>>(
        ws.nearest, ws.deviation, count, points, ws.counts, ws.spread);
    counts_kernel<<<1, kCountThreads, 0, stream>>>(ws.counts, ws.spread, count, points, smoothing,
                                                   ws.fraction, ws.base, ws.cumulative);
    samples_kernel<scalar_t><<<blocks_for(points * kWarp), kThreads, 0, stream>>>(
        protos, static_cast<const scalar_t*>(noise), ws.cumulative, count, points, channels,
        static_cast<scalar_t*>(samples), assignment);
  });
  return launch_status();
}

extern "C" size_t tusk_gmm_prototype_samples_backward_workspace_bytes(tusk_dtype dtype,
                                                                      int64_t points,
                                                                      int64_t channels) {
  if (points < 0 || channels < 0) return 0;
  return static_cast<size_t>(points * channels) * (dtype == TUSK_FLOAT64 ? 8 : 4);
}

extern "C" cudaError_t tusk_gmm_prototype_samples_backward(
    tusk_dtype dtype, const void* grad, const void* prototypes, const void* noise,
    const int64_t* assignment, int64_t count, int64_t points, int64_t channels,
    void* grad_prototypes, void* workspace, cudaStream_t stream) {
  if (!sizes_ok(count, points, channels)) return cudaErrorInvalidValue;
  if (points == 0) {
    return cudaMemsetAsync(grad_prototypes, 0,
                           static_cast<size_t>(count * channels) * tusk_dtype_size(dtype), stream);
  }
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    acc* grad_v = static_cast<acc*>(workspace);
    sample_grad_kernel<scalar_t><<<blocks_for(points * kWarp), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(grad), static_cast<const scalar_t*>(prototypes),
        static_cast<const scalar_t*>(noise), assignment, count, points, channels, grad_v);
    const int64_t blocks = min_value(count * ceil_div(channels, kWarp), kMaxBlocks);
    prototype_sum_kernel<scalar_t><<<static_cast<unsigned>(blocks), kSegmentWarps * kWarp, 0,
                                     stream>>>(grad_v, assignment, count, points, channels,
                                               static_cast<scalar_t*>(grad_prototypes));
  });
  return launch_status();
}
