// exp(x) for softmax arguments x = logit - max <= 0, written so that loops over pixels
// auto-vectorise (std::exp / expf are library calls that block vectorisation without
// -ffast-math). Float: Cephes-style range reduction plus a degree-6 polynomial, relative error
// ~1e-7; inputs below -87.33 (where exp underflows to a subnormal) return 0; NaN returns NaN.
// Double (used for gradcheck, not speed) calls std::exp.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "simd.h"

namespace tusk {

TUSK_INLINE_IN_CLONES float softmax_exp(float x) {
  constexpr float kLowest = -87.33654f;     // log(FLT_MIN)
  constexpr float kShifter = 12582912.0f;   // 1.5 * 2^23: (t + s) - s rounds t to an integer
  const float xc = x < kLowest ? kLowest : x;  // NaN compares false and stays NaN
  const float n = (xc * 1.44269504088896341f + kShifter) - kShifter;  // round(x / ln 2)
  float r = xc - n * 0.693359375f;           // ln 2 split in two for an exact reduction
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  // 2^n by building the exponent bits; n is in [-126, 0] here (NaN gives garbage bits, but p is
  // NaN then). Unsigned arithmetic: no signed-overflow UB for garbage values.
  const uint32_t bits = (static_cast<uint32_t>(static_cast<int32_t>(n)) + 127u) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  const float result = p * scale;
  return x < kLowest ? 0.0f : result;
}

TUSK_INLINE_IN_CLONES double softmax_exp(double x) { return std::exp(x); }

}  // namespace tusk
