// Where detect_keypoints may find peaks: the border option and the per-image valid size
// (tusk/ops/reference/detect_keypoints.py::peak_mask). Shared by the CPU and CUDA kernels.
//
// A peak of image b lies in [border, min(W, w_b) - border) x [border, min(H, h_b) - border),
// with (w_b, h_b) = image_size[2b], image_size[2b + 1] (int64, the valid (W, H) of an image
// padded at the bottom and right), or the map's own size without image_size. Sizes are clamped
// to [0, W] and [0, H] before the subtraction and the border to max(H, W), so no int64 value
// overflows; a negative or zero size leaves no peak.
#pragma once

#include <cstdint>

#include "tusk/common.h"

namespace tusk {

struct PeakRegion {
  int64_t x_lo, x_hi, y_lo, y_hi;  // half-open: x_lo <= x < x_hi, y_lo <= y < y_hi

  TUSK_HD bool contains(int64_t x, int64_t y) const {
    return x >= x_lo && x < x_hi && y >= y_lo && y < y_hi;
  }
};

TUSK_HD PeakRegion peak_region(int64_t border, const int64_t* image_size, int64_t b,
                               int64_t height, int64_t width) {
  const int64_t extent = height > width ? height : width;
  border = clamp_value<int64_t>(border, 0, extent);
  int64_t x_end = width, y_end = height;
  if (image_size != nullptr) {
    x_end = clamp_value<int64_t>(image_size[2 * b], 0, width);
    y_end = clamp_value<int64_t>(image_size[2 * b + 1], 0, height);
  }
  PeakRegion region;
  region.x_lo = border;
  region.x_hi = x_end - border;
  region.y_lo = border;
  region.y_hi = y_end - border;
  return region;
}

}  // namespace tusk
