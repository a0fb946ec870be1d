// Bilinear taps in pixel coordinates, one definition for every compiled backend.
//
// Conventions (tusk/ops/reference/sample_descriptors.py is the specification):
//  - pixel centres at integers; x0 = floor(x), x1 = x0 + 1, weight of x1 = x - x0;
//  - Padding::Zeros : taps outside the image read 0;
//  - Padding::Border: x is clamped to [0, W-1] first (d clamp / dx = 1 on the closed interval,
//    0 outside, like torch.clamp), then tap indices are clamped into the image.
// Non-finite coordinates give NaN weights and in-range indices: NaN in, NaN out, never an
// out-of-bounds access.
#pragma once

#include "tusk/common.h"

namespace tusk {

enum class Padding : int { Zeros = 0, Border = 1 };

template <typename T>
struct BilinearTaps {
  int64_t index[4];  // flat y * W + x, always inside the image
  T weight[4];       // interpolation weight; 0 for taps outside the image (zeros padding)
  T dweight_dx[4];   // d weight / d x (includes the border clamp's gradient)
  T dweight_dy[4];
};

// Taps ordered (x0,y0), (x1,y0), (x0,y1), (x1,y1).
template <typename T>
TUSK_HD BilinearTaps<T> bilinear_taps(T x, T y, int64_t height, int64_t width, Padding padding) {
  BilinearTaps<T> taps;
  const T max_x = static_cast<T>(width - 1), max_y = static_cast<T>(height - 1);
  T grad_x = T(1), grad_y = T(1);
  const bool finite = is_finite(x) && is_finite(y);
  if (!finite) {
    const T nan = x + y + NAN;
    for (int i = 0; i < 4; ++i) {
      taps.index[i] = 0;
      taps.weight[i] = taps.dweight_dx[i] = taps.dweight_dy[i] = nan;
    }
    return taps;
  }
  if (padding == Padding::Border) {
    grad_x = (x >= T(0) && x <= max_x) ? T(1) : T(0);
    grad_y = (y >= T(0) && y <= max_y) ? T(1) : T(0);
    x = clamp_value(x, T(0), max_x);
    y = clamp_value(y, T(0), max_y);
  }
  // Clamp far-away coordinates before the integer cast; in/out status is unchanged.
  const T fx0 = clamp_value(floor_value(x), T(-2), max_x + T(2));
  const T fy0 = clamp_value(floor_value(y), T(-2), max_y + T(2));
  const T wx1 = clamp_value(x, T(-2), max_x + T(3)) - fx0;
  const T wy1 = clamp_value(y, T(-2), max_y + T(3)) - fy0;
  const T wx0 = T(1) - wx1, wy0 = T(1) - wy1;
  const int64_t x0 = static_cast<int64_t>(fx0), y0 = static_cast<int64_t>(fy0);
  const int64_t xs[4] = {x0, x0 + 1, x0, x0 + 1};
  const int64_t ys[4] = {y0, y0, y0 + 1, y0 + 1};
  const T wxs[4] = {wx0, wx1, wx0, wx1};
  const T wys[4] = {wy0, wy0, wy1, wy1};
  const T sx[4] = {T(-1), T(1), T(-1), T(1)};  // d wx / d x per tap
  const T sy[4] = {T(-1), T(-1), T(1), T(1)};
  for (int i = 0; i < 4; ++i) {
    const bool inside = xs[i] >= 0 && xs[i] < width && ys[i] >= 0 && ys[i] < height;
    const T on = (inside || padding == Padding::Border) ? T(1) : T(0);
    const int64_t xi = xs[i] < 0 ? 0 : (xs[i] >= width ? width - 1 : xs[i]);
    const int64_t yi = ys[i] < 0 ? 0 : (ys[i] >= height ? height - 1 : ys[i]);
    taps.index[i] = yi * width + xi;
    taps.weight[i] = on * wxs[i] * wys[i];
    taps.dweight_dx[i] = on * sx[i] * wys[i] * grad_x;
    taps.dweight_dy[i] = on * sy[i] * wxs[i] * grad_y;
  }
  return taps;
}

}  // namespace tusk
