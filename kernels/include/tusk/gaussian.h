// Per-keypoint geometry and maths of splat_gaussians (tusk/ops/reference/splat_gaussians.py).
//
//   G_k(p) = exp(-|p - xy_k|^2 / (2 variance)) for pixels p inside the image with
//            |p - c_k|_inf <= radius, c_k = floor(xy_k + 0.5); 0 elsewhere.
//   normalize: Ghat_k = G_k / Z_k with Z_k = sum of G_k over that window (0 if Z_k == 0).
//   out = w_k d_k Ghat_k.
//
// Z_k is computed separably, (sum_x gx)(sum_y gy), since G_k(p) = gx(p_x) gy(p_y): 2(2r+1)
// exponentials instead of (2r+1)^2 (equal to the reference's 2-D sum up to rounding).
//
// Non-finite positions follow the reference: an infinite coordinate gives an empty window; a NaN
// coordinate gives NaN over the whole image without normalisation (0 * NaN in the reference) and
// nothing with normalisation (the reference's `total > 0` is false).
#pragma once

#include <cstdint>

#include "tusk/numeric.h"

namespace tusk {

template <typename acc>
struct SplatKeypoint {
  acc x, y;
  acc weight;         // the keypoint's weight (1 without weights)
  acc norm;           // 1 / Z (normalize) or 1; 0 when the keypoint splats nothing
  acc inv_two_var;    // 1 / (2 variance)
  int64_t x_lo, x_hi;  // clipped window, inclusive; empty when x_lo > x_hi or y_lo > y_hi
  int64_t y_lo, y_hi;
};

template <typename acc>
TUSK_HD bool splat_window_empty(const SplatKeypoint<acc>& kp) {
  return kp.x_lo > kp.x_hi || kp.y_lo > kp.y_hi;
}

// Window [c - r, c + r] of one axis clipped to [0, size-1], with c = floor(v + 0.5).
// Far-away or infinite v give an empty window without overflowing the integer cast.
template <typename acc>
TUSK_HD void splat_axis_window(acc v, int64_t radius, int64_t size, int64_t* lo, int64_t* hi) {
  const acc centre = floor_value(v + acc(0.5));
  const acc limit = static_cast<acc>(size + radius + 1);
  if (!(centre > -limit && centre < limit)) {  // also catches +-inf
    *lo = 1;
    *hi = 0;
    return;
  }
  const int64_t c = static_cast<int64_t>(centre);
  *lo = max_value<int64_t>(c - radius, 0);
  *hi = min_value<int64_t>(c + radius, size - 1);
}

// sum over x in [lo, hi] of exp(-(x - v)^2 * inv_two_var).
template <typename acc>
TUSK_HD acc splat_axis_sum(acc v, int64_t lo, int64_t hi, acc inv_two_var) {
  acc total = acc(0);
  for (int64_t i = lo; i <= hi; ++i) {
    const acc d = static_cast<acc>(i) - v;
    total += exp_value(-d * d * inv_two_var);
  }
  return total;
}

template <typename acc>
TUSK_HD SplatKeypoint<acc> splat_keypoint(acc x, acc y, acc weight, int64_t height, int64_t width,
                                          acc variance, int64_t radius, bool normalize) {
  SplatKeypoint<acc> kp;
  kp.x = x;
  kp.y = y;
  kp.weight = weight;
  kp.norm = acc(1);
  kp.inv_two_var = acc(1) / (acc(2) * variance);
  if (is_nan(x) || is_nan(y)) {
    if (normalize) {  // reference: total is NaN, `total > 0` is false -> splats nothing
      kp.x_lo = kp.y_lo = 1;
      kp.x_hi = kp.y_hi = 0;
      kp.norm = acc(0);
    } else {  // reference: exp(NaN) * 0 = NaN on every pixel
      kp.x_lo = kp.y_lo = 0;
      kp.x_hi = width - 1;
      kp.y_hi = height - 1;
    }
    return kp;
  }
  splat_axis_window(x, radius, width, &kp.x_lo, &kp.x_hi);
  splat_axis_window(y, radius, height, &kp.y_lo, &kp.y_hi);
  if (normalize && !splat_window_empty(kp)) {
    const acc total = splat_axis_sum(x, kp.x_lo, kp.x_hi, kp.inv_two_var) *
                      splat_axis_sum(y, kp.y_lo, kp.y_hi, kp.inv_two_var);
    if (total > acc(0)) {
      kp.norm = acc(1) / total;
    } else {  // underflow everywhere: splats nothing
      kp.x_lo = kp.y_lo = 1;
      kp.x_hi = kp.y_hi = 0;
      kp.norm = acc(0);
    }
  }
  return kp;
}

// True when pixel (px, py) lies in the keypoint's clipped window.
template <typename acc>
TUSK_HD bool splat_covers(const SplatKeypoint<acc>& kp, int64_t px, int64_t py) {
  return px >= kp.x_lo && px <= kp.x_hi && py >= kp.y_lo && py <= kp.y_hi;
}

// True when the window [x_lo, x_hi] x [y_lo, y_hi] (inclusive; empty when lo > hi) meets the
// tile [x0, x0 + tile_w) x [y0, y0 + tile_h).
TUSK_HD bool window_meets_tile(int64_t x_lo, int64_t x_hi, int64_t y_lo, int64_t y_hi, int64_t x0,
                               int64_t y0, int64_t tile_w, int64_t tile_h) {
  return x_lo <= x_hi && y_lo <= y_hi && x_lo < x0 + tile_w && x_hi >= x0 && y_lo < y0 + tile_h &&
         y_hi >= y0;
}

template <typename acc>
TUSK_HD bool splat_meets_tile(const SplatKeypoint<acc>& kp, int64_t x0, int64_t y0,
                              int64_t tile_w, int64_t tile_h) {
  return window_meets_tile(kp.x_lo, kp.x_hi, kp.y_lo, kp.y_hi, x0, y0, tile_w, tile_h);
}

// The unnormalised Gaussian at pixel (px, py) (caller checks the window).
template <typename acc>
TUSK_HD acc splat_gauss(const SplatKeypoint<acc>& kp, int64_t px, int64_t py) {
  const acc dx = static_cast<acc>(px) - kp.x, dy = static_cast<acc>(py) - kp.y;
  return exp_value(-(dx * dx + dy * dy) * kp.inv_two_var);
}

// The mean offset sum_i e_i (i - v) / sum_i e_i over x in [lo, hi], e_i = exp(-(i - v)^2 *
// inv_two_var): along one axis, the normalised Gaussian's centre of mass minus v (0 when every
// e_i underflows). The normalised Gaussian is separable, so this is its mean offset in 2-D too.
template <typename acc>
TUSK_HD acc splat_axis_mean_offset(acc v, int64_t lo, int64_t hi, acc inv_two_var) {
  acc total = acc(0), moment = acc(0);
  for (int64_t i = lo; i <= hi; ++i) {
    const acc d = static_cast<acc>(i) - v;
    const acc e = exp_value(-d * d * inv_two_var);
    total += e;
    moment += e * d;
  }
  return total > acc(0) ? moment / total : acc(0);
}

// Per-keypoint sums that the backward pass reduces over the window, with S(p) = sum_c d_c g_c(p)
// (descriptor dotted with the incoming gradient at p), Gn(p) = G(p) / Z (or G(p)) and the
// offsets ox = p_x - x - mx, oy = p_y - y - my, centred on the window's mean offsets (mx, my)
// (splat_centre; 0 without normalize):
//   a = sum Gn S,   sgx = sum Gn S ox,   sgy = sum Gn S oy.
template <typename acc>
struct SplatGradSums {
  acc a = acc(0), sgx = acc(0), sgy = acc(0);
};

// The mean offsets (mx, my) that SplatGradSums centres on: Z depends on xy too, and
// d Gn / dx = Gn (p_x - x - mx) / variance. Centring inside the sum, rather than subtracting
// a * mx afterwards, keeps the result accurate when the two terms nearly cancel (a window clipped
// to one row or column, or a tiny variance: the exact gradient is then ~0).
template <typename acc>
TUSK_HD void splat_centre(const SplatKeypoint<acc>& kp, bool normalize, acc* mx, acc* my) {
  *mx = acc(0);
  *my = acc(0);
  if (!normalize || splat_window_empty(kp)) return;
  *mx = splat_axis_mean_offset(kp.x, kp.x_lo, kp.x_hi, kp.inv_two_var);
  *my = splat_axis_mean_offset(kp.y, kp.y_lo, kp.y_hi, kp.inv_two_var);
}

// Gradients of one keypoint from its reduced sums:
//   d/dw = a,   d/dxy = w / variance * sg      (chain rule through G and, centred, Z)
template <typename acc>
TUSK_HD void splat_keypoint_grads(const SplatGradSums<acc>& s, acc weight, acc variance,
                                  acc* grad_x, acc* grad_y, acc* grad_w) {
  const acc f = weight / variance;
  *grad_x = f * s.sgx;
  *grad_y = f * s.sgy;
  *grad_w = s.a;
}

}  // namespace tusk
