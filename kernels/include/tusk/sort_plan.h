// The schedule of a segmented "sort then keep the best `keep`" on the GPU, as plain arithmetic.
//
// Each of `segments` independent problems has `items` items. Phase 1 cuts a segment into tiles of
// `tile` items (a power of two), sorts every tile (or the tile's candidates) in shared memory and
// keeps its best min(keep, tile) items. Then `rounds` merge rounds pair up neighbouring lists
// (merge path, one output per thread; tusk/merge.h::merge_round_step) and keep the best
// min(keep, 2 * previous length) of each merge, until one list is left. plan_length() is each
// round's list capacity; how many slots of a list are real is recorded per list (a `valid`
// count), so a phase 1 that keeps fewer candidates makes every later round cheaper. The final
// list holds `keep` items whenever the segment had at least `keep` candidates.
// Lists live in two ping-pong buffers: round r writes buffer r % 2 (phase 1 is round 0), and
// their valid counts in two arrays of segments * tiles entries.
//
// Used by detect_keypoints (keep = K, one segment per image) and sliced_wasserstein for large N
// (keep = N, one segment per (problem, projection, side)). Everything is known from shapes on the
// host, so no launch ever needs a device-to-host synchronisation.
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

// Largest tile sorted in shared memory: 2048 items of 16 bytes = 32 KiB, under the 48 KiB that
// every block may use without opting in, and half a tile per thread at 1024 threads.
constexpr int64_t kMaxSortTile = 2048;

struct SortPlan {
  int64_t segments = 0;
  int64_t items = 0;
  int64_t keep = 0;
  int64_t tile = 1;       // items per phase-1 tile (power of two)
  int64_t threads = 32;   // threads per phase-1 block
  int64_t tiles = 0;      // phase-1 tiles per segment
  int rounds = 0;         // merge rounds after phase 1
  int64_t stride = 0;     // entries per segment in each ping-pong buffer
};

// Number of lists per segment after round r (round 0 = phase 1).
TUSK_HD int64_t plan_lists(const SortPlan& plan, int round) {
  int64_t lists = plan.tiles;
  for (int r = 0; r < round; ++r) lists = (lists + 1) / 2;
  return lists;
}

// Length of every list after round r.
TUSK_HD int64_t plan_length(const SortPlan& plan, int round) {
  int64_t length = min_value(plan.keep, plan.tile);
  for (int r = 0; r < round; ++r) length = min_value(plan.keep, 2 * length);
  return length;
}

// Requires segments >= 0, items >= 1, 1 <= keep <= items.
inline SortPlan make_sort_plan(int64_t segments, int64_t items, int64_t keep,
                               int64_t max_tile = kMaxSortTile) {
  SortPlan plan;
  plan.segments = segments;
  plan.items = items;
  plan.keep = keep;
  plan.tile = min_value(max_tile, next_pow2(items));
  plan.threads = min_value<int64_t>(1024, max_value<int64_t>(32, plan.tile / 2));
  plan.tiles = ceil_div(items, plan.tile);
  plan.rounds = 0;
  while ((int64_t(1) << plan.rounds) < plan.tiles) ++plan.rounds;
  plan.stride = 0;
  for (int r = 0; r <= plan.rounds; ++r) {
    plan.stride = max_value(plan.stride, plan_lists(plan, r) * plan_length(plan, r));
  }
  return plan;
}

}  // namespace tusk
