// Host helpers for the CUDA glue (csrc/<op>/<op>_cuda.cpp): device/dtype checks, the dtype tag
// of the kernels' C interface, the current stream, workspaces and launch-status checks.
//
// The glue includes only c10/cuda headers (not ATen/cuda/CUDAContext.h, which pulls in cuBLAS
// and cuSPARSE headers) so CMake can compile it against a CPU wheel's headers on machines
// without those libraries.
//
// With TUSK_CUDA_EMULATION defined (the tests' host emulation of the kernels, tests/cuda_emulation)
// the same glue runs the kernels on the host: tensors are CPU tensors, there is no device guard
// or stream, launch failures carry the emulator's explanation, and the ops register in
// torch.ops.tusk_cuda_emulation at the CPU key instead of torch.ops.tusk at the CUDA key.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>
#ifndef TUSK_CUDA_EMULATION
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>

#include "common.h"
#include "tusk/cuda/api.h"

#ifdef TUSK_CUDA_EMULATION
#define TUSK_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(tusk_cuda_emulation, CPU, m)
#define TUSK_CUDA_CHECK(EXPR)                                                                   \
  do {                                                                                          \
    const cudaError_t tusk_status = (EXPR);                                                     \
    TORCH_CHECK(tusk_status == cudaSuccess, "emulated CUDA launch failed: ",                    \
                cudaGetErrorString(tusk_status), ": ", tusk_emulation_error_message());         \
  } while (0)
#else
#define TUSK_CUDA_LIBRARY_IMPL(m) TORCH_LIBRARY_IMPL(tusk, CUDA, m)
#define TUSK_CUDA_CHECK(EXPR) C10_CUDA_CHECK(EXPR)
#endif

namespace tusk {
namespace cuda_glue {

#ifdef TUSK_CUDA_EMULATION
constexpr bool kEmulated = true;
struct DeviceGuard {
  explicit DeviceGuard(c10::Device) {}
};
#else
constexpr bool kEmulated = false;
using DeviceGuard = c10::cuda::CUDAGuard;
#endif

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
  if (kEmulated) {
    TORCH_CHECK(t.is_cpu(), name, " must be a CPU tensor (the emulated CUDA kernels), got ", t.device());
  } else {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor, got ", t.device());
  }
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
#ifdef TUSK_CUDA_EMULATION
inline cudaStream_t current_stream() { return nullptr; }
#else
inline cudaStream_t current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }
#endif

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
