// sliced_wasserstein on CUDA (kernels/sliced_wasserstein.cu). See tusk/ops/reference/sliced_wasserstein.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// Workspace of the forward: per-(problem, projection) partial sums, plus sort buffers when
// N > 2048 (the largest set sorted in one block's shared memory).
size_t tusk_sliced_wasserstein_workspace_bytes(tusk_dtype dtype, int64_t groups, int64_t points,
                                               int64_t projections);

// x, y [G,N,C], projections [C,P] -> distance [G], x_residual, y_residual [G,N,P]
// (d distance / d projected point; see tusk/sliced.h).
cudaError_t tusk_sliced_wasserstein_forward(tusk_dtype dtype, const void* x, const void* y,
                                            const void* projections, int64_t groups,
                                            int64_t points, int64_t channels, int64_t count,
                                            void* distance, void* x_residual, void* y_residual,
                                            void* workspace, cudaStream_t stream);

// Workspace of the backward: split-K partial sums of grad_projections.
size_t tusk_sliced_wasserstein_backward_workspace_bytes(tusk_dtype dtype, int64_t groups,
                                                        int64_t points, int64_t channels,
                                                        int64_t count);

// grad [G] -> grad_x, grad_y [G,N,C], grad_projections [C,P]; each output may be NULL.
cudaError_t tusk_sliced_wasserstein_backward(tusk_dtype dtype, const void* grad, const void* x,
                                             const void* y, const void* projections,
                                             const void* x_residual, const void* y_residual,
                                             int64_t groups, int64_t points, int64_t channels,
                                             int64_t count, void* grad_x, void* grad_y,
                                             void* grad_projections, void* workspace,
                                             cudaStream_t stream);

#ifdef __cplusplus
}
#endif
