// Keypoint selection order, as one comparable key per pixel.
//
// The contract (tusk/ops/reference/detect_keypoints.py::select_peaks): NMS peaks before non-peaks,
// then descending score (NaN above everything, as torch.sort(descending=True) does; -0.0 == +0.0),
// then ascending flat index y*W + x. The key packs those three levels into two 64-bit words:
//   hi = orderable_key(score)                         (larger = better)
//   lo = peak << 63 | (INT64_MAX - index)             (peak bit first; then larger = lower index)
// and key_better() compares the peak bit, then hi, then the rest of lo. Indices are distinct, so
// two real keys never compare equal and any correct sort or merge yields the same order. The
// all-zero key (no peak, smallest score key, index INT64_MAX) is worse than every real pixel and
// pads partial tiles.
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

struct TopKey {
  uint64_t hi;
  uint64_t lo;
};

constexpr uint64_t kIndexMask = ~(uint64_t(1) << 63);  // == INT64_MAX

TUSK_HD TopKey make_topkey(double score, bool peak, int64_t index) {
  TopKey key;
  key.hi = orderable_key(score);
  key.lo = (uint64_t(peak ? 1 : 0) << 63) | (kIndexMask - static_cast<uint64_t>(index));
  return key;
}

TUSK_HD TopKey sentinel_topkey() {
  TopKey key;
  key.hi = 0;
  key.lo = 0;
  return key;
}

TUSK_HD bool topkey_is_peak(const TopKey& key) { return (key.lo >> 63) != 0; }

TUSK_HD int64_t topkey_index(const TopKey& key) {
  return static_cast<int64_t>(kIndexMask - (key.lo & kIndexMask));
}

TUSK_HD bool topkey_is_sentinel(const TopKey& key) { return key.hi == 0 && key.lo == 0; }

// True when a comes strictly before b in the selection order.
TUSK_HD bool key_better(const TopKey& a, const TopKey& b) {
  const uint64_t pa = a.lo >> 63, pb = b.lo >> 63;
  if (pa != pb) return pa > pb;
  if (a.hi != b.hi) return a.hi > b.hi;
  return a.lo > b.lo;
}

struct TopKeyBefore {
  TUSK_HD bool operator()(const TopKey& a, const TopKey& b) const { return key_better(a, b); }
};

}  // namespace tusk
