// Scalar helpers shared by host and device code: exp, NaN tests, a NaN-propagating max and
// order-preserving integer keys for floating-point values.
//
// Torch-free and TUSK_HD so the CPU kernels, the CUDA kernels and the host tests of the CUDA
// index arithmetic (kernels/tests/) all run the same definitions.
#pragma once

#include <cstdint>
#include <cstring>

#include "tusk/common.h"

namespace tusk {

template <typename T>
TUSK_HD T exp_value(T v) {
#if defined(__CUDA_ARCH__)
  return exp(v);
#else
  return std::exp(v);
#endif
}

template <typename T>
TUSK_HD T sqrt_value(T v) {
#if defined(__CUDA_ARCH__)
  return sqrt(v);
#else
  return std::sqrt(v);
#endif
}

template <typename T>
TUSK_HD bool is_nan(T v) {
  return v != v;
}

// max(a, b) that returns NaN when either is NaN, like torch.max_pool2d and torch.max.
template <typename T>
TUSK_HD T max_propagate_nan(T a, T b) {
  return (is_nan(a) || a > b) ? a : b;
}

// min(a, b) without NaN handling (callers pass finite or -inf values).
template <typename T>
TUSK_HD T min_value(T a, T b) {
  return a < b ? a : b;
}

template <typename T>
TUSK_HD T max_value(T a, T b) {
  return a > b ? a : b;
}

TUSK_HD uint64_t double_bits(double v) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__double_as_longlong(v));
#else
  uint64_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits;
#endif
}

TUSK_HD double bits_double(uint64_t bits) {
#if defined(__CUDA_ARCH__)
  return __longlong_as_double(static_cast<long long>(bits));
#else
  double v;
  std::memcpy(&v, &bits, sizeof(v));
  return v;
#endif
}

// Order-preserving key: a < b (as doubles) <=> key(a) < key(b). Every NaN maps to the largest
// key (torch.sort puts NaN above +inf) and -0.0 maps to the key of +0.0 (torch.sort treats them
// as equal), so ties between them fall through to the caller's index rule. float, half and
// bfloat16 values are exact as doubles, so one key type serves every dtype. Finite values and
// infinities never map to 0, which leaves 0 free for "worse than anything" sentinels.
TUSK_HD uint64_t orderable_key(double v) {
  if (is_nan(v)) return ~uint64_t(0);
  if (v == 0.0) v = 0.0;  // -0.0 -> +0.0
  const uint64_t bits = double_bits(v);
  return (bits >> 63) ? ~bits : (bits | (uint64_t(1) << 63));
}

// Inverse of orderable_key for non-NaN keys (NaN keys decode to a NaN).
TUSK_HD double orderable_value(uint64_t key) {
  if (key == ~uint64_t(0)) return bits_double(0x7ff8000000000000ull);
  const uint64_t bits = (key >> 63) ? (key & ~(uint64_t(1) << 63)) : ~key;
  return bits_double(bits);
}

// Integer division rounding up, for non-negative operands.
TUSK_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Smallest power of two >= n (n >= 1), 1 for n <= 1.
TUSK_HD int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p <<= 1;
  return p;
}

}  // namespace tusk
