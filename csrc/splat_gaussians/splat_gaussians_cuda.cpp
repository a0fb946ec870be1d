// splat_gaussians on CUDA: dispatcher glue to kernels/splat_gaussians.cu (deterministic forward
// and backward, no atomics). The Python wrapper validates first; these checks are the backstop.
#include "cuda_glue.h"
#include "tusk/cuda/splat_gaussians.h"

namespace tusk {
namespace {

using namespace cuda_glue;

bool parse_reduce(c10::string_view reduce) {
  TORCH_CHECK(reduce == "sum" || reduce == "none", "reduce must be 'sum' or 'none', got '",
              std::string(reduce), "'");
  return reduce == "sum";
}

struct SplatArgs {
  int64_t batch, k, channels;
};

SplatArgs check_inputs(const at::Tensor& xy, const at::Tensor& descriptors,
                       const std::optional<at::Tensor>& weights, int64_t height, int64_t width,
                       double variance, int64_t radius) {
  check_input(xy, "xy", 3);
  check_input(descriptors, "descriptors", 3, &xy, "xy");
  TORCH_CHECK(xy.size(2) == 2, "xy must be [B, K, 2], got ", xy.sizes());
  TORCH_CHECK(descriptors.size(0) == xy.size(0) && descriptors.size(1) == xy.size(1),
              "descriptors must be [B, K, C] with B, K = ", xy.size(0), ", ", xy.size(1),
              ", got ", descriptors.sizes());
  if (weights.has_value()) {
    check_input(*weights, "weights", 2, &xy, "xy");
    check_shape(*weights, "weights", {xy.size(0), xy.size(1)});
  }
  TORCH_CHECK(height >= 1 && width >= 1, "height and width must be >= 1, got ", height, ", ",
              width);
  TORCH_CHECK(variance > 0 && std::isfinite(variance), "variance must be a finite number > 0, got ",
              variance);
  TORCH_CHECK(radius >= 0, "radius must be >= 0, got ", radius);
  return {xy.size(0), xy.size(1), descriptors.size(2)};
}

at::Tensor splat_gaussians_cuda(const at::Tensor& xy_in, const at::Tensor& descriptors_in,
                                const std::optional<at::Tensor>& weights_in, int64_t height,
                                int64_t width, double variance, int64_t radius, bool normalize,
                                c10::string_view reduce) {
  const SplatArgs a =
      check_inputs(xy_in, descriptors_in, weights_in, height, width, variance, radius);
  const bool reduce_sum = parse_reduce(reduce);
  const DeviceGuard guard(xy_in.device());
  const at::Tensor xy = xy_in.contiguous(), descriptors = descriptors_in.contiguous();
  const at::Tensor weights = weights_in.has_value() ? weights_in->contiguous() : at::Tensor();
  const tusk_dtype dtype = dtype_tag(xy, "xy");
  at::Tensor out = reduce_sum ? at::empty({a.batch, a.channels, height, width}, xy.options())
                              : at::empty({a.batch, a.k, a.channels, height, width}, xy.options());
  if (out.numel() == 0) return out;
  at::Tensor scratch = workspace(tusk_splat_gaussians_workspace_bytes(dtype, a.batch, a.k), xy);
  TUSK_CUDA_CHECK(tusk_splat_gaussians_forward(
      dtype, xy.data_ptr(), descriptors.data_ptr(), data_or_null(weights), a.batch, a.k,
      a.channels, height, width, variance, radius, normalize ? 1 : 0, reduce_sum ? 1 : 0,
      out.data_ptr(), scratch.data_ptr(), current_stream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> splat_gaussians_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& xy_in, const at::Tensor& descriptors_in,
    const std::optional<at::Tensor>& weights_in, int64_t height, int64_t width, double variance,
    int64_t radius, bool normalize, c10::string_view reduce, std::array<bool, 3> output_mask) {
  const SplatArgs a =
      check_inputs(xy_in, descriptors_in, weights_in, height, width, variance, radius);
  const bool reduce_sum = parse_reduce(reduce);
  check_input(grad_in, "grad", reduce_sum ? 4 : 5, &xy_in, "xy");
  if (reduce_sum) {
    check_shape(grad_in, "grad", {a.batch, a.channels, height, width});
  } else {
    check_shape(grad_in, "grad", {a.batch, a.k, a.channels, height, width});
  }
  const DeviceGuard guard(xy_in.device());
  const at::Tensor grad = grad_in.contiguous(), xy = xy_in.contiguous();
  const at::Tensor descriptors = descriptors_in.contiguous();
  const at::Tensor weights = weights_in.has_value() ? weights_in->contiguous() : at::Tensor();
  const bool want_weights = output_mask[2] && weights.defined();
  at::Tensor grad_xy = output_mask[0] ? at::empty_like(xy) : xy.new_empty({0});
  at::Tensor grad_descriptors =
      output_mask[1] ? at::empty_like(descriptors) : descriptors.new_empty({0});
  at::Tensor grad_weights = want_weights ? at::empty_like(weights) : xy.new_empty({0});
  if (grad_xy.numel() + grad_descriptors.numel() + grad_weights.numel() == 0) {
    return {grad_xy, grad_descriptors, grad_weights};
  }
  TUSK_CUDA_CHECK(tusk_splat_gaussians_backward(
      dtype_tag(xy, "xy"), grad.data_ptr(), xy.data_ptr(), descriptors.data_ptr(),
      data_or_null(weights), a.batch, a.k, a.channels, height, width, variance, radius,
      normalize ? 1 : 0, reduce_sum ? 1 : 0, data_or_null(grad_xy),
      data_or_null(grad_descriptors), data_or_null(grad_weights), current_stream()));
  return {grad_xy, grad_descriptors, grad_weights};
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("splat_gaussians", &tusk::splat_gaussians_cuda);
  m.impl("splat_gaussians_backward", &tusk::splat_gaussians_backward_cuda);
}
