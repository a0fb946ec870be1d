// Device sorting used by detect_keypoints (top-K) and sliced_wasserstein (large N):
// a block-wide bitonic sort in shared memory and the merge-path rounds of a SortPlan
// (tusk/sort_plan.h). The index arithmetic lives in tusk/merge.h and is tested on the host.
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

// One merge round: list pairs (2j, 2j+1) of every segment in `in` -> list j in `out`, keeping
// `out_length` items (sentinel-padded past the end of both inputs). One thread per output item.
template <typename Item, typename Before>
__global__ void merge_round_kernel(const Item* __restrict__ in, Item* __restrict__ out,
                                   int64_t segments, int64_t stride, int64_t in_lists,
                                   int64_t in_length, int64_t out_lists, int64_t out_length,
                                   Item sentinel, Before before) {
  const int64_t total = segments * out_lists * out_length;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t rank = t % out_length;
    const int64_t list = (t / out_length) % out_lists;
    const int64_t segment = t / (out_length * out_lists);
    const Item* a = in + segment * stride + (2 * list) * in_length;
    const bool has_b = 2 * list + 1 < in_lists;
    const Item* b = a + in_length;
    const int64_t lb = has_b ? in_length : 0;
    Item value = sentinel;
    if (rank < in_length + lb) value = merge_path_pick(a, in_length, b, lb, rank, before);
    out[segment * stride + list * out_length + rank] = value;
  }
}

// Runs the merge rounds of `plan` on buffers[0] (phase-1 output). Returns the buffer holding the
// final lists (one list of plan.keep items per segment, at segment * plan.stride).
template <typename Item, typename Before>
Item* run_merge_rounds(const SortPlan& plan, Item* buffers[2], Item sentinel, Before before,
                       cudaStream_t stream) {
  for (int round = 1; round <= plan.rounds; ++round) {
    const int64_t in_lists = plan_lists(plan, round - 1), in_length = plan_length(plan, round - 1);
    const int64_t out_lists = plan_lists(plan, round), out_length = plan_length(plan, round);
    const int64_t work = plan.segments * out_lists * out_length;
    merge_round_kernel<<<blocks_for(work), kThreads, 0, stream>>>(
        buffers[(round - 1) % 2], buffers[round % 2], plan.segments, plan.stride, in_lists,
        in_length, out_lists, out_length, sentinel, before);
  }
  return buffers[plan.rounds % 2];
}

}  // namespace cuda
}  // namespace tusk
