// exp over an array, written so that the compiler vectorises it (no libm call per element).
//
// Why: the soft-argmax needs one exp per window pixel in forward and two in backward; with
// glibc's scalar expf (~7 ns here) that alone was ~6 ms of the 480 x 640, K = 2048 x 8 backward.
//
// Method (Cephes-style): x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite two-part ln2), exp(r) by
// its Taylor polynomial (degree 7 for float: truncation < 6e-9 relative; degree 13 for double:
// < 2e-16), times 2^n built in the exponent bits. The argument is clamped to the normal range
// (below it the result is 0, as the true value is below the smallest normal number), so the
// error is a few ulp; NaN stays NaN.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) || defined(__clang__)
#define TUSK_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TUSK_ALWAYS_INLINE inline
#endif

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
  static constexpr int kDegree = 7;
};

template <>
struct ExpConstants<double> {
  static constexpr double kLowest = -708.0, kHighest = 709.0;
  static constexpr double kLog2e = 1.4426950408889634074;
  static constexpr double kLn2Hi = 6.93145751953125e-1, kLn2Lo = 1.42860682030941723212e-6;
  static constexpr double kRound = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr int kMantissaBits = 52;
  static constexpr int64_t kBias = 1023;
  static constexpr int kDegree = 13;
};

// 1/d! for d = 0..13.
template <typename T>
inline constexpr T kCoefficients[14] = {
    T(1.0), T(1.0), T(1.0 / 2), T(1.0 / 6), T(1.0 / 24), T(1.0 / 120), T(1.0 / 720),
    T(1.0 / 5040), T(1.0 / 40320), T(1.0 / 362880), T(1.0 / 3628800), T(1.0 / 39916800),
    T(1.0 / 479001600), T(1.0 / 6227020800.0)};

// sum_{d <= D} r^d / d! in Horner form, unrolled at compile time (a loop here would stop the
// vectoriser of the caller).
template <typename V, typename T, int D, int d>
TUSK_ALWAYS_INLINE V taylor(V r) {
  if constexpr (d == D) {
    return V{} + kCoefficients<T>[d];
  } else {
    return kCoefficients<T>[d] + r * taylor<V, T, D, d + 1>(r);
  }
}

// 16-byte vectors (SSE2 on x86-64, NEON on ARM) through the GCC/Clang vector extension: the
// auto-vectoriser will not turn this loop's selects into blends under the default
// -ftrapping-math, so the lanes are spelled out and the selects are bit masks.
// (An alias template cannot carry the attribute, hence the explicit specialisations.)
template <typename T>
struct LaneTypes;
template <>
struct LaneTypes<float> {
  typedef float Values __attribute__((vector_size(16)));
  typedef int32_t Masks __attribute__((vector_size(16)));
};
template <>
struct LaneTypes<double> {
  typedef double Values __attribute__((vector_size(16)));
  typedef int64_t Masks __attribute__((vector_size(16)));
};
template <typename T>
using Lanes = typename LaneTypes<T>::Values;

// exp of one vector; see the file comment. (Vector casts would convert values, so the bit
// reinterpretations go through std::bit_cast.)
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
  const V y = taylor<V, T, C::kDegree, 0>(r) * scale;  // exp(r) * 2^n; NaN stays NaN
  return std::bit_cast<V>(std::bit_cast<M>(y) & ~below);  // 0 below the range and for -inf
}

// values[i] = exp(values[i]) for i < count.
template <typename T>
inline void exp_inplace(T* values, int64_t count) {
  constexpr int64_t lanes = sizeof(Lanes<T>) / sizeof(T);
  int64_t i = 0;
  for (; i + 2 * lanes <= count; i += 2 * lanes) {  // two independent chains per iteration
    Lanes<T> v[2];
    std::memcpy(v, values + i, sizeof(v));
    v[0] = exp_lanes<T>(v[0]);
    v[1] = exp_lanes<T>(v[1]);
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
