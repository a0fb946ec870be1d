// The C interface of the CUDA kernels (kernels/*.cu): plain pointers, sizes, a dtype tag and a
// stream. No torch types cross it, so kernels/ compiles with nvcc alone and the dispatcher glue
// (csrc/<op>/<op>_cuda.cpp) is the only code that sees both worlds.
//
// Conventions for every launcher:
//  - tensors are contiguous, row-major, of the dtype named by the tag (index/bool outputs as
//    stated); sizes are int64 and all index arithmetic is 64-bit;
//  - work is queued on `stream` only: no allocation, no host synchronisation. Temporary memory
//    comes from the caller as `workspace` of the size the matching *_workspace_bytes() returns;
//  - zero-sized problems return cudaSuccess without launching anything;
//  - the return value is the launch status (cudaGetLastError() after the last launch), or
//    cudaErrorInvalidValue for an unknown dtype tag or negative sizes.
#pragma once

#include <cuda_runtime_api.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tusk_dtype {
  TUSK_FLOAT32 = 0,
  TUSK_FLOAT64 = 1,
  TUSK_FLOAT16 = 2,
  TUSK_BFLOAT16 = 3,
} tusk_dtype;

#ifdef __cplusplus
}
#endif
