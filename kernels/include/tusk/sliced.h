// Sort order and residuals of sliced_wasserstein (tusk/ops/reference/sliced_wasserstein.py).
//
// Each projection of a point set is sorted ascending, as torch.sort: NaN last, ties (including
// -0.0 == +0.0) by lower point index, which makes the order (and the gradient's choice among
// tied points) deterministic. Residuals are d SW / d projected point:
//   SW = mean_p mean_i (xs_i - ys_i)^2  =>  r_x(point of xs_i) = 2 (xs_i - ys_i) / (N P),
//                                           r_y(point of ys_i) = -r_x.
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

template <typename acc>
struct SortItem {
  acc value;
  int64_t index;
};

// Padding item: after every real value (NaN ones included, by its index).
template <typename acc>
TUSK_HD SortItem<acc> sort_item_sentinel() {
  SortItem<acc> item;
  item.value = static_cast<acc>(NAN);
  item.index = INT64_MAX;
  return item;
}

template <typename acc>
TUSK_HD bool sort_before(const SortItem<acc>& a, const SortItem<acc>& b) {
  const bool na = is_nan(a.value), nb = is_nan(b.value);
  if (na || nb) return na == nb ? a.index < b.index : nb;
  if (a.value != b.value) return a.value < b.value;
  return a.index < b.index;
}

template <typename acc>
struct SortItemBefore {
  TUSK_HD bool operator()(const SortItem<acc>& a, const SortItem<acc>& b) const {
    return sort_before(a, b);
  }
};

// d SW / d xs_i for one sorted pair (y's residual is the negative).
template <typename acc>
TUSK_HD acc sliced_residual(acc xs, acc ys, int64_t points, int64_t projections) {
  return acc(2) * (xs - ys) / (static_cast<acc>(points) * static_cast<acc>(projections));
}

}  // namespace tusk
