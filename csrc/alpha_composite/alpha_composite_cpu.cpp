// alpha_composite on the CPU: softmax over K of alpha logits [B,K,1,H,W], blend of rgb
// [B,K,C,H,W] into image [B,C,H,W].
//
// Memory-bound, so both passes stream every input once: the work is split into blocks of
// kBlock pixels of one image (parallel over (batch, pixel block)); inside a block, every loop
// runs over contiguous pixels (auto-vectorised; softmax_exp.h keeps exp vectorisable), and the
// per-block softmax state (max, sum, alpha) stays in L1.
// Backward recomputes the softmax instead of saving alpha:
//   grad_rgb_k = alpha_k grad_image,
//   grad_logits_k = alpha_k (g_k - sum_j alpha_j g_j),  g_k = <grad_image, rgb_k>_C + grad_alpha_k.
// grad_image / grad_alpha may be absent (an unused output): they count as zero and are not read.
#include <algorithm>
#include <vector>

#include "alpha_composite/softmax_exp.h"
#include "common.h"
#include "fresh_memory.h"

namespace tusk {
namespace {

// Pixels per block: 256 floats = 1 KiB rows; with K=6, C=3 a block's rows fit in L1 (~33 KiB).
constexpr int64_t kBlock = 256;

struct CompositeShape {
  int64_t B, K, C, HW;
  int64_t blocks_per_image() const { return (HW + kBlock - 1) / kBlock; }
};

// alpha[k][p] = exp(l[k][p] - max_k l) / sum; rows are `stride` apart. m and s: kBlock scratch.
template <typename scalar_t, typename out_t>
inline void softmax_block(const scalar_t* __restrict__ logits, int64_t K, int64_t stride, int64_t n,
                          out_t* __restrict__ alpha, int64_t alpha_stride, acc_t<scalar_t>* __restrict__ m,
                          acc_t<scalar_t>* __restrict__ s) {
  using acc = acc_t<scalar_t>;
  for (int64_t p = 0; p < n; ++p) m[p] = logits[p];
  for (int64_t k = 1; k < K; ++k) {
    const scalar_t* __restrict__ l = logits + k * stride;
    for (int64_t p = 0; p < n; ++p) m[p] = l[p] > m[p] ? static_cast<acc>(l[p]) : m[p];
  }
  for (int64_t p = 0; p < n; ++p) s[p] = acc(0);
  for (int64_t k = 0; k < K; ++k) {
    const scalar_t* __restrict__ l = logits + k * stride;
    out_t* __restrict__ a = alpha + k * alpha_stride;
    for (int64_t p = 0; p < n; ++p) {
      const acc e = softmax_exp(static_cast<acc>(l[p]) - m[p]);
      a[p] = static_cast<out_t>(e);
      s[p] += e;
    }
  }
  for (int64_t p = 0; p < n; ++p) s[p] = acc(1) / s[p];
  for (int64_t k = 0; k < K; ++k) {
    out_t* __restrict__ a = alpha + k * alpha_stride;
    for (int64_t p = 0; p < n; ++p) a[p] = static_cast<out_t>(a[p] * s[p]);
  }
}

template <typename scalar_t>
void forward_kernel(const CompositeShape& s, const scalar_t* rgb, const scalar_t* logits,
                    scalar_t* image, scalar_t* alpha) {
  using acc = acc_t<scalar_t>;
  const int64_t blocks = s.blocks_per_image();
  at::parallel_for(0, s.B * blocks, grain_for(kBlock * s.K * (s.C + 8)), [&](int64_t begin, int64_t end) {
    acc m[kBlock], sum[kBlock];
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, p0 = (item % blocks) * kBlock;
      const int64_t n = std::min(kBlock, s.HW - p0);
      scalar_t* __restrict__ a0 = alpha + b * s.K * s.HW + p0;
      softmax_block<scalar_t, scalar_t>(logits + b * s.K * s.HW + p0, s.K, s.HW, n, a0, s.HW, m, sum);
      const scalar_t* rgb_b = rgb + b * s.K * s.C * s.HW + p0;
      scalar_t* image_b = image + b * s.C * s.HW + p0;
      for (int64_t c = 0; c < s.C; ++c) {
        scalar_t* __restrict__ out = image_b + c * s.HW;
        const scalar_t* __restrict__ r = rgb_b + c * s.HW;
        for (int64_t p = 0; p < n; ++p) out[p] = a0[p] * r[p];
      }
      for (int64_t k = 1; k < s.K; ++k) {
        const scalar_t* __restrict__ a = a0 + k * s.HW;
        for (int64_t c = 0; c < s.C; ++c) {
          scalar_t* __restrict__ out = image_b + c * s.HW;
          const scalar_t* __restrict__ r = rgb_b + (k * s.C + c) * s.HW;
          for (int64_t p = 0; p < n; ++p) out[p] = static_cast<scalar_t>(out[p] + a[p] * r[p]);
        }
      }
    }
  });
}

template <typename scalar_t>
void backward_kernel(const CompositeShape& s, const scalar_t* grad_image, const scalar_t* grad_alpha,
                     const scalar_t* rgb, const scalar_t* logits, scalar_t* grad_rgb,
                     scalar_t* grad_logits) {
  using acc = acc_t<scalar_t>;
  const int64_t blocks = s.blocks_per_image();
  at::parallel_for(0, s.B * blocks, grain_for(kBlock * s.K * (2 * s.C + 12)), [&](int64_t begin, int64_t end) {
    acc m[kBlock], sum[kBlock], dot[kBlock], g[kBlock];
    std::vector<acc> alpha_buffer(s.K * kBlock);  // this block's alpha, [K][kBlock]
    acc* alpha = alpha_buffer.data();
    for (int64_t item = begin; item < end; ++item) {
      const int64_t b = item / blocks, p0 = (item % blocks) * kBlock;
      const int64_t n = std::min(kBlock, s.HW - p0);
      softmax_block<scalar_t, acc>(logits + b * s.K * s.HW + p0, s.K, s.HW, n, alpha, kBlock, m, sum);
      const scalar_t* gi_b = grad_image ? grad_image + b * s.C * s.HW + p0 : nullptr;
      const scalar_t* rgb_b = rgb + b * s.K * s.C * s.HW + p0;
      for (int64_t p = 0; p < n; ++p) dot[p] = acc(0);
      for (int64_t k = 0; k < s.K; ++k) {
        const acc* __restrict__ a = alpha + k * kBlock;
        const int64_t bk = b * s.K + k;
        if (grad_rgb) {
          for (int64_t c = 0; c < s.C; ++c) {
            scalar_t* __restrict__ out = grad_rgb + (bk * s.C + c) * s.HW + p0;
            if (gi_b) {
              const scalar_t* __restrict__ gi = gi_b + c * s.HW;
              for (int64_t p = 0; p < n; ++p) out[p] = static_cast<scalar_t>(a[p] * gi[p]);
            } else {
              std::fill_n(out, n, scalar_t(0));
            }
          }
        }
        if (!grad_logits) continue;
        if (grad_alpha) {
          const scalar_t* __restrict__ ga = grad_alpha + bk * s.HW + p0;
          for (int64_t p = 0; p < n; ++p) g[p] = ga[p];
        } else {
          for (int64_t p = 0; p < n; ++p) g[p] = acc(0);
        }
        if (gi_b) {
          for (int64_t c = 0; c < s.C; ++c) {
            const scalar_t* __restrict__ gi = gi_b + c * s.HW;
            const scalar_t* __restrict__ r = rgb_b + (k * s.C + c) * s.HW;
            for (int64_t p = 0; p < n; ++p) g[p] += static_cast<acc>(gi[p]) * static_cast<acc>(r[p]);
          }
        }
        scalar_t* __restrict__ gl = grad_logits + bk * s.HW + p0;
        for (int64_t p = 0; p < n; ++p) {
          gl[p] = static_cast<scalar_t>(g[p]);  // g_k for now; scaled below once dot is known
          dot[p] += a[p] * g[p];
        }
      }
      if (!grad_logits) continue;
      for (int64_t k = 0; k < s.K; ++k) {
        const acc* __restrict__ a = alpha + k * kBlock;
        scalar_t* __restrict__ gl = grad_logits + (b * s.K + k) * s.HW + p0;
        for (int64_t p = 0; p < n; ++p) gl[p] = static_cast<scalar_t>(a[p] * (gl[p] - dot[p]));
      }
    }
  });
}

CompositeShape check_inputs(const at::Tensor& rgb, const at::Tensor& logits) {
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
  return CompositeShape{rgb.size(0), rgb.size(1), rgb.size(2), rgb.size(3) * rgb.size(4)};
}

}  // namespace

std::tuple<at::Tensor, at::Tensor> alpha_composite_cpu(const at::Tensor& rgb_in,
                                                       const at::Tensor& logits_in) {
  const CompositeShape s = check_inputs(rgb_in, logits_in);
  const at::Tensor rgb = rgb_in.contiguous(), logits = logits_in.contiguous();
  at::Tensor image = at::empty({rgb.size(0), rgb.size(2), rgb.size(3), rgb.size(4)}, rgb.options());
  at::Tensor alpha = at::empty_like(logits);
  advise_fresh_output(alpha);
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
  const CompositeShape s = check_inputs(rgb_in, logits_in);
  const at::Tensor rgb = rgb_in.contiguous(), logits = logits_in.contiguous();
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
  at::Tensor grad_rgb = output_mask[0] ? at::empty_like(rgb) : rgb.new_empty({0});
  at::Tensor grad_logits = output_mask[1] ? at::empty_like(logits) : logits.new_empty({0});
  advise_fresh_output(grad_rgb);
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
