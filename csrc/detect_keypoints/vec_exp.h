// exp over an array, written so that the compiler vectorises it (no libm call per element).
//
// Why: the soft-argmax needs one exp per window pixel in forward and two in backward; with
// glibc's scalar expf (~7 ns here) that alone was ~6 ms of the 480 x 640, K = 2048 x 8 backward.
//
// Method (as Cephes' expf/exp): x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite two-part ln2),
// exp(r) by a polynomial, times 2^n built in the exponent bits. float: Cephes' minimax
// exp(r) = 1 + r + r^2 P5(r), evaluated in Estrin form (a dependency chain of ~6 operations
// instead of ~12: the exp is latency-bound on short windows); double: Taylor to degree 13
// (truncation < 2e-16). The argument is clamped to the normal range (below it the result is 0,
// as the true value is below the smallest normal number). Measured error: <= 1 ulp (float, 1.2e-7
// relative; double, 2.2e-16) over the normal range; NaN stays NaN, exp(-inf) = 0.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#include "detect_keypoints/lanes.h"

namespace tusk {

template <typename T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  static constexpr float kLowest = -87.0f, kHighest = 88.0f;
  static constexpr float kLog2e = 1.44269504088896341f;
  static constexpr float kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
  static constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr int kMantissaBits = 23;
  static constexpr int32_t kBias = 127;
};

template <>
struct ExpConstants<double> {
  static constexpr double kLowest = -708.0, kHighest = 709.0;
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93145751953125e-1, kLn2Lo = 1.42860682030941723212e-6;
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int kMantissaBits = 52;
  static constexpr int64_t kBias = 1023;
};

// 1/d! for d = 0..13.
inline constexpr double kInverseFactorials[14] = {
    1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 5040, 1.0 / 40320,
    1.0 / 362880, 1.0 / 3628800, 1.0 / 39916800, 1.0 / 479001600, 1.0 / 6227020800.0};

// sum_{d = d0..13} r^(d - d0) / d! in Horner form, unrolled at compile time.
template <typename V, int d>
TUSK_ALWAYS_INLINE V taylor_tail(V r) {
  if constexpr (d == 13) {
    return V{} + kInverseFactorials[d];
  } else {
    return kInverseFactorials[d] + r * taylor_tail<V, d + 1>(r);
  }
}

// exp(r) for |r| <= ln2 / 2.
template <typename T>
TUSK_ALWAYS_INLINE Lanes<T> exp_reduced(Lanes<T> r) {
  using V = Lanes<T>;
  if constexpr (sizeof(T) == 4) {
    // Cephes expf: 1 + r + r^2 (p5 + p4 r + p3 r^2 + p2 r^3 + p1 r^4 + p0 r^5), Estrin form.
    const V r2 = r * r, r4 = r2 * r2;
    const V low = 5.0000001201e-1f + r * 1.6666665459e-1f;
    const V mid = 4.1665795894e-2f + r * 8.3334519073e-3f;
    const V high = 1.3981999507e-3f + r * 1.9875691500e-4f;
    return (1.0f + r) + r2 * ((low + r2 * mid) + r4 * high);
  } else {
    return taylor_tail<V, 0>(r);
  }
}

// exp of one vector; see the file comment. The auto-vectoriser will not turn a scalar loop's
// selects into blends under GCC's default -ftrapping-math, hence explicit lanes and bit masks.
template <typename T>
TUSK_ALWAYS_INLINE Lanes<T> exp_lanes(Lanes<T> x) {
  using C = ExpConstants<T>;
  using V = Lanes<T>;
  using M = typename LaneTypes<T>::Masks;
  const V lowest = V{} + C::kLowest, highest = V{} + C::kHighest;
  const M below = x < lowest, above = x > highest;  // all-ones lanes; false for NaN
  const M kept = std::bit_cast<M>(x) & ~(below | above);
  const V clamped = std::bit_cast<V>(kept | (std::bit_cast<M>(lowest) & below) |
                                     (std::bit_cast<M>(highest) & above));
  const V shifted = clamped * C::kLog2e + C::kRound;  // n + kRound, n = round(x / ln2)
  const V n = shifted - C::kRound;
  const M n_bits = std::bit_cast<M>(shifted) - std::bit_cast<M>(V{} + C::kRound);
  const V scale = std::bit_cast<V>((n_bits + static_cast<M>(M{} + C::kBias)) << C::kMantissaBits);
  const V r = (clamped - n * C::kLn2Hi) - n * C::kLn2Lo;
  const V y = exp_reduced<T>(r) * scale;  // exp(r) * 2^n; NaN stays NaN
  return std::bit_cast<V>(std::bit_cast<M>(y) & ~below);  // 0 below the range and for -inf
}

// values[i] = exp(values[i]) for i < count.
template <typename T>
inline void exp_inplace(T* values, int64_t count) {
  constexpr int64_t lanes = sizeof(Lanes<T>) / sizeof(T);
  int64_t i = 0;
  for (; i + 4 * lanes <= count; i += 4 * lanes) {  // four independent chains per iteration
    Lanes<T> v[4];
    std::memcpy(v, values + i, sizeof(v));
    for (int j = 0; j < 4; ++j) v[j] = exp_lanes<T>(v[j]);
    std::memcpy(values + i, v, sizeof(v));
  }
  for (; i + lanes <= count; i += lanes) {
    Lanes<T> v;
    std::memcpy(&v, values + i, sizeof(v));
    v = exp_lanes<T>(v);
    std::memcpy(values + i, &v, sizeof(v));
  }
  if (i < count) {
    Lanes<T> v{};
    std::memcpy(&v, values + i, sizeof(T) * (count - i));
    v = exp_lanes<T>(v);
    std::memcpy(values + i, &v, sizeof(T) * (count - i));
  }
}

}  // namespace tusk
