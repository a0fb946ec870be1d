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
  template <typename S>
  void compute(const S* image, int64_t width, const ClippedWindow& win, int64_t px, int64_t py,
               A inv_temperature) {
    // One pass over the image copies the window into the buffer and finds its max; the
    // exponent then runs over the contiguous buffer (vectorised).
    const int64_t cols = win.columns();
    buffer_.resize((win.y_hi - win.y_lo + 1) * cols);
    A* out = buffer_.data();
    A m = -std::numeric_limits<A>::infinity();
    for (int64_t y = win.y_lo; y <= win.y_hi; ++y) {
      const S* row = image + y * width + win.x_lo;
      for (int64_t c = 0; c < cols; ++c) {
        const A v = static_cast<A>(row[c]);
        out[c] = v;
        m = v > m ? v : m;
      }
      out += cols;
    }
    max = m;
    A* a = buffer_.data();
    const int64_t count = static_cast<int64_t>(buffer_.size());
    for (int64_t i = 0; i < count; ++i) a[i] = (a[i] - m) * inv_temperature;
    exp_inplace(a, count);
    A total = 0, total_x = 0, total_y = 0;
    for (int64_t y = win.y_lo; y <= win.y_hi; ++y, a += cols) {
      A row_sum = 0, row_x = 0;
      for (int64_t c = 0; c < cols; ++c) {
        row_sum += a[c];
        row_x += a[c] * static_cast<A>(c);
      }
      total += row_sum;
      total_x += row_x;
      total_y += row_sum * static_cast<A>(y - py);
    }
    sum = total;
    offset_x = total_x / total + static_cast<A>(win.x_lo - px);
    offset_y = total_y / total;
  }

  // a_ij of the rows [y_lo, y_hi] of the window from the last compute(), row-major.
  const A* weights(const ClippedWindow& win, int64_t y_lo) const {
    return buffer_.data() + (y_lo - win.y_lo) * win.columns();
  }

 private:
  std::vector<A> buffer_;
};

}  // namespace tusk
