// Definitions shared by the C++ CPU kernels (csrc/) and the CUDA kernels (kernels/).
// Torch-free on purpose: kernels/ compiles alone with nvcc (CMakeLists.txt).
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define TUSK_HD __host__ __device__ __forceinline__
#else
#define TUSK_HD inline
#endif

namespace tusk {

// Accumulation type: float for half types and float, double for double.
template <typename T>
struct AccType {
  using type = float;
};
template <>
struct AccType<double> {
  using type = double;
};
template <typename T>
using acc_t = typename AccType<T>::type;

template <typename T>
TUSK_HD T clamp_value(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// std:: versions on the host, CUDA's built-ins on the device.
template <typename T>
TUSK_HD bool is_finite(T v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename T>
TUSK_HD T floor_value(T v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

}  // namespace tusk
