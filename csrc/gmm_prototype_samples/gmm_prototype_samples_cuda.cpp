// gmm_prototype_samples on CUDA: dispatcher glue to kernels/gmm_prototype_samples.cu
// (deterministic, no atomics, no host synchronisation). The Python wrapper validates and draws
// the noise first.
#include "cuda_glue.h"
#include "tusk/cuda/gmm_prototype_samples.h"

namespace tusk {
namespace {

using namespace cuda_glue;

void check_inputs(const at::Tensor& prototypes, const at::Tensor& noise) {
  check_input(prototypes, "prototypes", 2);
  check_input(noise, "noise", 2, &prototypes, "prototypes");
  TORCH_CHECK(prototypes.size(0) >= 1 && prototypes.size(1) >= 1,
              "prototypes must have M >= 1 rows of C >= 1 channels, got ", prototypes.sizes());
  TORCH_CHECK(noise.size(1) == prototypes.size(1), "noise must be [N, C] with C = ",
              prototypes.size(1), ", got ", noise.sizes());
}

std::tuple<at::Tensor, at::Tensor> gmm_prototype_samples_cuda(const at::Tensor& prototypes_in,
                                                              const at::Tensor& features_in,
                                                              const at::Tensor& noise_in,
                                                              double smoothing) {
  check_inputs(prototypes_in, noise_in);
  check_input(features_in, "features", 2, &prototypes_in, "prototypes");
  check_shape(features_in, "features", noise_in.sizes());
  TORCH_CHECK(smoothing >= 0 && std::isfinite(smoothing),
              "smoothing must be a finite number >= 0, got ", smoothing);
  const DeviceGuard guard(prototypes_in.device());
  const at::Tensor prototypes = prototypes_in.contiguous(), features = features_in.contiguous();
  const at::Tensor noise = noise_in.contiguous();
  const int64_t count = prototypes.size(0), channels = prototypes.size(1);
  const int64_t points = features.size(0);
  at::Tensor samples = at::empty({points, channels}, prototypes.options());
  at::Tensor assignment = at::empty({points}, prototypes.options().dtype(at::kLong));
  if (points == 0) return {samples, assignment};
  at::Tensor scratch =
      workspace(tusk_gmm_prototype_samples_workspace_bytes(count, points), prototypes);
  TUSK_CUDA_CHECK(tusk_gmm_prototype_samples_forward(
      dtype_tag(prototypes, "prototypes"), prototypes.data_ptr(), features.data_ptr(),
      noise.data_ptr(), count, points, channels, smoothing, samples.data_ptr(),
      assignment.data_ptr<int64_t>(), scratch.data_ptr(), current_stream()));
  return {samples, assignment};
}

at::Tensor gmm_prototype_samples_backward_cuda(const at::Tensor& grad_in,
                                               const at::Tensor& prototypes_in,
                                               const at::Tensor& noise_in,
                                               const at::Tensor& assignment_in) {
  check_inputs(prototypes_in, noise_in);
  check_input(grad_in, "grad", 2, &prototypes_in, "prototypes");
  check_shape(grad_in, "grad", noise_in.sizes());
  check_cuda(assignment_in, "assignment");
  check_same_device(prototypes_in, assignment_in, "prototypes", "assignment");
  TORCH_CHECK(assignment_in.scalar_type() == at::kLong, "assignment must be int64, got ",
              assignment_in.scalar_type());
  check_shape(assignment_in, "assignment", {noise_in.size(0)});
  const DeviceGuard guard(prototypes_in.device());
  const at::Tensor grad = grad_in.contiguous(), prototypes = prototypes_in.contiguous();
  const at::Tensor noise = noise_in.contiguous(), assignment = assignment_in.contiguous();
  const int64_t count = prototypes.size(0), channels = prototypes.size(1);
  const int64_t points = noise.size(0);
  const tusk_dtype dtype = dtype_tag(prototypes, "prototypes");
  at::Tensor grad_prototypes = at::empty_like(prototypes);
  at::Tensor scratch = workspace(
      tusk_gmm_prototype_samples_backward_workspace_bytes(dtype, points, channels), prototypes);
  TUSK_CUDA_CHECK(tusk_gmm_prototype_samples_backward(
      dtype, grad.data_ptr(), prototypes.data_ptr(), noise.data_ptr(),
      assignment.data_ptr<int64_t>(), count, points, channels, grad_prototypes.data_ptr(),
      scratch.data_ptr(), current_stream()));
  return grad_prototypes;
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("gmm_prototype_samples", &tusk::gmm_prototype_samples_cuda);
  m.impl("gmm_prototype_samples_backward", &tusk::gmm_prototype_samples_backward_cuda);
}
