// sample_descriptors on CUDA (kernels/sample_descriptors.cu). See tusk/ops/reference/sample_descriptors.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// features [B,C,H,W], xy [B,K,2] -> out [B,K,C]. padding: 0 = zeros, 1 = border (tusk::Padding).
cudaError_t tusk_sample_descriptors_forward(tusk_dtype dtype, const void* features, const void* xy,
                                            int64_t batch, int64_t channels, int64_t height,
                                            int64_t width, int64_t k, int padding, void* out,
                                            cudaStream_t stream);

// A float32 accumulation buffer [B,C,H,W] for float16/bfloat16 grad_features, else nothing.
size_t tusk_sample_descriptors_backward_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                        int64_t channels, int64_t height,
                                                        int64_t width);

// grad [B,K,C] -> grad_features [B,C,H,W] and grad_xy [B,K,2]; either output may be NULL (not
// wanted). deterministic != 0 selects the atomic-free grad_features path.
cudaError_t tusk_sample_descriptors_backward(tusk_dtype dtype, const void* grad,
                                             const void* features, const void* xy, int64_t batch,
                                             int64_t channels, int64_t height, int64_t width,
                                             int64_t k, int padding, int deterministic,
                                             void* grad_features, void* grad_xy, void* workspace,
                                             cudaStream_t stream);

#ifdef __cplusplus
}
#endif
