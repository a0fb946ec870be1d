// detect_keypoints on CUDA: dispatcher glue to kernels/detect_keypoints.cu.
// The Python wrapper (tusk/ops/detect_keypoints.py) validates first; these checks are the
// backstop. See the kernel file for the algorithm and for the (documented) atomics of backward.
#include "cuda_glue.h"
#include "tusk/cuda/detect_keypoints.h"

namespace tusk {
namespace {

using namespace cuda_glue;

void check_windows(int64_t nms_size, int64_t window, double temperature) {
  TORCH_CHECK(nms_size >= 1 && nms_size % 2 == 1, "nms_size must be odd and >= 1, got ", nms_size);
  TORCH_CHECK(window >= 1 && window % 2 == 1, "window must be odd and >= 1, got ", window);
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature),
              "temperature must be a finite number > 0, got ", temperature);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> detect_keypoints_cuda(
    const at::Tensor& scores_in, int64_t k, int64_t nms_size, int64_t window, double temperature,
    bool strict, int64_t border, const std::optional<at::Tensor>& image_size_in, bool fill) {
  check_input(scores_in, "scores", 3);
  const int64_t batch = scores_in.size(0), height = scores_in.size(1), width = scores_in.size(2);
  TORCH_CHECK(height >= 1 && width >= 1, "scores must have H, W >= 1, got ", scores_in.sizes());
  TORCH_CHECK(k >= 1 && k <= height * width, "k must be in [1, H*W] = [1, ", height * width,
              "], got ", k);
  check_windows(nms_size, window, temperature);
  TORCH_CHECK(border >= 0, "border must be >= 0, got ", border);
  at::Tensor image_size;
  if (image_size_in.has_value() && image_size_in->defined()) {
    check_cuda(*image_size_in, "image_size");
    check_same_device(scores_in, *image_size_in, "scores", "image_size");
    TORCH_CHECK(image_size_in->scalar_type() == at::kLong, "image_size must be int64, got ",
                image_size_in->scalar_type());
    TORCH_CHECK(image_size_in->dim() == 2 && image_size_in->size(0) == batch &&
                    image_size_in->size(1) == 2,
                "image_size must be [B, 2] with B = ", batch, ", got ", image_size_in->sizes());
    image_size = image_size_in->contiguous();
  }
  const DeviceGuard guard(scores_in.device());
  const at::Tensor scores = scores_in.contiguous();
  const tusk_dtype dtype = dtype_tag(scores, "scores");
  at::Tensor xy = at::empty({batch, k, 2}, scores.options());
  at::Tensor score = at::empty({batch, k}, scores.options());
  at::Tensor is_peak = at::empty({batch, k}, scores.options().dtype(at::kBool));
  at::Tensor index = at::empty({batch, k}, scores.options().dtype(at::kLong));
  if (batch == 0) return {xy, score, is_peak, index};
  at::Tensor scratch =
      workspace(tusk_detect_keypoints_workspace_bytes(dtype, batch, height, width, k), scores);
  TUSK_CUDA_CHECK(tusk_detect_keypoints_forward(
      dtype, scores.data_ptr(), batch, height, width, k, nms_size, window, temperature,
      strict ? 1 : 0, border, image_size.defined() ? image_size.data_ptr<int64_t>() : nullptr,
      fill ? 1 : 0,
      xy.data_ptr(), score.data_ptr(), is_peak.data_ptr<bool>(), index.data_ptr<int64_t>(),
      scratch.data_ptr(), current_stream()));
  return {xy, score, is_peak, index};
}

at::Tensor detect_keypoints_backward_cuda(const at::Tensor& grad_xy_in,
                                          const at::Tensor& grad_score_in,
                                          const at::Tensor& scores_in, const at::Tensor& xy,
                                          const at::Tensor& index_in, int64_t window,
                                          double temperature) {
  check_input(scores_in, "scores", 3);
  const int64_t batch = scores_in.size(0), height = scores_in.size(1), width = scores_in.size(2);
  TORCH_CHECK(height >= 1 && width >= 1, "scores must have H, W >= 1, got ", scores_in.sizes());
  check_windows(1, window, temperature);
  check_cuda(index_in, "index");
  TORCH_CHECK(index_in.scalar_type() == at::kLong, "index must be int64, got ",
              index_in.scalar_type());
  TORCH_CHECK(index_in.dim() == 2 && index_in.size(0) == batch, "index must be [B, K] with B = ",
              batch, ", got ", index_in.sizes());
  check_same_device(scores_in, index_in, "scores", "index");
  const int64_t k = index_in.size(1);
  // xy is not read: the kernel recomputes the refined positions in the accumulation type, exactly
  // as the forward did, instead of using the rounded ones.
  check_input(xy, "xy", 3, &scores_in, "scores");
  check_shape(xy, "xy", {batch, k, 2});
  // Cotangents may be empty (no gradient flowed into that output): they count as zero.
  const bool has_grad_xy = grad_xy_in.defined() && grad_xy_in.numel() > 0;
  const bool has_grad_score = grad_score_in.defined() && grad_score_in.numel() > 0;
  if (has_grad_xy) {
    check_input(grad_xy_in, "grad_xy", 3, &scores_in, "scores");
    check_shape(grad_xy_in, "grad_xy", {batch, k, 2});
  }
  if (has_grad_score) {
    check_input(grad_score_in, "grad_score", 2, &scores_in, "scores");
    check_shape(grad_score_in, "grad_score", {batch, k});
  }
  const DeviceGuard guard(scores_in.device());
  const at::Tensor scores = scores_in.contiguous(), index = index_in.contiguous();
  const at::Tensor grad_xy = has_grad_xy ? grad_xy_in.contiguous() : at::Tensor();
  const at::Tensor grad_score = has_grad_score ? grad_score_in.contiguous() : at::Tensor();
  const tusk_dtype dtype = dtype_tag(scores, "scores");
  at::Tensor grad_scores = at::empty_like(scores);
  if (grad_scores.numel() == 0) return grad_scores;
  at::Tensor scratch = workspace(
      tusk_detect_keypoints_backward_workspace_bytes(dtype, batch, height, width), scores);
  TUSK_CUDA_CHECK(tusk_detect_keypoints_backward(
      dtype, data_or_null(grad_xy), data_or_null(grad_score), scores.data_ptr(),
      index.data_ptr<int64_t>(), batch, height, width, k, window, temperature,
      deterministic() ? 1 : 0, grad_scores.data_ptr(), scratch.data_ptr(), current_stream()));
  return grad_scores;
}

}  // namespace
}  // namespace tusk

TUSK_CUDA_LIBRARY_IMPL(m) {
  m.impl("detect_keypoints", &tusk::detect_keypoints_cuda);
  m.impl("detect_keypoints_backward", &tusk::detect_keypoints_backward_cuda);
}
