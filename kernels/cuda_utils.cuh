// Device-side utilities shared by the kernels in this folder: dtype dispatch, conversions to the
// accumulation type, deterministic warp/block reductions, atomics and launch geometry.
//
// Written without half-precision operator overloads or implicit conversions (PyTorch compiles
// CUDA sources with -D__CUDA_NO_HALF_OPERATORS__ and friends): every conversion is explicit.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "tusk/common.h"
#include "tusk/cuda/api.h"
#include "tusk/numeric.h"

namespace tusk {
namespace cuda {

constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;

// ---- conversions ------------------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ acc_t<T> to_acc(T v) {
  return static_cast<acc_t<T>>(v);
}
template <>
__device__ __forceinline__ float to_acc<__half>(__half v) {
  return __half2float(v);
}
template <>
__device__ __forceinline__ float to_acc<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_acc(acc_t<T> v) {
  return static_cast<T>(v);
}
template <>
__device__ __forceinline__ __half from_acc<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_acc<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

// Read-only loads through the non-coherent cache.
template <typename T>
__device__ __forceinline__ acc_t<T> load(const T* p) {
  return to_acc<T>(__ldg(p));
}

// ---- reductions (fixed butterfly order: every lane gets the same, reproducible result) --------
template <typename T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) v += __shfl_xor_sync(kFullMask, v, offset);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_max_nan(T v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
    v = max_propagate_nan(v, __shfl_xor_sync(kFullMask, v, offset));
  }
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
// `scratch` holds >= 32 values. Deterministic: warps reduce in a fixed tree, then warp 0 reduces
// the per-warp sums in a fixed tree. Contains __syncthreads: call from all threads.
template <typename T>
__device__ T block_sum(T v, T* scratch) {
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int warps = blockDim.x / kWarp;
  v = warp_sum(v);
  __syncthreads();  // scratch may still be read by a previous call
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = lane < warps ? scratch[lane] : T(0);
  total = warp_sum(total);
  return total;
}

// ---- atomics ------------------------------------------------------------------------------------
__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }

// ---- launch geometry --------------------------------------------------------------------------
constexpr int kThreads = 256;
// Grid-stride loops cover any size; capping the grid keeps the block count within limits and
// lets each thread amortise its setup (2^16 blocks of 256 threads is ~120 waves on an H100).
constexpr int64_t kMaxBlocks = int64_t(1) << 16;

inline unsigned blocks_for(int64_t work, int64_t threads = kThreads) {
  const int64_t blocks = (work + threads - 1) / threads;
  return static_cast<unsigned>(blocks < 1 ? 1 : (blocks > kMaxBlocks ? kMaxBlocks : blocks));
}

__device__ __forceinline__ int64_t global_thread() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}

__device__ __forceinline__ int64_t global_stride() {
  return static_cast<int64_t>(gridDim.x) * blockDim.x;
}

// Warp-granular grid-stride loops: warp w of the grid handles items w, w + warps, ...
__device__ __forceinline__ int64_t global_warp() { return global_thread() / kWarp; }
__device__ __forceinline__ int64_t global_warps() { return global_stride() / kWarp; }

// Status of the launches queued so far (launch-configuration errors surface here).
inline cudaError_t launch_status() { return cudaGetLastError(); }

}  // namespace cuda
}  // namespace tusk

// Runs BODY with scalar_t bound to the element type of TAG; unknown tags return
// cudaErrorInvalidValue from the enclosing launcher.
#define TUSK_DISPATCH_FLOATING(TAG, ...)                                  \
  switch (TAG) {                                                          \
    case TUSK_FLOAT32: {                                                  \
      using scalar_t = float;                                             \
      __VA_ARGS__();                                                      \
      break;                                                              \
    }                                                                     \
    case TUSK_FLOAT64: {                                                  \
      using scalar_t = double;                                            \
      __VA_ARGS__();                                                      \
      break;                                                              \
    }                                                                     \
    case TUSK_FLOAT16: {                                                  \
      using scalar_t = __half;                                            \
      __VA_ARGS__();                                                      \
      break;                                                              \
    }                                                                     \
    case TUSK_BFLOAT16: {                                                 \
      using scalar_t = __nv_bfloat16;                                     \
      __VA_ARGS__();                                                      \
      break;                                                              \
    }                                                                     \
    default:                                                              \
      return cudaErrorInvalidValue;                                       \
  }

// Element size of a dtype tag (0 for an unknown tag).
inline size_t tusk_dtype_size(tusk_dtype dtype) {
  switch (dtype) {
    case TUSK_FLOAT32: return 4;
    case TUSK_FLOAT64: return 8;
    case TUSK_FLOAT16: return 2;
    case TUSK_BFLOAT16: return 2;
  }
  return 0;
}

inline bool tusk_is_half(tusk_dtype dtype) {
  return dtype == TUSK_FLOAT16 || dtype == TUSK_BFLOAT16;
}
