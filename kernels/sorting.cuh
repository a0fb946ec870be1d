// Device sorting used by detect_keypoints (top-K) and sliced_wasserstein (large N):
// a block-wide bitonic sort in shared memory and the merge-path rounds of a SortPlan
// (tusk/sort_plan.h). The per-thread steps live in tusk/merge.h and are tested on the host.
#pragma once

#include "cuda_utils.cuh"
#include "tusk/merge.h"
#include "tusk/sort_plan.h"
#include "tusk/workspace.h"

namespace tusk {
namespace cuda {

// Sorts items[0, n) (n a power of two, in shared memory) into before-order. All threads of the
// block must call it; it starts and ends with a barrier, so the caller may fill `items` right
// before and read them right after.
template <typename Item, typename Before>
__device__ void block_bitonic_sort(Item* items, int64_t n, Before before) {
  __syncthreads();
  for (int64_t size = 2; size <= n; size <<= 1) {
    for (int64_t stride = size >> 1; stride > 0; stride >>= 1) {
      for (int64_t pair = threadIdx.x; pair < n / 2; pair += blockDim.x) {
        bitonic_exchange(items, pair, size, stride, before);
      }
      __syncthreads();
    }
  }
}

// One merge round (tusk/merge.h::merge_round_step), one thread per output slot.
template <typename Item, typename Before>
__global__ void merge_round_kernel(const Item* __restrict__ in,
                                   const int64_t* __restrict__ in_valid, Item* __restrict__ out,
                                   int64_t* __restrict__ out_valid, int64_t segments,
                                   int64_t stride, int64_t in_lists, int64_t in_length,
                                   int64_t out_lists, int64_t out_length, Before before) {
  const int64_t total = segments * out_lists * out_length;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    merge_round_step(in, in_valid, out, out_valid, stride, in_lists, in_length, out_lists,
                     out_length, t, before);
  }
}

// Runs the merge rounds of `plan` on buffers[0] / valid[0] (phase-1 output). Returns the buffer
// holding the final lists (one per segment, at segment * plan.stride).
template <typename Item, typename Before>
Item* run_merge_rounds(const SortPlan& plan, Item* buffers[2], int64_t* valid[2], Before before,
                       cudaStream_t stream) {
  for (int round = 1; round <= plan.rounds; ++round) {
    const int64_t in_lists = plan_lists(plan, round - 1), in_length = plan_length(plan, round - 1);
    const int64_t out_lists = plan_lists(plan, round), out_length = plan_length(plan, round);
    const int64_t work = plan.segments * out_lists * out_length;
    merge_round_kernel<<<blocks_for(work), kThreads, 0, stream>>>(
        buffers[(round - 1) % 2], valid[(round - 1) % 2], buffers[round % 2], valid[round % 2],
        plan.segments, plan.stride, in_lists, in_length, out_lists, out_length, before);
  }
  return buffers[plan.rounds % 2];
}

}  // namespace cuda
}  // namespace tusk
