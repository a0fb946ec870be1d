// splat_gaussians on the CPU: keypoint descriptors [B,K,C] rendered as truncated Gaussians.
//
// Only each keypoint's (2r+1)^2 window (clipped to the image) is touched; the Gaussian is
// separable, G(p) = gx(p.x) gy(p.y), so a window costs (wx + wy) exponentials and its sum is
// (sum gx)(sum gy). kernels/include/tusk/gaussian_window.h holds the window convention.
//
// Forward: the window factors of every keypoint are computed once (normalisation and weight
// folded into gx) and reused by all C channels. reduce="sum" runs one task per (batch, channel)
// plane that zeroes the plane and adds the keypoints in order -- deterministic, no atomics, and
// no [B,K,C,H,W] or [B,K,H,W] intermediate. reduce="none" is dense by definition: one task per
// (b, k, c) plane. Large outputs come from the buffer pool (no page faults per call) and are
// written with streaming stores.
// Backward: one task per keypoint reads its window of the cotangent once per channel and
// produces that keypoint's grad_descriptors [C], grad_weights and grad_xy (through the Gaussian
// and through the normalisation); every output element has one writer.
#include <cstring>
#include <vector>

#include "common.h"
#include "memory/cpu_buffer_pool.h"
#include "stream_store.h"
#include "tusk/gaussian_window.h"

namespace tusk {
namespace {

// Planes up to this size are rendered in an L2-resident scratch buffer before being streamed out.
constexpr int64_t kScratchPlaneBytes = int64_t(256) << 10;

struct SplatShape {
  int64_t B, K, C, H, W;
  int64_t radius;
  double variance;
  bool normalize, reduce_sum;
  // Fixed per-keypoint stride of the factor buffer: max window extent along x, then y.
  int64_t extent_x() const { return max_window_extent(radius, W); }
  int64_t extent_y() const { return max_window_extent(radius, H); }
};

// Per keypoint: its window and the factors fx (times weight / window sum) and fy, so that the
// keypoint's map is fx[i] * fy[j] on the window. A keypoint whose normalised window sums to 0
// gets an empty window.
template <typename scalar_t>
void window_factors(const SplatShape& s, const scalar_t* xy, const scalar_t* weights,
                    std::vector<GaussianWindow>& windows, std::vector<acc_t<scalar_t>>& factors) {
  using acc = acc_t<scalar_t>;
  const int64_t ex = s.extent_x(), ey = s.extent_y(), stride = ex + ey;
  const acc inv_two_variance = static_cast<acc>(0.5 / s.variance);
  at::parallel_for(0, s.B * s.K, grain_for(8 * stride), [&](int64_t begin, int64_t end) {
    for (int64_t bk = begin; bk < end; ++bk) {
      const scalar_t x = xy[2 * bk], y = xy[2 * bk + 1];
      GaussianWindow window = gaussian_window<scalar_t>(x, y, s.H, s.W, s.radius);
      if (!window.empty()) {
        acc* fx = factors.data() + bk * stride;
        acc* fy = fx + ex;
        const acc sum_x = gaussian_factors<acc>(x, window.x0, window.width(), inv_two_variance, fx);
        const acc sum_y = gaussian_factors<acc>(y, window.y0, window.height(), inv_two_variance, fy);
        acc scale = weights == nullptr ? acc(1) : static_cast<acc>(weights[bk]);
        if (s.normalize) {
          const acc total = sum_x * sum_y;
          if (total > acc(0)) {
            scale /= total;
          } else {
            window = GaussianWindow{0, 0, 0, 0};  // a zero sum splats nothing
          }
        }
        for (int64_t i = 0; i < window.width(); ++i) fx[i] *= scale;
      }
      windows[bk] = window;
    }
  });
}

// Renders one output plane: zero it, then add (reduce="sum") or write (reduce="none") the
// windows of keypoints [k_begin, k_end) of image b, channel c.
template <typename scalar_t>
void render_plane(const SplatShape& s, const scalar_t* descriptors,
                  const std::vector<GaussianWindow>& windows,
                  const std::vector<acc_t<scalar_t>>& factors, int64_t b, int64_t c,
                  int64_t k_begin, int64_t k_end, scalar_t* plane) {
  using acc = acc_t<scalar_t>;
  const int64_t ex = s.extent_x(), stride = ex + s.extent_y();
  std::memset(plane, 0, sizeof(scalar_t) * s.H * s.W);
  for (int64_t k = k_begin; k < k_end; ++k) {
    const int64_t bk = b * s.K + k;
    const GaussianWindow& window = windows[bk];
    if (window.empty()) continue;
    const acc* fx = factors.data() + bk * stride;
    const acc* fy = fx + ex;
    const acc coeff = descriptors[bk * s.C + c];
    for (int64_t j = 0; j < window.height(); ++j) {
      const acc row_coeff = coeff * fy[j];
      scalar_t* row = plane + (window.y0 + j) * s.W + window.x0;
      for (int64_t i = 0; i < window.width(); ++i) {
        row[i] = static_cast<scalar_t>(row[i] + row_coeff * fx[i]);
      }
    }
  }
}

// One task per output plane ((b, c) for "sum", (b, k, c) for "none"), so every output element
// has one writer and keypoints are added in a fixed order. A plane that fits in L2 is rendered
// in a scratch buffer and copied out with streaming stores when the output is large: the output
// is then written once, without first being read into the caches (the [32,32,112,112] CLEVR
// map: 49 MB written instead of 98 MB moved).
template <typename scalar_t>
void forward_kernel(const SplatShape& s, const scalar_t* descriptors,
                    const std::vector<GaussianWindow>& windows,
                    const std::vector<acc_t<scalar_t>>& factors, scalar_t* out) {
  const int64_t plane_size = s.H * s.W;
  const int64_t planes = s.reduce_sum ? s.B * s.C : s.B * s.K * s.C;
  const int64_t keypoints_per_plane = s.reduce_sum ? s.K : 1;
  const int64_t bytes = planes * plane_size * static_cast<int64_t>(sizeof(scalar_t));
  const bool stream = bytes >= kStreamBytes && plane_size * static_cast<int64_t>(sizeof(scalar_t)) <= kScratchPlaneBytes;
  const int64_t window_cost = keypoints_per_plane * s.extent_x() * s.extent_y();
  at::parallel_for(0, planes, grain_for(plane_size + window_cost), [&](int64_t begin, int64_t end) {
    std::vector<scalar_t> scratch(stream ? plane_size : 0);
    for (int64_t plane = begin; plane < end; ++plane) {
      const int64_t c = plane % s.C;
      // "sum": plane = b*C + c holds all K keypoints of image b; "none": plane = (b*K + k)*C + c.
      const int64_t b = s.reduce_sum ? plane / s.C : plane / (s.K * s.C);
      const int64_t k_begin = s.reduce_sum ? 0 : (plane / s.C) % s.K;
      scalar_t* target = stream ? scratch.data() : out + plane * plane_size;
      render_plane<scalar_t>(s, descriptors, windows, factors, b, c, k_begin,
                             k_begin + keypoints_per_plane, target);
      if (stream) write_row(out + plane * plane_size, target, plane_size, true);
    }
    if (stream) stream_fence();
  });
}

// Backward prefetching: how many channel planes ahead, for windows of at most kPrefetchRows rows.
constexpr int64_t kPrefetchPlanes = 6;
constexpr int64_t kPrefetchRows = 8;

// Gradients of one keypoint. With G = gx gy / S (S = window sum, or 1 without normalize),
// per channel t_c = sum_p gx gy grad_c, u_c = sum_p gx gy (p.x - x - mx) grad_c, v_c likewise
// in y, mx = sum_i gx_i (x_i - x) / sum gx (the normalisation's term; 0 without normalize):
//   grad_descriptors_c = w t_c / S,   grad_weight = sum_c d_c t_c / S,
//   grad_x = w / (S variance) * sum_c d_c u_c,   and grad_y likewise.
// The offsets are centred on mx before the sums, not sum_c d_c (u_c - mx t_c) after: on a
// clipped window the two terms nearly cancel and the exact gradient is ~0.
template <typename scalar_t>
void backward_kernel(const SplatShape& s, const scalar_t* grad, const scalar_t* xy,
                     const scalar_t* descriptors, const scalar_t* weights, scalar_t* grad_xy,
                     scalar_t* grad_descriptors, scalar_t* grad_weights) {
  using acc = acc_t<scalar_t>;
  const int64_t ex = s.extent_x(), ey = s.extent_y(), plane_size = s.H * s.W;
  const acc inv_two_variance = static_cast<acc>(0.5 / s.variance);
  const acc inv_variance = static_cast<acc>(1.0 / s.variance);
  at::parallel_for(0, s.B * s.K, grain_for(3 * s.C * ex * ey + 16 * (ex + ey)), [&](int64_t begin, int64_t end) {
    // gx, gx * (x_i - x), gy, gy * (y_j - y) for the current keypoint.
    std::vector<acc> buffer(2 * (ex + ey));
    acc* gx = buffer.data();
    acc* gx_dx = gx + ex;
    acc* gy = gx_dx + ex;
    acc* gy_dy = gy + ey;
    for (int64_t bk = begin; bk < end; ++bk) {
      const int64_t b = bk / s.K;
      const scalar_t x = xy[2 * bk], y = xy[2 * bk + 1];
      const GaussianWindow window = gaussian_window<scalar_t>(x, y, s.H, s.W, s.radius);
      acc sum_x = 0, sum_y = 0, total = 0;
      if (!window.empty()) {
        sum_x = gaussian_factors<acc>(x, window.x0, window.width(), inv_two_variance, gx);
        sum_y = gaussian_factors<acc>(y, window.y0, window.height(), inv_two_variance, gy);
        total = sum_x * sum_y;
      }
      if (window.empty() || (s.normalize && !(total > acc(0)))) {  // splats nothing
        if (grad_descriptors) std::fill_n(grad_descriptors + bk * s.C, s.C, scalar_t(0));
        if (grad_weights) grad_weights[bk] = scalar_t(0);
        if (grad_xy) grad_xy[2 * bk] = grad_xy[2 * bk + 1] = scalar_t(0);
        continue;
      }
      acc mean_dx = 0, mean_dy = 0;
      if (s.normalize) {
        for (int64_t i = 0; i < window.width(); ++i) {
          mean_dx += gx[i] * (static_cast<acc>(window.x0 + i) - static_cast<acc>(x));
        }
        for (int64_t j = 0; j < window.height(); ++j) {
          mean_dy += gy[j] * (static_cast<acc>(window.y0 + j) - static_cast<acc>(y));
        }
        mean_dx /= sum_x;
        mean_dy /= sum_y;
      }
      for (int64_t i = 0; i < window.width(); ++i) {
        gx_dx[i] = gx[i] * (static_cast<acc>(window.x0 + i) - static_cast<acc>(x) - mean_dx);
      }
      for (int64_t j = 0; j < window.height(); ++j) {
        gy_dy[j] = gy[j] * (static_cast<acc>(window.y0 + j) - static_cast<acc>(y) - mean_dy);
      }
      const acc inv_total = s.normalize ? acc(1) / total : acc(1);
      const acc w = weights == nullptr ? acc(1) : static_cast<acc>(weights[bk]);
      const scalar_t* d = descriptors + bk * s.C;
      acc sum_dt = 0, sum_du = 0, sum_dv = 0;
      const scalar_t* first_plane =
          grad + (s.reduce_sum ? b * s.C : bk * s.C) * plane_size + window.y0 * s.W + window.x0;
      const bool prefetch = window.height() <= kPrefetchRows;
      for (int64_t c = 0; c < s.C; ++c) {
        const scalar_t* plane = first_plane + c * plane_size;
        // The window rows of one plane are a few scattered cache lines, a miss each when the
        // cotangent is not cached (the usual case: the forward output and the decoder ran in
        // between). Requesting them kPrefetchPlanes channels ahead overlaps those misses.
        if (prefetch && c + kPrefetchPlanes < s.C) {
          const scalar_t* ahead = plane + kPrefetchPlanes * plane_size;
          for (int64_t j = 0; j < window.height(); ++j) {
            __builtin_prefetch(ahead + j * s.W);
            __builtin_prefetch(ahead + j * s.W + window.width() - 1);
          }
        }
        acc t = 0, u = 0, v = 0;
        for (int64_t j = 0; j < window.height(); ++j) {
          const scalar_t* row = plane + j * s.W;
          acc row_t = 0, row_u = 0;
          for (int64_t i = 0; i < window.width(); ++i) {
            const acc g = row[i];
            row_t += gx[i] * g;
            row_u += gx_dx[i] * g;
          }
          t += gy[j] * row_t;
          u += gy[j] * row_u;
          v += gy_dy[j] * row_t;
        }
        if (grad_descriptors) grad_descriptors[bk * s.C + c] = static_cast<scalar_t>(w * t * inv_total);
        const acc dc = d[c];
        sum_dt += dc * t;
        sum_du += dc * u;
        sum_dv += dc * v;
      }
      if (grad_weights) grad_weights[bk] = static_cast<scalar_t>(sum_dt * inv_total);
      if (grad_xy) {
        const acc scale = w * inv_total * inv_variance;
        grad_xy[2 * bk] = static_cast<scalar_t>(scale * sum_du);
        grad_xy[2 * bk + 1] = static_cast<scalar_t>(scale * sum_dv);
      }
    }
  });
}

SplatShape check_inputs(const at::Tensor& xy, const at::Tensor& descriptors,
                        const std::optional<at::Tensor>& weights, int64_t height, int64_t width,
                        double variance, int64_t radius, bool normalize, c10::string_view reduce) {
  check_float_tensor(xy, "xy", 3);
  check_float_tensor(descriptors, "descriptors", 3);
  check_cpu(xy, "xy");
  check_cpu(descriptors, "descriptors");
  check_same_dtype(xy, descriptors, "xy", "descriptors");
  TORCH_CHECK(xy.size(2) == 2, "xy must be [B,K,2], got ", xy.sizes());
  TORCH_CHECK(descriptors.size(0) == xy.size(0) && descriptors.size(1) == xy.size(1),
              "descriptors must be [B,K,C] with B,K of xy ", xy.sizes(), ", got ",
              descriptors.sizes());
  if (weights.has_value()) {
    check_float_tensor(*weights, "weights", 2);
    check_cpu(*weights, "weights");
    check_same_dtype(xy, *weights, "xy", "weights");
    TORCH_CHECK(weights->size(0) == xy.size(0) && weights->size(1) == xy.size(1),
                "weights must be [B,K] with B,K of xy ", xy.sizes(), ", got ", weights->sizes());
  }
  TORCH_CHECK(height > 0 && width > 0, "height and width must be > 0, got ", height, " x ", width);
  TORCH_CHECK(variance > 0 && std::isfinite(variance), "variance must be finite and > 0, got ",
              variance);
  TORCH_CHECK(radius >= 0, "radius must be >= 0, got ", radius);
  TORCH_CHECK(reduce == "sum" || reduce == "none", "reduce must be 'sum' or 'none', got '",
              std::string(reduce), "'");
  return SplatShape{xy.size(0), xy.size(1), descriptors.size(2), height, width, radius,
                    variance, normalize, reduce == "sum"};
}

at::Tensor maybe_contiguous(const std::optional<at::Tensor>& t) {
  return t.has_value() ? t->contiguous() : at::Tensor();
}

}  // namespace

at::Tensor splat_gaussians_cpu(const at::Tensor& xy_in, const at::Tensor& descriptors_in,
                               const std::optional<at::Tensor>& weights_in, int64_t height,
                               int64_t width, double variance, int64_t radius, bool normalize,
                               c10::string_view reduce) {
  const SplatShape s = check_inputs(xy_in, descriptors_in, weights_in, height, width, variance,
                                    radius, normalize, reduce);
  const at::Tensor xy = xy_in.contiguous(), descriptors = descriptors_in.contiguous();
  const at::Tensor weights = maybe_contiguous(weights_in);
  const auto sizes = s.reduce_sum ? std::vector<int64_t>{s.B, s.C, s.H, s.W}
                                  : std::vector<int64_t>{s.B, s.K, s.C, s.H, s.W};
  // The output is the big allocation (49 MB at the CLEVR config): from the buffer pool, so a
  // training loop does not page-fault a fresh one in every step.
  at::Tensor out = empty_pooled(sizes, descriptors.scalar_type());
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "splat_gaussians_cpu", [&] {
    std::vector<GaussianWindow> windows(s.B * s.K);
    std::vector<acc_t<scalar_t>> factors(s.B * s.K * (s.extent_x() + s.extent_y()));
    window_factors<scalar_t>(s, xy.data_ptr<scalar_t>(),
                             weights.defined() ? weights.data_ptr<scalar_t>() : nullptr, windows,
                             factors);
    forward_kernel<scalar_t>(s, descriptors.data_ptr<scalar_t>(), windows, factors,
                             out.data_ptr<scalar_t>());
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> splat_gaussians_backward_cpu(
    const at::Tensor& grad_in, const at::Tensor& xy_in, const at::Tensor& descriptors_in,
    const std::optional<at::Tensor>& weights_in, int64_t height, int64_t width, double variance,
    int64_t radius, bool normalize, c10::string_view reduce, std::array<bool, 3> output_mask) {
  const SplatShape s = check_inputs(xy_in, descriptors_in, weights_in, height, width, variance,
                                    radius, normalize, reduce);
  check_cpu(grad_in, "grad");
  check_same_dtype(xy_in, grad_in, "xy", "grad");
  const auto expected = s.reduce_sum ? std::vector<int64_t>{s.B, s.C, s.H, s.W}
                                     : std::vector<int64_t>{s.B, s.K, s.C, s.H, s.W};
  TORCH_CHECK(grad_in.sizes() == at::IntArrayRef(expected), "grad must have shape ",
              at::IntArrayRef(expected), ", got ", grad_in.sizes());
  const at::Tensor xy = xy_in.contiguous(), descriptors = descriptors_in.contiguous();
  const at::Tensor weights = maybe_contiguous(weights_in), grad = grad_in.contiguous();
  const bool want_weights = output_mask[2] && weights.defined();
  at::Tensor grad_xy = output_mask[0] ? at::empty_like(xy) : xy.new_empty({0});
  at::Tensor grad_descriptors =
      output_mask[1] ? at::empty_like(descriptors) : descriptors.new_empty({0});
  at::Tensor grad_weights = want_weights ? at::empty_like(weights) : xy.new_empty({0});
  if (s.B * s.K == 0 || !(output_mask[0] || output_mask[1] || want_weights)) {
    return {grad_xy, grad_descriptors, grad_weights};
  }
  AT_DISPATCH_FLOATING_TYPES(xy.scalar_type(), "splat_gaussians_backward_cpu", [&] {
    backward_kernel<scalar_t>(
        s, grad.data_ptr<scalar_t>(), xy.data_ptr<scalar_t>(), descriptors.data_ptr<scalar_t>(),
        weights.defined() ? weights.data_ptr<scalar_t>() : nullptr,
        output_mask[0] ? grad_xy.data_ptr<scalar_t>() : nullptr,
        output_mask[1] ? grad_descriptors.data_ptr<scalar_t>() : nullptr,
        want_weights ? grad_weights.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_xy, grad_descriptors, grad_weights};
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("splat_gaussians", &tusk::splat_gaussians_cpu);
  m.impl("splat_gaussians_backward", &tusk::splat_gaussians_backward_cpu);
}
