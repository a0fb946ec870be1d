// detect_keypoints on CUDA (kernels/detect_keypoints.cu). See tusk/ops/reference/detect_keypoints.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// Workspace of the forward: the NMS row maxima and two candidate buffers of the top-K merge.
size_t tusk_detect_keypoints_workspace_bytes(tusk_dtype dtype, int64_t batch, int64_t height,
                                             int64_t width, int64_t k);

// scores [B,H,W] (dtype) -> xy [B,K,2] (dtype), score [B,K] (dtype), is_peak [B,K] (bool),
// index [B,K] (int64 flat pixel). Requires 1 <= k <= H*W, odd nms_size and window, temperature > 0,
// border >= 0. strict != 0 keeps strict maxima only; image_size (device, int64 [B,2] valid (W, H)
// per image, or NULL) and border bound where peaks lie (tusk/peak_rule.h). fill == 0 puts pixel 0
// in the slots past an image's peaks instead of its best non-peaks.
cudaError_t tusk_detect_keypoints_forward(tusk_dtype dtype, const void* scores, int64_t batch,
                                          int64_t height, int64_t width, int64_t k,
                                          int64_t nms_size, int64_t window, double temperature,
                                          int strict, int64_t border, const int64_t* image_size,
                                          int fill,
                                          void* xy, void* score, bool* is_peak, int64_t* index,
                                          void* workspace, cudaStream_t stream);

// Workspace of the backward: a float32 accumulation map for float16/bfloat16, else nothing.
size_t tusk_detect_keypoints_backward_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                      int64_t height, int64_t width);

// grad_xy [B,K,2] and grad_score [B,K] (either may be NULL = zero), scores [B,H,W], index [B,K]
// -> grad_scores [B,H,W] (fully written). deterministic != 0 selects the atomic-free path.
cudaError_t tusk_detect_keypoints_backward(tusk_dtype dtype, const void* grad_xy,
                                           const void* grad_score, const void* scores,
                                           const int64_t* index, int64_t batch, int64_t height,
                                           int64_t width, int64_t k, int64_t window,
                                           double temperature, int deterministic,
                                           void* grad_scores, void* workspace,
                                           cudaStream_t stream);

#ifdef __cplusplus
}
#endif
