// sample_descriptors on CUDA: dispatcher glue to kernels/sample_descriptors.cu.
// The Python wrapper validates first; these checks are the backstop. Backward's grad_features
// uses atomics unless torch.use_deterministic_algorithms(True) is set (see the kernel file).
#include "cuda_glue.h"
#include "tusk/cuda/sample_descriptors.h"

namespace tusk {
namespace {

using namespace cuda_glue;

void check_inputs(const at::Tensor& features, const at::Tensor& xy) {
  check_input(features, "features", 4);
  check_input(xy, "xy", 3, &features, "features");
  TORCH_CHECK(xy.size(0) == features.size(0) && xy.size(2) == 2, "xy must be [B, K, 2] with B = ",
              features.size(0), ", got ", xy.sizes());
  TORCH_CHECK(features.size(2) > 0 && features.size(3) > 0, "features must have H, W > 0, got ",
              features.sizes());
}

at::Tensor sample_descriptors_cuda(const at::Tensor& features_in, const at::Tensor& xy_in,
                                   c10::string_view padding_name) {
  check_inputs(features_in, xy_in);
  const Padding padding = parse_padding(std::string(padding_name));
  const DeviceGuard guard(features_in.device());
  const at::Tensor features = features_in.contiguous(), xy = xy_in.contiguous();
  const int64_t batch = features.size(0), channels = features.size(1), height = features.size(2),
                width = features.size(3), k = xy.size(1);
  at::Tensor out = at::empty({batch, k, channels}, features.options());
  if (out.numel() == 0) return out;
  TUSK_CUDA_CHECK(tusk_sample_descriptors_forward(
      dtype_tag(features, "features"), features.data_ptr(), xy.data_ptr(), batch, channels, height,
      width, k, static_cast<int>(padding), out.data_ptr(), current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> sample_descriptors_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& features_in, const at::Tensor& xy_in,
    c10::string_view padding_name, std::array<bool, 2> output_mask) {
  check_inputs(features_in, xy_in);
  check_input(grad_in, "grad", 3, &features_in, "features");
  const Padding padding = parse_padding(std::string(padding_name));
  const DeviceGuard guard(features_in.device());
  const at::Tensor features = features_in.contiguous(), xy = xy_in.contiguous();
  const at::Tensor grad = grad_in.contiguous();
  const int64_t batch = features.size(0), channels = features.size(1), height = features.size(2),
                width = features.size(3), k = xy.size(1);
  check_shape(grad, "grad", {batch, k, channels});
  const tusk_dtype dtype = dtype_tag(features, "features");
  at::Tensor grad_features = output_mask[0] ? at::empty_like(features) : features.new_empty({0});
  at::Tensor grad_xy = output_mask[1] ? at::empty_like(xy) : xy.new_empty({0});
  if (grad_features.numel() == 0 && grad_xy.numel() == 0) return {grad_features, grad_xy};
  at::Tensor scratch = workspace(
      output_mask[0]
          ? tusk_sample_descriptors_backward_workspace_bytes(dtype, batch, channels, height, width)
          : 0,
      features);
  TUSK_CUDA_CHECK(tusk_sample_descriptors_backward(
      dtype, grad.data_ptr(), features.data_ptr(), xy.data_ptr(), batch, channels, height, width,
      k, static_cast<int>(padding), deterministic() ? 1 : 0, data_or_null(grad_features),
      data_or_null(grad_xy), scratch.data_ptr(), current_stream()));
  return {grad_features, grad_xy};
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("sample_descriptors", &tusk::sample_descriptors_cuda);
  m.impl("sample_descriptors_backward", &tusk::sample_descriptors_backward_cuda);
}
