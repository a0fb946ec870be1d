// Local soft-argmax of one keypoint on the CPU (the contract is tusk/ops/reference/
// detect_keypoints.py, soft_argmax): over the window x window neighbourhood of pixel
// p = (px, py) clipped to the image,
//   a_ij = exp((s_ij - s_max) / T),   xy = p + sum a_ij (dx, dy) / sum a_ij,
//   d xy / d s_ij = a_ij / (T sum a) * ((dx, dy) - (xy - p))   (s_max cancels).
// The weights go through a small buffer so that exp runs vectorised (vec_exp.h); backward
// reads them back from it for its scatter.
// NaN in the window gives NaN offsets (NaN in, NaN out); indices always stay in the image.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "detect_keypoints/vec_exp.h"

namespace tusk {

// The window of pixel (px, py) clipped to the image: rows [y_lo, y_hi], columns [x_lo, x_hi].
struct ClippedWindow {
  int64_t x_lo, x_hi, y_lo, y_hi;

  ClippedWindow(int64_t px, int64_t py, int64_t radius, int64_t height, int64_t width)
      : x_lo(std::max<int64_t>(px - radius, 0)),
        x_hi(std::min(px + radius, width - 1)),
        y_lo(std::max<int64_t>(py - radius, 0)),
        y_hi(std::min(py + radius, height - 1)) {}

  int64_t columns() const { return x_hi - x_lo + 1; }
};

template <typename A>
class SoftArgmax {
 public:
  A max = 0;       // s_max over the window (NaNs skipped; the sums below still see them)
  A sum = 0;       // sum a_ij
  A offset_x = 0;  // sum a_ij dx / sum a_ij
  A offset_y = 0;

  // Window max, normaliser and offsets of pixel (px, py) in `image` ([H, W] row-major).
  //
  // The window is copied into a contiguous buffer while the max is taken, the exponent runs over
  // the buffer (vectorised), and the sums are kept per column (sum_r a, sum_r a dy) so that the
  // dependency chains are one per column instead of one per window. One thread, in cache:
  // 21 x 21 windows 2.4 -> 1.4 us per keypoint from the per-column sums (0.73 us with the
  // Estrin-form exp of vec_exp.h); 5 x 5 windows 146 -> 91 ns.
  template <typename S>
  void compute(const S* image, int64_t width, const ClippedWindow& win, int64_t px, int64_t py,
               A inv_temperature) {
    const int64_t cols = win.columns(), rows = win.y_hi - win.y_lo + 1, count = rows * cols;
    buffer_.resize(count);
    if (count == 1) {
      // A one-pixel window (window = 1: selection only): what the general path computes, without
      // its per-column buffers. The exponent is (v - v) / T, 0 for a finite v (a = 1, offsets
      // 0) and NaN otherwise (a, sum and offsets NaN, as exp and 0 * NaN / NaN give there;
      // also for an inverse temperature that overflowed to inf).
      // Two 480 x 640 maps, 12k peaks each, K = 33708, window 1, one thread: 5.8 -> 4.4 ms.
      const A v = static_cast<A>(image[win.y_lo * width + win.x_lo]);
      max = v > -std::numeric_limits<A>::infinity() ? v : -std::numeric_limits<A>::infinity();
      const A weight = (v - max) * inv_temperature == A(0) ? A(1) : std::numeric_limits<A>::quiet_NaN();
      buffer_[0] = weight;
      sum = weight;
      offset_x = weight * static_cast<A>(win.x_lo - px) / weight;
      offset_y = weight * static_cast<A>(win.y_lo - py) / weight;
      return;
    }
    column_.assign(3 * cols, A(0));
    A* col_max = column_.data();
    std::fill(col_max, col_max + cols, -std::numeric_limits<A>::infinity());
    A* a = buffer_.data();
    for (int64_t y = win.y_lo; y <= win.y_hi; ++y, a += cols) {
      const S* row = image + y * width + win.x_lo;
      for (int64_t c = 0; c < cols; ++c) {
        const A v = static_cast<A>(row[c]);
        a[c] = v;
        col_max[c] = v > col_max[c] ? v : col_max[c];
      }
    }
    A m = -std::numeric_limits<A>::infinity();
    for (int64_t c = 0; c < cols; ++c) m = col_max[c] > m ? col_max[c] : m;
    max = m;
    a = buffer_.data();
    for (int64_t i = 0; i < count; ++i) a[i] = (a[i] - m) * inv_temperature;
    exp_inplace(a, count);
    A* col_sum = column_.data() + cols;
    A* col_dy = column_.data() + 2 * cols;
    for (int64_t y = win.y_lo; y <= win.y_hi; ++y, a += cols) {
      const A dy = static_cast<A>(y - py);
      for (int64_t c = 0; c < cols; ++c) {
        col_sum[c] += a[c];
        col_dy[c] += a[c] * dy;
      }
    }
    A total = 0, total_x = 0, total_y = 0;
    for (int64_t c = 0; c < cols; ++c) {
      total += col_sum[c];
      total_x += col_sum[c] * static_cast<A>(win.x_lo + c - px);
      total_y += col_dy[c];
    }
    sum = total;
    offset_x = total_x / total;
    offset_y = total_y / total;
  }

  // a_ij of the rows [y_lo, y_hi] of the window from the last compute(), row-major.
  const A* weights(const ClippedWindow& win, int64_t y_lo) const {
    return buffer_.data() + (y_lo - win.y_lo) * win.columns();
  }

 private:
  std::vector<A> buffer_;  // a_ij of the window, row-major
  std::vector<A> column_;  // per-column max, sum a and sum a dy
};

}  // namespace tusk
