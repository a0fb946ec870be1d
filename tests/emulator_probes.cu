// Small CUDA kernels with known defects (and their fixed twins), compiled into the host emulation
// of the CUDA kernels (tests/cuda_emulation.py) so tests/test_cuda_emulator.py can prove the
// emulator reports each kind of defect instead of running past it. Written in the same CUDA
// dialect as kernels/*.cu and translated the same way. Every launcher returns the launch status.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

namespace {

// Each thread stores its index, then reads its neighbour's slot: correct only with the barrier.
template <bool kBarrier>
__global__ void neighbour_kernel(float* out) {
  __shared__ float slots[64];
  const int i = threadIdx.x;
  slots[i] = static_cast<float>(i);
  if (kBarrier) __syncthreads();
  out[i] = slots[(i + 1) % blockDim.x];
}

// Block b publishes b + 1, then reads what block b - 1 published: an inter-block race (blocks
// may run in any order and nothing orders them within one launch).
__global__ void previous_block_kernel(float* published, float* seen) {
  if (threadIdx.x != 0) return;
  published[blockIdx.x] = static_cast<float>(blockIdx.x + 1);
  seen[blockIdx.x] = blockIdx.x > 0 ? published[blockIdx.x - 1] : 0.0f;
}

// Reads shared memory nothing wrote.
__global__ void uninitialised_kernel(float* out) {
  __shared__ float never_written[32];
  out[threadIdx.x] = never_written[threadIdx.x];
}

// Half of warp 0 waits in a full-warp shuffle, the other half at a block barrier: a hang.
__global__ void deadlock_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  if (threadIdx.x < 16) {
    v = __shfl_xor_sync(0xffffffffu, v, 1);
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = v;
}

// Lanes 0-15 leave; the rest shuffle with a mask that still names them.
__global__ void exited_lane_kernel(float* out) {
  if (threadIdx.x < 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}

// A full-warp butterfly: every lane ends with the sum of the warp.
__global__ void warp_sum_kernel(float* out) {
  float v = static_cast<float>(threadIdx.x);
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const unsigned odd = __ballot_sync(0xffffffffu, threadIdx.x % 2);
  out[threadIdx.x] = v + static_cast<float>(__popc(odd));
}

__global__ void __launch_bounds__(64) bounded_kernel(float* out) { out[threadIdx.x] = 1.0f; }

__global__ void dynamic_shared_kernel(float* out) {
  extern __shared__ float dynamic[];
  dynamic[threadIdx.x] = 2.0f;
  __syncthreads();
  out[threadIdx.x] = dynamic[(threadIdx.x + 1) % blockDim.x];
}

__global__ void to_half_kernel(const float* in, uint16_t* half_bits, uint16_t* bfloat_bits,
                               float* half_back, float* bfloat_back, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const __half h = __float2half_rn(in[i]);
    const __nv_bfloat16 b = __float2bfloat16_rn(in[i]);
    half_bits[i] = __half_as_ushort(h);
    bfloat_bits[i] = __bfloat16_as_ushort(b);
    half_back[i] = __half2float(h);
    bfloat_back[i] = __bfloat162float(b);
  }
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) cudaError_t probe_neighbour(float* out, int threads, int barrier) {
  if (barrier) {
    neighbour_kernel<true><<<1, threads>>>(out);
  } else {
    neighbour_kernel<false><<<1, threads>>>(out);
  }
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_previous_block(float* published, float* seen, int blocks) {
  previous_block_kernel<<<blocks, 32>>>(published, seen);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_uninitialised(float* out) {
  uninitialised_kernel<<<1, 32>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_deadlock(float* out) {
  deadlock_kernel<<<1, 32>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_exited_lane(float* out) {
  exited_lane_kernel<<<1, 32>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_warp_sum(float* out, int threads) {
  warp_sum_kernel<<<1, threads>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_launch_bounds(float* out, int threads) {
  bounded_kernel<<<1, threads>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_dynamic_shared(float* out, int threads, size_t bytes) {
  dynamic_shared_kernel<<<1, threads, bytes>>>(out);
  return cudaGetLastError();
}

__attribute__((visibility("default"))) cudaError_t probe_to_half(const float* in, uint16_t* half_bits,
                                                                 uint16_t* bfloat_bits, float* half_back,
                                                                 float* bfloat_back, int64_t n) {
  to_half_kernel<<<3, 128>>>(in, half_bits, bfloat_bits, half_back, bfloat_back, n);
  return cudaGetLastError();
}

}  // extern "C"
