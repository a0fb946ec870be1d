// sliced_wasserstein on CUDA: dispatcher glue to kernels/sliced_wasserstein.cu (deterministic,
// no atomics). The Python wrapper validates and flattens leading dims to [G, N, C] first.
#include "cuda_glue.h"
#include "tusk/cuda/sliced_wasserstein.h"

namespace tusk {
namespace {

using namespace cuda_glue;

void check_inputs(const at::Tensor& x, const at::Tensor& y, const at::Tensor& projections) {
  check_input(x, "x", 3);
  check_input(y, "y", 3, &x, "x");
  check_input(projections, "projections", 2, &x, "x");
  check_shape(y, "y", x.sizes());
  TORCH_CHECK(x.size(1) >= 1 && x.size(2) >= 1, "x must have N >= 1 points of C >= 1 channels, got ",
              x.sizes());
  TORCH_CHECK(projections.size(0) == x.size(2) && projections.size(1) >= 1,
              "projections must be [C, P] with C = ", x.size(2), " and P >= 1, got ",
              projections.sizes());
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sliced_wasserstein_cuda(
    const at::Tensor& x_in, const at::Tensor& y_in, const at::Tensor& projections_in) {
  check_inputs(x_in, y_in, projections_in);
  const DeviceGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor projections = projections_in.contiguous();
  const int64_t groups = x.size(0), points = x.size(1), channels = x.size(2);
  const int64_t count = projections.size(1);
  const tusk_dtype dtype = dtype_tag(x, "x");
  at::Tensor distance = at::empty({groups}, x.options());
  at::Tensor x_residual = at::empty({groups, points, count}, x.options());
  at::Tensor y_residual = at::empty({groups, points, count}, x.options());
  if (groups == 0) return {distance, x_residual, y_residual};
  at::Tensor scratch =
      workspace(tusk_sliced_wasserstein_workspace_bytes(dtype, groups, points, count), x);
  TUSK_CUDA_CHECK(tusk_sliced_wasserstein_forward(
      dtype, x.data_ptr(), y.data_ptr(), projections.data_ptr(), groups, points, channels, count,
      distance.data_ptr(), x_residual.data_ptr(), y_residual.data_ptr(), scratch.data_ptr(),
      current_stream()));
  return {distance, x_residual, y_residual};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> sliced_wasserstein_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& x_in, const at::Tensor& y_in,
    const at::Tensor& projections_in, const at::Tensor& x_residual_in,
    const at::Tensor& y_residual_in, std::array<bool, 3> output_mask) {
  check_inputs(x_in, y_in, projections_in);
  const int64_t groups = x_in.size(0), points = x_in.size(1), channels = x_in.size(2);
  const int64_t count = projections_in.size(1);
  check_input(grad_in, "grad", 1, &x_in, "x");
  check_shape(grad_in, "grad", {groups});
  check_input(x_residual_in, "x_residual", 3, &x_in, "x");
  check_input(y_residual_in, "y_residual", 3, &x_in, "x");
  check_shape(x_residual_in, "x_residual", {groups, points, count});
  check_shape(y_residual_in, "y_residual", {groups, points, count});
  const DeviceGuard guard(x_in.device());
  const at::Tensor grad = grad_in.contiguous(), x = x_in.contiguous(), y = y_in.contiguous();
  const at::Tensor projections = projections_in.contiguous();
  const at::Tensor x_residual = x_residual_in.contiguous(), y_residual = y_residual_in.contiguous();
  const tusk_dtype dtype = dtype_tag(x, "x");
  at::Tensor grad_x = output_mask[0] ? at::empty_like(x) : x.new_empty({0});
  at::Tensor grad_y = output_mask[1] ? at::empty_like(y) : y.new_empty({0});
  at::Tensor grad_projections =
      output_mask[2] ? at::empty_like(projections) : projections.new_empty({0});
  if (grad_x.numel() + grad_y.numel() + grad_projections.numel() == 0) {
    return {grad_x, grad_y, grad_projections};
  }
  at::Tensor scratch = workspace(
      output_mask[2]
          ? tusk_sliced_wasserstein_backward_workspace_bytes(dtype, groups, points, channels, count)
          : 0,
      x);
  TUSK_CUDA_CHECK(tusk_sliced_wasserstein_backward(
      dtype, grad.data_ptr(), x.data_ptr(), y.data_ptr(), projections.data_ptr(),
      x_residual.data_ptr(), y_residual.data_ptr(), groups, points, channels, count,
      data_or_null(grad_x), data_or_null(grad_y), data_or_null(grad_projections),
      scratch.data_ptr(), current_stream()));
  return {grad_x, grad_y, grad_projections};
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("sliced_wasserstein", &tusk::sliced_wasserstein_cuda);
  m.impl("sliced_wasserstein_backward", &tusk::sliced_wasserstein_backward_cuda);
}
