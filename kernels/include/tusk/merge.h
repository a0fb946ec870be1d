// Index arithmetic of the two parallel sorting building blocks used by the CUDA kernels:
// a bitonic sorting network (per thread block, in shared memory) and merge-path merging of two
// sorted lists (one output element per thread). Both are written as per-thread TUSK_HD steps so
// the host tests (kernels/tests/) can run exactly these steps thread by thread.
//
// "before(a, b)" is a strict weak order: true when a must come first. Sorted lists are in
// "before" order (best first).
#pragma once

#include <cstdint>

#include "tusk/common.h"

namespace tusk {

// --- Bitonic sort of n = 2^m items -----------------------------------------------------------
// Stage (size, stride) for size = 2, 4, ..., n and stride = size/2, ..., 1. In each stage the
// n/2 pairs are disjoint, so pair p can be handled by any thread without a race; a barrier
// separates stages.

// First element of pair p in a stage with the given stride (the second is first + stride).
TUSK_HD int64_t bitonic_first(int64_t pair, int64_t stride) {
  return 2 * stride * (pair / stride) + (pair % stride);
}

// Compare-exchange of one pair: within blocks of `size` the sub-sequences alternate direction
// so that the final stage (size == n) leaves the whole array in before-order.
template <typename Item, typename Before>
TUSK_HD void bitonic_exchange(Item* items, int64_t pair, int64_t size, int64_t stride,
                              Before before) {
  const int64_t i = bitonic_first(pair, stride), j = i + stride;
  const bool ascending = (i & size) == 0;  // "ascending" = before-order
  const Item a = items[i], b = items[j];
  const bool swap = ascending ? before(b, a) : before(a, b);
  if (swap) {
    items[i] = b;
    items[j] = a;
  }
}

// --- Merge path -------------------------------------------------------------------------------
// Merging sorted lists A (length la) and B (length lb), stable (A first on ties): how many of
// the first `rank` outputs come from A. Binary search over the anti-diagonal, O(log min(la, lb)).
template <typename Item, typename Before>
TUSK_HD int64_t merge_path_split(const Item* a, int64_t la, const Item* b, int64_t lb,
                                 int64_t rank, Before before) {
  int64_t lo = rank > lb ? rank - lb : 0;
  int64_t hi = rank < la ? rank : la;
  while (lo < hi) {
    const int64_t i = lo + (hi - lo) / 2;  // lo <= i < hi, so 0 <= rank - 1 - i < lb
    const int64_t j = rank - 1 - i;
    if (!before(b[j], a[i])) {
      lo = i + 1;  // a[i] is output before b[j]: more than i outputs come from A
    } else {
      hi = i;
    }
  }
  return lo;
}

// Output element `rank` (0-based, rank < la + lb) of the stable merge of A and B.
template <typename Item, typename Before>
TUSK_HD Item merge_path_pick(const Item* a, int64_t la, const Item* b, int64_t lb, int64_t rank,
                             Before before) {
  const int64_t i = merge_path_split(a, la, b, lb, rank, before);
  const int64_t j = rank - i;
  if (i >= la) return b[j];
  if (j >= lb) return a[i];
  return before(b[j], a[i]) ? b[j] : a[i];
}

// --- One thread of a merge round of a SortPlan (tusk/sort_plan.h) ------------------------------
// Thread t makes output item `rank` of list `list` of segment `segment` from input lists 2*list
// and 2*list+1 (the last list of an odd count has no partner). Lists hold `*_length` slots at
// segment * stride + list * length, of which the first `valid[segment * lists + list]` are real;
// the thread with rank 0 records the output list's valid count, threads past it do nothing.
template <typename Item, typename Before>
TUSK_HD void merge_round_step(const Item* in, const int64_t* in_valid, Item* out,
                              int64_t* out_valid, int64_t stride, int64_t in_lists,
                              int64_t in_length, int64_t out_lists, int64_t out_length, int64_t t,
                              Before before) {
  const int64_t rank = t % out_length;
  const int64_t list = (t / out_length) % out_lists;
  const int64_t segment = t / (out_length * out_lists);
  const int64_t first = 2 * list;
  const bool has_b = first + 1 < in_lists;
  const int64_t la = in_valid[segment * in_lists + first];
  const int64_t lb = has_b ? in_valid[segment * in_lists + first + 1] : 0;
  const int64_t valid = la + lb < out_length ? la + lb : out_length;
  if (rank == 0) out_valid[segment * out_lists + list] = valid;
  if (rank >= valid) return;
  const Item* a = in + segment * stride + first * in_length;
  const Item* b = has_b ? a + in_length : a;
  out[segment * stride + list * out_length + rank] = merge_path_pick(a, la, b, lb, rank, before);
}

}  // namespace tusk
