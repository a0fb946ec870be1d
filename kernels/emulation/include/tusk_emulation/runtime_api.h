// The part of the CUDA runtime API that tusk's kernels and glue use, implemented on the host by
// the emulator (kernels/emulation/runtime.cpp). Types and enum values follow CUDA's, so the
// launchers in kernels/*.cu compile unchanged; memory is ordinary host memory and a "stream" is
// a label (everything runs synchronously, in order).
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
} cudaError_t;

typedef struct CUstream_st* cudaStream_t;

// Returns and clears the status of the last launch (as CUDA's).
cudaError_t cudaGetLastError(void);
const char* cudaGetErrorString(cudaError_t error);
cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes, cudaStream_t stream);

// ---- emulator controls (not CUDA): used by the tests through ctypes ------------------------------

// Order in which the blocks of a grid, and the threads of a block between synchronisation points,
// run: 0 = ascending index, 1 = descending, 2 = shuffled by `seed` (threads reshuffled after
// every barrier). Code that reads memory another thread writes without a barrier between them,
// or that one block writes and another block of the same launch reads, gives different results
// under different orders.
void tusk_emulation_set_schedule(int order, uint64_t seed);

// Why the last failed launch failed (a fault inside a kernel, or a bad launch configuration);
// empty when none failed since the last call of tusk_emulation_clear_error().
const char* tusk_emulation_error_message(void);
void tusk_emulation_clear_error(void);

// Kernel launches run so far (tests use it to prove the kernels ran).
int64_t tusk_emulation_launches(void);

#ifdef __cplusplus
}
#endif
