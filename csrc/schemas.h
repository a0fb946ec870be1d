// The schema of every tusk op, in one table. tusk_ops.cpp defines them in torch.ops.tusk; the
// tests' host emulation of the CUDA kernels defines the same schemas in its own namespace, so
// both are checked against one source.
#pragma once

#include <torch/library.h>

namespace tusk {

inline void define_schemas(torch::Library& m) {
  // 1. detect_keypoints: scores [B,H,W] -> xy [B,K,2], score [B,K], is_peak [B,K] bool,
  //    index [B,K] int64 (flat pixel of each slot; saved for backward). strict, border and
  //    image_size ([B,2] int64 valid (W, H) per image, on the scores' device) narrow which
  //    pixels are peaks (reference.peak_mask); fill=False puts pixel 0 in the slots past the
  //    peaks instead of the best non-peaks. The defaults change nothing.
  m.def("detect_keypoints(Tensor scores, int k, int nms_size, int window, float temperature,"
        " bool strict=False, int border=0, Tensor? image_size=None, bool fill=True)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("detect_keypoints_backward(Tensor grad_xy, Tensor grad_score, Tensor scores, Tensor xy,"
        " Tensor index, int window, float temperature) -> Tensor");

  // 2. sample_descriptors: features [B,C,H,W], xy [B,K,2] -> [B,K,C]. padding: zeros|border.
  //    Backward returns (grad_features, grad_xy); a grad not asked for in output_mask is empty.
  m.def("sample_descriptors(Tensor features, Tensor xy, str padding) -> Tensor");
  m.def("sample_descriptors_backward(Tensor grad, Tensor features, Tensor xy, str padding,"
        " bool[2] output_mask) -> (Tensor, Tensor)");

  // 3a. splat_gaussians: xy [B,K,2], descriptors [B,K,C], weights [B,K] or None ->
  //     [B,C,H,W] (reduce="sum") or [B,K,C,H,W] (reduce="none").
  m.def("splat_gaussians(Tensor xy, Tensor descriptors, Tensor? weights, int height, int width,"
        " float variance, int radius, bool normalize, str reduce) -> Tensor");
  m.def("splat_gaussians_backward(Tensor grad, Tensor xy, Tensor descriptors, Tensor? weights,"
        " int height, int width, float variance, int radius, bool normalize, str reduce,"
        " bool[3] output_mask) -> (Tensor, Tensor, Tensor)");

  // 3b. alpha_composite: rgb [B,K,C,H,W], alpha_logits [B,K,1,H,W] -> image [B,C,H,W],
  //     alpha [B,K,1,H,W]. Backward recomputes the softmax. A cotangent is None when its output
  //     was unused (usually alpha): it counts as zero and no zero tensor is materialised or read.
  m.def("alpha_composite(Tensor rgb, Tensor alpha_logits) -> (Tensor, Tensor)");
  m.def("alpha_composite_backward(Tensor? grad_image, Tensor? grad_alpha, Tensor rgb,"
        " Tensor alpha_logits, bool[2] output_mask) -> (Tensor, Tensor)");

  // 4a. sliced_wasserstein: x [G,N,C], y [G,N,C], projections [C,P] -> distance [G],
  //     plus per-point residuals r_x, r_y [G,N,P] (d distance / d projected point) for backward.
  //     Residuals are not differentiable.
  m.def("sliced_wasserstein(Tensor x, Tensor y, Tensor projections) -> (Tensor, Tensor, Tensor)");
  m.def("sliced_wasserstein_backward(Tensor grad, Tensor x, Tensor y, Tensor projections,"
        " Tensor x_residual, Tensor y_residual, bool[3] output_mask) -> (Tensor, Tensor, Tensor)");

  // 4b. gmm_prototype_samples: prototypes [M,C], features [N,C], noise [N,C] ->
  //     samples [N,C] (unit norm), assignment [N] int64 (prototype of each sample, grouped).
  //     Differentiable w.r.t. prototypes only (features choose the counts, noise is a constant).
  m.def("gmm_prototype_samples(Tensor prototypes, Tensor features, Tensor noise, float smoothing)"
        " -> (Tensor, Tensor)");
  m.def("gmm_prototype_samples_backward(Tensor grad, Tensor prototypes, Tensor noise,"
        " Tensor assignment) -> Tensor");
  // The autograd of 4a and 4b is registered in C++ for every backend
  // (csrc/<op>/<op>_autograd.cpp); their fake kernels in Python (tusk/ops/<op>.py).
}

}  // namespace tusk
