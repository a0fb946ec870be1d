// alpha_composite on CUDA: dispatcher glue to kernels/alpha_composite.cu (one fused pass per
// direction; backward recomputes the softmax). The Python wrapper validates first.
#include "cuda_glue.h"
#include "tusk/cuda/alpha_composite.h"

namespace tusk {
namespace {

using namespace cuda_glue;

void check_inputs(const at::Tensor& rgb, const at::Tensor& logits) {
  check_input(rgb, "rgb", 5);
  check_input(logits, "alpha_logits", 5, &rgb, "rgb");
  check_shape(logits, "alpha_logits", {rgb.size(0), rgb.size(1), 1, rgb.size(3), rgb.size(4)});
  TORCH_CHECK(rgb.size(1) >= 1, "rgb must have K >= 1 keypoints, got ", rgb.sizes());
}

std::tuple<at::Tensor, at::Tensor> alpha_composite_cuda(const at::Tensor& rgb_in,
                                                        const at::Tensor& logits_in) {
  check_inputs(rgb_in, logits_in);
  const DeviceGuard guard(rgb_in.device());
  const at::Tensor rgb = rgb_in.contiguous(), logits = logits_in.contiguous();
  const int64_t batch = rgb.size(0), k = rgb.size(1), channels = rgb.size(2);
  const int64_t height = rgb.size(3), width = rgb.size(4);
  at::Tensor image = at::empty({batch, channels, height, width}, rgb.options());
  at::Tensor alpha = at::empty_like(logits);
  if (alpha.numel() == 0) return {image, alpha};
  TUSK_CUDA_CHECK(tusk_alpha_composite_forward(dtype_tag(rgb, "rgb"), rgb.data_ptr(),
                                               logits.data_ptr(), batch, k, channels,
                                               height * width, image.data_ptr(), alpha.data_ptr(),
                                               current_stream()));
  return {image, alpha};
}

std::tuple<at::Tensor, at::Tensor> alpha_composite_backward_cuda(
    const std::optional<at::Tensor>& grad_image_opt, const std::optional<at::Tensor>& grad_alpha_opt,
    const at::Tensor& rgb_in, const at::Tensor& logits_in, std::array<bool, 2> output_mask) {
  check_inputs(rgb_in, logits_in);
  // None when no gradient flowed into that output (alpha is usually unused in training).
  const at::Tensor grad_image_in = grad_image_opt.value_or(at::Tensor());
  const at::Tensor grad_alpha_in = grad_alpha_opt.value_or(at::Tensor());
  const int64_t batch = rgb_in.size(0), k = rgb_in.size(1), channels = rgb_in.size(2);
  const int64_t height = rgb_in.size(3), width = rgb_in.size(4);
  // Cotangents may be empty (no gradient flowed into that output): they count as zero.
  const bool has_grad_image = grad_image_in.defined() && grad_image_in.numel() > 0;
  const bool has_grad_alpha = grad_alpha_in.defined() && grad_alpha_in.numel() > 0;
  if (has_grad_image) {
    check_input(grad_image_in, "grad_image", 4, &rgb_in, "rgb");
    check_shape(grad_image_in, "grad_image", {batch, channels, height, width});
  }
  if (has_grad_alpha) {
    check_input(grad_alpha_in, "grad_alpha", 5, &rgb_in, "rgb");
    check_shape(grad_alpha_in, "grad_alpha", logits_in.sizes());
  }
  const DeviceGuard guard(rgb_in.device());
  const at::Tensor rgb = rgb_in.contiguous(), logits = logits_in.contiguous();
  const at::Tensor grad_image = has_grad_image ? grad_image_in.contiguous() : at::Tensor();
  const at::Tensor grad_alpha = has_grad_alpha ? grad_alpha_in.contiguous() : at::Tensor();
  const tusk_dtype dtype = dtype_tag(rgb, "rgb");
  at::Tensor grad_rgb = output_mask[0] ? at::empty_like(rgb) : rgb.new_empty({0});
  at::Tensor grad_logits = output_mask[1] ? at::empty_like(logits) : logits.new_empty({0});
  if (grad_rgb.numel() + grad_logits.numel() == 0) return {grad_rgb, grad_logits};
  at::Tensor scratch = workspace(tusk_alpha_composite_backward_workspace_bytes(
                                     dtype, batch, k, height * width, output_mask[1] ? 1 : 0),
                                 rgb);
  TUSK_CUDA_CHECK(tusk_alpha_composite_backward(
      dtype, data_or_null(grad_image), data_or_null(grad_alpha), rgb.data_ptr(),
      logits.data_ptr(), batch, k, channels, height * width, data_or_null(grad_rgb),
      data_or_null(grad_logits), scratch.data_ptr(), current_stream()));
  return {grad_rgb, grad_logits};
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("alpha_composite", &tusk::alpha_composite_cuda);
  m.impl("alpha_composite_backward", &tusk::alpha_composite_backward_cuda);
}
