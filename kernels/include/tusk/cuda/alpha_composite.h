// alpha_composite on CUDA (kernels/alpha_composite.cu). See tusk/ops/reference/alpha_composite.py.
#pragma once

#include "tusk/cuda/api.h"

#ifdef __cplusplus
extern "C" {
#endif

// rgb [B,K,C,P], alpha_logits [B,K,P] (P = H*W) -> image [B,C,P], alpha [B,K,P].
cudaError_t tusk_alpha_composite_forward(tusk_dtype dtype, const void* rgb, const void* logits,
                                         int64_t batch, int64_t k, int64_t channels,
                                         int64_t pixels, void* image, void* alpha,
                                         cudaStream_t stream);

// Workspace of the backward: a float32 [B,K,P] scratch for float16/bfloat16 when grad_logits is
// wanted, else nothing.
size_t tusk_alpha_composite_backward_workspace_bytes(tusk_dtype dtype, int64_t batch, int64_t k,
                                                     int64_t pixels, int want_grad_logits);

// grad_image [B,C,P] and grad_alpha [B,K,P] (either may be NULL = zero) -> grad_rgb [B,K,C,P] and
// grad_logits [B,K,P] (either may be NULL = not wanted). The softmax is recomputed.
cudaError_t tusk_alpha_composite_backward(tusk_dtype dtype, const void* grad_image,
                                          const void* grad_alpha, const void* rgb,
                                          const void* logits, int64_t batch, int64_t k,
                                          int64_t channels, int64_t pixels, void* grad_rgb,
                                          void* grad_logits, void* workspace, cudaStream_t stream);

#ifdef __cplusplus
}
#endif
