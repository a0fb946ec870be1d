// alpha_composite on the CPU: softmax over K of alpha logits [B,K,1,H,W], blend of rgb
// [B,K,C,H,W] into image [B,C,H,W].
//
// Memory-bound, so both passes read every input once and write every output once: the work is
// split into blocks of pixels of one image (parallel over (batch, pixel block)); inside a block
// every loop runs over contiguous pixels (auto-vectorised, and compiled for AVX2 / AVX-512 too,
// see simd.h; softmax_exp.h keeps exp vectorisable), the softmax state (max, sum, alpha) and
// each output row are built in L1/L2-resident scratch, and rows of large outputs are written
// with streaming stores (stream_store.h).
// Backward recomputes the softmax instead of saving alpha:
//   grad_rgb_k = alpha_k grad_image,
//   grad_logits_k = alpha_k (g_k - sum_j alpha_j g_j),  g_k = <grad_image, rgb_k>_C + grad_alpha_k.
// grad_image / grad_alpha may be absent (an unused output): they count as zero and are not read.
// rgb and alpha_logits may be strided over (B, K, C) as long as each H x W plane is contiguous
// (e.g. channel slices of one decoder output [B, K, C+1, H, W]): no copy is made then.
#include <algorithm>
#include <vector>

#include "alpha_composite/softmax_exp.h"
#include "common.h"
#include "memory/cpu_buffer_pool.h"
#include "simd.h"
#include "stream_store.h"

namespace tusk {
namespace {

// Upper bound of pixels per block (stack scratch size); the block shrinks for large K so that
// the [K][block] scratch rows stay in L2 (kScratchElements per task).
constexpr int64_t kMaxBlock = 2048;
constexpr int64_t kScratchElements = 65536;

// Where the rows of the inputs are: row (b, k, c) of rgb starts at b*rgb_b + k*rgb_k + c*rgb_c,
// row (b, k) of the logits at b*logits_b + k*logits_k; every row holds HW contiguous pixels.
// Outputs and cotangents are contiguous.
struct CompositeShape {
  int64_t B, K, C, HW;
  int64_t rgb_b, rgb_k, rgb_c, logits_b, logits_k;
  int64_t block() const {
    const int64_t fit = (kScratchElements / (2 * K + C + 1)) / 64 * 64;
    return std::min(kMaxBlock, std::max<int64_t>(64, fit));
  }
  int64_t blocks_per_image() const { return (HW + block() - 1) / block(); }
};

// alpha[k][p] = exp(l[k][p] - max_k l) / sum for the n pixels of a block; logits rows are
// `stride` apart, alpha rows `alpha_stride`. m and s: scratch of n.
template <typename scalar_t, typename acc>
TUSK_INLINE_IN_CLONES void softmax_block(const scalar_t* __restrict__ logits, int64_t K,
                                         int64_t stride, int64_t n, acc* __restrict__ alpha,
                                         int64_t alpha_stride, acc* __restrict__ m,
                                         acc* __restrict__ s) {
  for (int64_t p = 0; p < n; ++p) m[p] = logits[p];
  for (int64_t k = 1; k < K; ++k) {
    const scalar_t* __restrict__ l = logits + k * stride;
    for (int64_t p = 0; p < n; ++p) m[p] = l[p] > m[p] ? static_cast<acc>(l[p]) : m[p];
  }
  for (int64_t p = 0; p < n; ++p) s[p] = acc(0);
  for (int64_t k = 0; k < K; ++k) {
    const scalar_t* __restrict__ l = logits + k * stride;
    acc* __restrict__ a = alpha + k * alpha_stride;
    for (int64_t p = 0; p < n; ++p) {
      const acc e = softmax_exp(static_cast<acc>(l[p]) - m[p]);
      a[p] = e;
      s[p] += e;
    }
  }
  for (int64_t p = 0; p < n; ++p) s[p] = acc(1) / s[p];
  for (int64_t k = 0; k < K; ++k) {
    acc* __restrict__ a = alpha + k * alpha_stride;
    for (int64_t p = 0; p < n; ++p) a[p] *= s[p];
  }
}

struct StreamOutputs {
  bool first, second;
};

// One block of n pixels of image b. Input pointers are at the block's first pixel of image b;
// output pointers likewise (contiguous [K or C][HW] rows). alpha: [K][block] scratch.
template <typename scalar_t>
TUSK_SIMD_CLONES void forward_block(const CompositeShape& s, const scalar_t* rgb,
                                    const scalar_t* logits, scalar_t* image, scalar_t* alpha_out,
                                    acc_t<scalar_t>* alpha, int64_t n, StreamOutputs stream) {
  using acc = acc_t<scalar_t>;
  acc m[kMaxBlock], sum[kMaxBlock], row[kMaxBlock];
  const int64_t block = s.block();
  softmax_block<scalar_t, acc>(logits, s.K, s.logits_k, n, alpha, block, m, sum);
  for (int64_t c = 0; c < s.C; ++c) {
    const scalar_t* __restrict__ r = rgb + c * s.rgb_c;
    const acc* __restrict__ a = alpha;
    for (int64_t p = 0; p < n; ++p) row[p] = a[p] * static_cast<acc>(r[p]);
    for (int64_t k = 1; k < s.K; ++k) {
      r = rgb + k * s.rgb_k + c * s.rgb_c;
      a = alpha + k * block;
      for (int64_t p = 0; p < n; ++p) row[p] += a[p] * static_cast<acc>(r[p]);
    }
    write_row(image + c * s.HW, row, n, stream.first);
  }
  for (int64_t k = 0; k < s.K; ++k) write_row(alpha_out + k * s.HW, alpha + k * block, n, stream.second);
  if (stream.first || stream.second) stream_fence();
}

template <typename scalar_t>
void forward_kernel(const CompositeShape& s, const scalar_t* rgb, const scalar_t* logits,
                    scalar_t* image, scalar_t* alpha_out) {
  using acc = acc_t<scalar_t>;
  const int64_t blocks = s.blocks_per_image(), block = s.block();
  const int64_t bytes = sizeof(scalar_t);
  const StreamOutputs stream{s.B * s.C * s.HW * bytes >= kStreamBytes,
                             s.B * s.K * s.HW * bytes >= kStreamBytes};
  at::parallel_for(0, s.B * blocks, grain_for(block * s.K * (s.C + 8)), [&](int64_t begin, int64_t end) {
    std::vector<acc> alpha(s.K * block);
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, p0 = (item % blocks) * block;
      forward_block<scalar_t>(s, rgb + b * s.rgb_b + p0, logits + b * s.logits_b + p0,
                              image + b * s.C * s.HW + p0, alpha_out + b * s.K * s.HW + p0,
                              alpha.data(), std::min(block, s.HW - p0), stream);
    }
  });
}

// Gradients of one block. alpha and g: [K][block] scratch. grad_image / grad_alpha /
// grad_rgb / grad_logits may be null (absent cotangent, gradient not requested).
template <typename scalar_t>
TUSK_SIMD_CLONES void backward_block(const CompositeShape& s, const scalar_t* grad_image,
                                     const scalar_t* grad_alpha, const scalar_t* rgb,
                                     const scalar_t* logits, scalar_t* grad_rgb,
                                     scalar_t* grad_logits, acc_t<scalar_t>* alpha,
                                     acc_t<scalar_t>* g, int64_t n, StreamOutputs stream) {
  using acc = acc_t<scalar_t>;
  acc m[kMaxBlock], sum[kMaxBlock], dot[kMaxBlock], row[kMaxBlock];
  const int64_t block = s.block();
  softmax_block<scalar_t, acc>(logits, s.K, s.logits_k, n, alpha, block, m, sum);
  for (int64_t p = 0; p < n; ++p) dot[p] = acc(0);
  for (int64_t k = 0; k < s.K; ++k) {
    const acc* __restrict__ a = alpha + k * block;
    if (grad_rgb) {
      for (int64_t c = 0; c < s.C; ++c) {
        if (grad_image) {
          const scalar_t* __restrict__ gi = grad_image + c * s.HW;
          for (int64_t p = 0; p < n; ++p) row[p] = a[p] * static_cast<acc>(gi[p]);
        } else {
          for (int64_t p = 0; p < n; ++p) row[p] = acc(0);
        }
        write_row(grad_rgb + (k * s.C + c) * s.HW, row, n, stream.first);
      }
    }
    if (!grad_logits) continue;
    acc* __restrict__ gk = g + k * block;
    if (grad_alpha) {
      const scalar_t* __restrict__ ga = grad_alpha + k * s.HW;
      for (int64_t p = 0; p < n; ++p) gk[p] = ga[p];
    } else {
      for (int64_t p = 0; p < n; ++p) gk[p] = acc(0);
    }
    if (grad_image) {
      for (int64_t c = 0; c < s.C; ++c) {
        const scalar_t* __restrict__ gi = grad_image + c * s.HW;
        const scalar_t* __restrict__ r = rgb + k * s.rgb_k + c * s.rgb_c;
        for (int64_t p = 0; p < n; ++p) gk[p] += static_cast<acc>(gi[p]) * static_cast<acc>(r[p]);
      }
    }
    for (int64_t p = 0; p < n; ++p) dot[p] += a[p] * gk[p];
  }
  if (grad_logits) {
    for (int64_t k = 0; k < s.K; ++k) {
      const acc* __restrict__ a = alpha + k * block;
      const acc* __restrict__ gk = g + k * block;
      for (int64_t p = 0; p < n; ++p) row[p] = a[p] * (gk[p] - dot[p]);
      write_row(grad_logits + k * s.HW, row, n, stream.second);
    }
  }
  if (stream.first || stream.second) stream_fence();
}

template <typename scalar_t>
void backward_kernel(const CompositeShape& s, const scalar_t* grad_image, const scalar_t* grad_alpha,
                     const scalar_t* rgb, const scalar_t* logits, scalar_t* grad_rgb,
                     scalar_t* grad_logits) {
  using acc = acc_t<scalar_t>;
  const int64_t blocks = s.blocks_per_image(), block = s.block();
  const int64_t bytes = sizeof(scalar_t);
  const StreamOutputs stream{s.B * s.K * s.C * s.HW * bytes >= kStreamBytes,
                             s.B * s.K * s.HW * bytes >= kStreamBytes};
  at::parallel_for(0, s.B * blocks, grain_for(block * s.K * (2 * s.C + 12)), [&](int64_t begin, int64_t end) {
    std::vector<acc> scratch(2 * s.K * block);  // alpha and g of the current block
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, p0 = (item % blocks) * block;
      const int64_t bk0 = b * s.K;
      backward_block<scalar_t>(
          s, grad_image ? grad_image + b * s.C * s.HW + p0 : nullptr,
          grad_alpha ? grad_alpha + bk0 * s.HW + p0 : nullptr, rgb + b * s.rgb_b + p0,
          logits + b * s.logits_b + p0, grad_rgb ? grad_rgb + bk0 * s.C * s.HW + p0 : nullptr,
          grad_logits ? grad_logits + bk0 * s.HW + p0 : nullptr, scratch.data(),
          scratch.data() + s.K * block, std::min(block, s.HW - p0), stream);
    }
  });
}

// True when each H x W plane of a [B, K, C, H, W] tensor is contiguous.
bool planes_contiguous(const at::Tensor& t) {
  return (t.size(4) == 1 || t.stride(4) == 1) && (t.size(3) == 1 || t.stride(3) == t.size(4));
}

at::Tensor with_contiguous_planes(const at::Tensor& t) {
  return planes_contiguous(t) ? t : t.contiguous();
}

void check_inputs(const at::Tensor& rgb, const at::Tensor& logits) {
  check_float_tensor(rgb, "rgb", 5);
  check_float_tensor(logits, "alpha_logits", 5);
  check_cpu(rgb, "rgb");
  check_cpu(logits, "alpha_logits");
  check_same_dtype(rgb, logits, "rgb", "alpha_logits");
  TORCH_CHECK(logits.size(0) == rgb.size(0) && logits.size(1) == rgb.size(1) &&
                  logits.size(2) == 1 && logits.size(3) == rgb.size(3) &&
                  logits.size(4) == rgb.size(4),
              "alpha_logits must be [B,K,1,H,W] matching rgb ", rgb.sizes(), ", got ",
              logits.sizes());
  TORCH_CHECK(rgb.size(1) > 0, "rgb must have K >= 1, got ", rgb.sizes());
}

// rgb and logits must already have contiguous planes.
CompositeShape shape_of(const at::Tensor& rgb, const at::Tensor& logits) {
  return CompositeShape{rgb.size(0),    rgb.size(1),    rgb.size(2),
                        rgb.size(3) * rgb.size(4),
                        rgb.stride(0),  rgb.stride(1),  rgb.stride(2),
                        logits.stride(0), logits.stride(1)};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> alpha_composite_cpu(const at::Tensor& rgb_in,
                                                       const at::Tensor& logits_in) {
  check_inputs(rgb_in, logits_in);
  const at::Tensor rgb = with_contiguous_planes(rgb_in), logits = with_contiguous_planes(logits_in);
  const CompositeShape s = shape_of(rgb, logits);
  // Large outputs come from the buffer pool (no page faults for a fresh buffer every step).
  at::Tensor image = empty_pooled({rgb.size(0), rgb.size(2), rgb.size(3), rgb.size(4)}, rgb.scalar_type());
  at::Tensor alpha = empty_pooled(logits.sizes(), logits.scalar_type());
  if (s.B * s.HW == 0) return {image, alpha};
  AT_DISPATCH_FLOATING_TYPES(rgb.scalar_type(), "alpha_composite_cpu", [&] {
    forward_kernel<scalar_t>(s, rgb.data_ptr<scalar_t>(), logits.data_ptr<scalar_t>(),
                             image.data_ptr<scalar_t>(), alpha.data_ptr<scalar_t>());
  });
  return {image, alpha};
}

std::tuple<at::Tensor, at::Tensor> alpha_composite_backward_cpu(
    const std::optional<at::Tensor>& grad_image_in, const std::optional<at::Tensor>& grad_alpha_in,
    const at::Tensor& rgb_in, const at::Tensor& logits_in, std::array<bool, 2> output_mask) {
  check_inputs(rgb_in, logits_in);
  const at::Tensor rgb = with_contiguous_planes(rgb_in), logits = with_contiguous_planes(logits_in);
  const CompositeShape s = shape_of(rgb, logits);
  at::Tensor grad_image, grad_alpha;
  if (grad_image_in.has_value()) {
    check_cpu(*grad_image_in, "grad_image");
    check_same_dtype(rgb, *grad_image_in, "rgb", "grad_image");
    TORCH_CHECK(grad_image_in->sizes() == at::IntArrayRef({rgb.size(0), rgb.size(2), rgb.size(3), rgb.size(4)}),
                "grad_image must be [B,C,H,W], got ", grad_image_in->sizes());
    grad_image = grad_image_in->contiguous();
  }
  if (grad_alpha_in.has_value()) {
    check_cpu(*grad_alpha_in, "grad_alpha");
    check_same_dtype(rgb, *grad_alpha_in, "rgb", "grad_alpha");
    TORCH_CHECK(grad_alpha_in->sizes() == logits.sizes(), "grad_alpha must be [B,K,1,H,W], got ",
                grad_alpha_in->sizes());
    grad_alpha = grad_alpha_in->contiguous();
  }
  at::Tensor grad_rgb =
      output_mask[0] ? empty_pooled(rgb.sizes(), rgb.scalar_type()) : rgb.new_empty({0});
  at::Tensor grad_logits =
      output_mask[1] ? empty_pooled(logits.sizes(), logits.scalar_type()) : logits.new_empty({0});
  if (s.B * s.HW == 0 || !(output_mask[0] || output_mask[1])) return {grad_rgb, grad_logits};
  AT_DISPATCH_FLOATING_TYPES(rgb.scalar_type(), "alpha_composite_backward_cpu", [&] {
    backward_kernel<scalar_t>(s, grad_image.defined() ? grad_image.data_ptr<scalar_t>() : nullptr,
                              grad_alpha.defined() ? grad_alpha.data_ptr<scalar_t>() : nullptr,
                              rgb.data_ptr<scalar_t>(), logits.data_ptr<scalar_t>(),
                              output_mask[0] ? grad_rgb.data_ptr<scalar_t>() : nullptr,
                              output_mask[1] ? grad_logits.data_ptr<scalar_t>() : nullptr);
  });
  return {grad_rgb, grad_logits};
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("alpha_composite", &tusk::alpha_composite_cpu);
  m.impl("alpha_composite_backward", &tusk::alpha_composite_backward_cpu);
}
