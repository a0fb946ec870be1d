// The truncated-Gaussian window of one keypoint, one definition for every compiled backend.
//
// Conventions (tusk/ops/reference/splat_gaussians.py is the specification):
//  - the window is centred on c = floor(xy + 0.5) (round half up), computed in the input dtype
//    so that float32 rounds exactly like the reference;
//  - it spans |p - c|_inf <= radius, clipped to the image; it may be empty (keypoint far
//    outside the image) and then the keypoint splats nothing;
//  - G(p) = exp(-|p - xy|^2 / (2 variance)) = gx(p.x) * gy(p.y) is separable, so a window needs
//    (wx + wy) exponentials instead of wx * wy, and its sum is (sum gx) * (sum gy);
//  - non-finite coordinates give an empty window (the keypoint splats nothing, no gradient).
// Window membership is piecewise constant: it carries no gradient.
#pragma once

#include "tusk/common.h"

namespace tusk {

// Half-open pixel ranges [x0, x1) x [y0, y1), already clipped to the image.
struct GaussianWindow {
  int64_t x0, x1, y0, y1;
  TUSK_HD bool empty() const { return x0 >= x1 || y0 >= y1; }
  TUSK_HD int64_t width() const { return x1 - x0; }
  TUSK_HD int64_t height() const { return y1 - y0; }
};

// [c - radius, c + radius] clipped to [0, size - 1], as a half-open range (lo >= hi: empty).
// Computed in double so that huge coordinates or radii cannot overflow an integer cast.
TUSK_HD void clipped_axis_range(double centre, int64_t radius, int64_t size, int64_t* lo,
                                int64_t* hi) {
  double first = centre - static_cast<double>(radius);
  double last = centre + static_cast<double>(radius);
  first = first < 0.0 ? 0.0 : first;
  last = last > static_cast<double>(size - 1) ? static_cast<double>(size - 1) : last;
  if (!(first <= last)) {
    *lo = *hi = 0;
    return;
  }
  *lo = static_cast<int64_t>(first);
  *hi = static_cast<int64_t>(last) + 1;
}

// scalar_t is the input dtype (the rounding of x + 0.5 must match the reference's).
template <typename scalar_t>
TUSK_HD GaussianWindow gaussian_window(scalar_t x, scalar_t y, int64_t height, int64_t width,
                                       int64_t radius) {
  GaussianWindow window{0, 0, 0, 0};
  if (!(is_finite(x) && is_finite(y))) return window;
  const scalar_t cx = floor_value(static_cast<scalar_t>(x + scalar_t(0.5)));
  const scalar_t cy = floor_value(static_cast<scalar_t>(y + scalar_t(0.5)));
  clipped_axis_range(static_cast<double>(cx), radius, width, &window.x0, &window.x1);
  clipped_axis_range(static_cast<double>(cy), radius, height, &window.y0, &window.y1);
  if (window.empty()) window = GaussianWindow{0, 0, 0, 0};
  return window;
}

// Largest window extent along an axis of `size` pixels: min(2 radius + 1, size).
TUSK_HD int64_t max_window_extent(int64_t radius, int64_t size) {
  return radius >= size ? size : (2 * radius + 1 < size ? 2 * radius + 1 : size);
}

template <typename T>
TUSK_HD T window_exp(T v) {
#if defined(__CUDA_ARCH__)
  return exp(v);
#else
  return std::exp(v);
#endif
}

// 1-D Gaussian factors g[i] = exp(-(first + i - coord)^2 * inv_two_variance) for i < count;
// returns their sum. acc is the accumulation type.
template <typename acc>
TUSK_HD acc gaussian_factors(acc coord, int64_t first, int64_t count, acc inv_two_variance,
                             acc* out) {
  acc total = acc(0);
  for (int64_t i = 0; i < count; ++i) {
    const acc d = static_cast<acc>(first + i) - coord;
    out[i] = window_exp(-d * d * inv_two_variance);
    total += out[i];
  }
  return total;
}

}  // namespace tusk
