// Integer bookkeeping of gmm_prototype_samples
// (tusk/ops/reference/gmm_prototype_samples.py::prototype_counts), all in float64:
// largest-remainder rounding of the smoothed shares and the mapping from sample to prototype.
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

// Position of prototype m when prototypes are ordered by descending fractional part, ties by
// lower index (torch.sort(descending=True, stable=True)). O(M) per prototype.
TUSK_HD int64_t remainder_rank(const double* fraction, int64_t count, int64_t m) {
  const double f = fraction[m];
  int64_t rank = 0;
  for (int64_t j = 0; j < count; ++j) {
    rank += (fraction[j] > f || (fraction[j] == f && j < m)) ? 1 : 0;
  }
  return rank;
}

// Prototype of sample i: the first m with cumulative[m] > i (torch.searchsorted(right=True)),
// where cumulative[m] = counts[0] + ... + counts[m] and cumulative[count-1] = N > i.
TUSK_HD int64_t prototype_of_sample(const int64_t* cumulative, int64_t count, int64_t i) {
  int64_t lo = 0, hi = count - 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cumulative[mid] > i) {
      hi = mid;
    } else {
      lo = mid + 1;
    }
  }
  return lo;
}

// Gradient of y = v / max(|v|, eps) (F.normalize) with respect to v_c, given g_c = dL/dy_c,
// norm = |v| and vg = v . g:  (g_c - y_c (y . g)) / |v| when |v| >= eps, else g_c / eps
// (torch.clamp_min passes the gradient at equality).
template <typename acc>
TUSK_HD acc normalize_grad(acc v_c, acc g_c, acc norm, acc vg, acc eps) {
  if (norm >= eps) return (g_c - (v_c / norm) * (vg / norm)) / norm;
  return g_c / eps;
}

}  // namespace tusk
