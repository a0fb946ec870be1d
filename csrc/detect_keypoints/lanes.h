// 16-byte SIMD vectors (SSE2 on x86-64, NEON on ARM) through the GCC/Clang vector extension,
// for loops the auto-vectoriser does not handle (vec_exp.h). Vector casts convert values, so
// bit reinterpretations use std::bit_cast.
#pragma once

#include <cstdint>

#if defined(__GNUC__) || defined(__clang__)
#define TUSK_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TUSK_ALWAYS_INLINE inline
#endif

namespace tusk {

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

}  // namespace tusk
