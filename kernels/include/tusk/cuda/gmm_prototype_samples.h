// gmm_prototype_samples on CUDA (kernels/gmm_prototype_samples.cu).
// See tusk/ops/reference/gmm_prototype_samples.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// Workspace of the forward: nearest prototype and deviation per feature, float64 counts/shares
// and the cumulative counts.
size_t tusk_gmm_prototype_samples_workspace_bytes(int64_t prototypes, int64_t features);

// prototypes [M,C], features [N,C], noise [N,C] -> samples [N,C] (unit norm), assignment [N]
// (int64 prototype of each sample, non-decreasing).
cudaError_t tusk_gmm_prototype_samples_forward(tusk_dtype dtype, const void* prototypes,
                                               const void* features, const void* noise,
                                               int64_t count, int64_t points, int64_t channels,
                                               double smoothing, void* samples,
                                               int64_t* assignment, void* workspace,
                                               cudaStream_t stream);

// Workspace of the backward: the per-sample gradient [N,C] in the accumulation type.
size_t tusk_gmm_prototype_samples_backward_workspace_bytes(tusk_dtype dtype, int64_t points,
                                                           int64_t channels);

// grad [N,C], prototypes [M,C], noise [N,C], assignment [N] -> grad_prototypes [M,C].
cudaError_t tusk_gmm_prototype_samples_backward(tusk_dtype dtype, const void* grad,
                                                const void* prototypes, const void* noise,
                                                const int64_t* assignment, int64_t count,
                                                int64_t points, int64_t channels,
                                                void* grad_prototypes, void* workspace,
                                                cudaStream_t stream);

#ifdef __cplusplus
}
#endif
