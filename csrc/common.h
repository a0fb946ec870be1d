// Host-side helpers shared by the C++ op implementations (checks, padding names, grain sizes).
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <string>

#include "tusk/bilinear.h"

namespace tusk {

// Backstop checks: the Python wrappers validate first, with friendlier messages.
inline void check_float_tensor(const at::Tensor& t, const char* name, int64_t ndim) {
  TORCH_CHECK(t.defined(), name, " must be defined");
  TORCH_CHECK(t.dim() == ndim, name, " must have ", ndim, " dims, got ", t.sizes());
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be floating point, got ",
              t.scalar_type());
}

inline void check_cpu(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble, name,
              " must be float32 or float64 on CPU, got ", t.scalar_type());
}

inline void check_same_dtype(const at::Tensor& a, const at::Tensor& b, const char* name_a,
                             const char* name_b) {
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), name_a, " and ", name_b,
              " must share a dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

inline Padding parse_padding(const std::string& padding) {
  if (padding == "zeros") return Padding::Zeros;
  if (padding == "border") return Padding::Border;
  TORCH_CHECK(false, "padding must be 'zeros' or 'border', got '", padding, "'");
}

// Work items cheaper than ~this many flops are not worth a thread hand-off.
constexpr int64_t kGrainFlops = 32768;

inline int64_t grain_for(int64_t cost_per_item) {
  return std::max<int64_t>(1, kGrainFlops / std::max<int64_t>(1, cost_per_item));
}

}  // namespace tusk
