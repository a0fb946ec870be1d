// Host helpers for the CUDA glue (csrc/<op>/<op>_cuda.cpp): device/dtype checks, the dtype tag
// of the kernels' C interface, the current stream, workspaces and launch-status checks.
//
// The glue includes only c10/cuda headers (not ATen/cuda/CUDAContext.h, which pulls in cuBLAS
// and cuSPARSE headers) so CMake can compile it against a CPU wheel's headers on machines
// without those libraries.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>

#include "common.h"
#include "tusk/cuda/api.h"

namespace tusk {
namespace cuda_glue {

inline tusk_dtype dtype_tag(const at::Tensor& t, const char* name) {
  switch (t.scalar_type()) {
    case at::kFloat: return TUSK_FLOAT32;
    case at::kDouble: return TUSK_FLOAT64;
    case at::kHalf: return TUSK_FLOAT16;
    case at::kBFloat16: return TUSK_BFLOAT16;
    default:
      break;
  }
  TORCH_CHECK(false, name, " must be float16, bfloat16, float32 or float64 on CUDA, got ",
              t.scalar_type());
}

inline void check_cuda(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.defined(), name, " must be defined");
  TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got ", t.device());
}

inline void check_same_device(const at::Tensor& a, const at::Tensor& b, const char* name_a,
                              const char* name_b) {
  TORCH_CHECK(a.device() == b.device(), name_a, " and ", name_b, " must be on one device, got ",
              a.device(), " and ", b.device());
}

// A float input of the op: on CUDA, `ndim` dims, the dtype of `like` (when given).
inline void check_input(const at::Tensor& t, const char* name, int64_t ndim,
                        const at::Tensor* like = nullptr, const char* like_name = nullptr) {
  check_cuda(t, name);
  check_float_tensor(t, name, ndim);
  dtype_tag(t, name);
  if (like != nullptr) {
    check_same_dtype(*like, t, like_name, name);
    check_same_device(*like, t, like_name, name);
  }
}

inline void check_shape(const at::Tensor& t, const char* name, at::IntArrayRef expected) {
  TORCH_CHECK(t.sizes() == expected, name, " must have shape ", expected, ", got ", t.sizes());
}

// The stream the caller is using on the current device (set by the guard).
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// Scratch memory from PyTorch's caching allocator, stream-ordered: safe to release as soon as the
// kernels using it are queued.
inline at::Tensor workspace(size_t bytes, const at::Tensor& like) {
  return at::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))},
                   like.options().dtype(at::kByte));
}

inline bool deterministic() { return at::globalContext().deterministicAlgorithms(); }

// Data pointer of an optional cotangent/output: NULL when absent or empty.
inline void* data_or_null(const at::Tensor& t) {
  return (t.defined() && t.numel() > 0) ? t.data_ptr() : nullptr;
}

}  // namespace cuda_glue
}  // namespace tusk
