// splat_gaussians on CUDA (kernels/splat_gaussians.cu). See tusk/ops/reference/splat_gaussians.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// Workspace of the forward: one SplatKeypoint record per keypoint.
size_t tusk_splat_gaussians_workspace_bytes(tusk_dtype dtype, int64_t batch, int64_t k);

// xy [B,K,2], descriptors [B,K,C], weights [B,K] or NULL -> out [B,C,H,W] (reduce_sum != 0) or
// [B,K,C,H,W]. variance > 0, radius >= 0.
cudaError_t tusk_splat_gaussians_forward(tusk_dtype dtype, const void* xy, const void* descriptors,
                                         const void* weights, int64_t batch, int64_t k,
                                         int64_t channels, int64_t height, int64_t width,
                                         double variance, int64_t radius, int normalize,
                                         int reduce_sum, void* out, void* workspace,
                                         cudaStream_t stream);

// grad shaped like the forward output -> grad_xy [B,K,2], grad_descriptors [B,K,C],
// grad_weights [B,K]; each output may be NULL (not wanted).
cudaError_t tusk_splat_gaussians_backward(tusk_dtype dtype, const void* grad, const void* xy,
                                          const void* descriptors, const void* weights,
                                          int64_t batch, int64_t k, int64_t channels,
                                          int64_t height, int64_t width, double variance,
                                          int64_t radius, int normalize, int reduce_sum,
                                          void* grad_xy, void* grad_descriptors,
                                          void* grad_weights, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
