// The CUDA device language that tusk's kernels use, emulated on the host.
//
// kernels/emulation/translate.py rewrites a .cu file into C++ (launches `k<<<g, b, s, st>>>(...)`
// become tusk_emu::launch calls, `__shared__` declarations become per-block slots); this header
// supplies everything else: the built-in variables, __syncthreads, the warp collectives, atomics,
// read-only loads and the half-precision types. runtime.cpp runs every thread of a block as a
// fiber (its own stack, switched cooperatively), so the kernels execute exactly as written:
//
//  - __syncthreads() parks a thread until every live thread of its block has arrived;
//  - warp collectives (__shfl_sync, __shfl_xor_sync, __ballot_sync, __syncwarp) park a lane
//    until every lane named in the mask has arrived at a collective with the same mask, then
//    exchange values. A mask naming a lane that has exited or does not exist, lanes disagreeing
//    on the collective, or a block that can make no progress (deadlock) is a launch failure;
//  - shared memory starts every block filled with 0xFF bytes (NaN for floats, -1 for integers),
//    so a read before the first write shows up in the results;
//  - launch configurations are checked as on the GPU (<= 1024 threads, __launch_bounds__, grid
//    limits, 48 KiB of shared memory per block without an opt-in).
//
// Threads of one block run one at a time, blocks one after another: atomics are trivially
// atomic, and the order of threads between barriers is selectable (runtime_api.h) so code that
// depends on it (a missing barrier) shows up as a difference between orders.
#pragma once

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "tusk_emulation/runtime_api.h"

// ---- qualifiers: all code is host code ---------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__

struct uint3 {
  unsigned x, y, z;
};

struct int4 {
  int x, y, z, w;
};
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

namespace tusk_emu {

// The built-in variables of the thread that is running.
struct ThreadContext {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

const ThreadContext& current_thread();

// ---- synchronisation and warp collectives (runtime.cpp) -----------------------------------------
enum class WarpOp { kSync, kShuffle, kShuffleXor, kBallot };

void sync_block();
// Parks the lane until the lanes of `mask` arrive; returns this lane's result (the raw bytes of
// the shuffled value, or the ballot).
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int lane_argument, int width);

// ---- shared memory ------------------------------------------------------------------------------
// The block's slot for the `__shared__` declaration identified by `tag` (one per declaration and
// template instantiation), allocated on first use in each block.
void* shared_slot(const void* tag, size_t bytes, size_t alignment);
void* dynamic_shared();

template <typename T>
T& shared_var(const void* tag) {
  static_assert(std::is_trivially_copyable_v<std::remove_all_extents_t<T>>,
                "shared-memory variables must be trivially copyable");
  return *static_cast<T*>(shared_slot(tag, sizeof(T), alignof(T)));
}

template <typename T>
T* dynamic_shared_as() {
  return static_cast<T*>(dynamic_shared());
}

// ---- launches -----------------------------------------------------------------------------------
struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t shared_bytes;
};

inline LaunchConfig config(dim3 grid, dim3 block, size_t shared_bytes = 0,
                           cudaStream_t /*stream*/ = nullptr) {
  return LaunchConfig{grid, block, shared_bytes};
}

// Runs `body` once per thread of the grid; records a launch failure instead of throwing.
void run_grid(const LaunchConfig& config, const std::function<void()>& body);

// Fails the launch if it uses more threads per block than the kernel's __launch_bounds__.
void check_launch_bounds(long long max_threads);

// kernel<<<config>>>(args...): the arguments are copied once, as CUDA copies kernel parameters;
// every thread calls `kernel` (a generic lambda wrapping the kernel's name, so templates deduce
// as in the original call) with its own copies.
template <typename Kernel, typename... Args>
void launch(const LaunchConfig& config, Kernel kernel, Args&&... args) {
  const std::tuple<std::decay_t<Args>...> params(std::forward<Args>(args)...);
  const std::function<void()> body = [&] {
    std::tuple<std::decay_t<Args>...> copy = params;
    std::apply(kernel, copy);
  };
  run_grid(config, body);
}

template <typename T>
uint64_t to_raw(T value) {
  static_assert(sizeof(T) <= sizeof(uint64_t) && std::is_trivially_copyable_v<T>,
                "warp shuffles move values of at most 8 bytes");
  uint64_t raw = 0;
  std::memcpy(&raw, &value, sizeof(T));
  return raw;
}

template <typename T>
T from_raw(uint64_t raw) {
  T value;
  std::memcpy(&value, &raw, sizeof(T));
  return value;
}

}  // namespace tusk_emu

#define threadIdx (::tusk_emu::current_thread().thread_idx)
#define blockIdx (::tusk_emu::current_thread().block_idx)
#define blockDim (::tusk_emu::current_thread().block_dim)
#define gridDim (::tusk_emu::current_thread().grid_dim)

inline void __syncthreads() { ::tusk_emu::sync_block(); }

inline void __syncwarp(unsigned mask = 0xffffffffu) {
  ::tusk_emu::warp_collective(::tusk_emu::WarpOp::kSync, mask, 0, 0, 32);
}

template <typename T>
T __shfl_sync(unsigned mask, T value, int source_lane, int width = 32) {
  return ::tusk_emu::from_raw<T>(::tusk_emu::warp_collective(
      ::tusk_emu::WarpOp::kShuffle, mask, ::tusk_emu::to_raw(value), source_lane, width));
}

template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return ::tusk_emu::from_raw<T>(::tusk_emu::warp_collective(
      ::tusk_emu::WarpOp::kShuffleXor, mask, ::tusk_emu::to_raw(value), lane_mask, width));
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  return static_cast<unsigned>(::tusk_emu::warp_collective(::tusk_emu::WarpOp::kBallot, mask,
                                                           predicate != 0 ? 1 : 0, 0, 32));
}

inline int __popc(unsigned v) { return __builtin_popcount(v); }

template <typename T>
T __ldg(const T* pointer) {
  return *pointer;
}

// One thread runs at a time, so a read-modify-write is atomic. Returns the old value, as CUDA's.
template <typename T>
T atomicAdd(T* address, T value) {
  static_assert(std::is_arithmetic_v<T>, "atomicAdd on an arithmetic type");
  const T old = *address;
  *address = old + value;
  return old;
}

inline long long __double_as_longlong(double v) { return ::tusk_emu::from_raw<long long>(::tusk_emu::to_raw(v)); }
inline double __longlong_as_double(long long v) { return ::tusk_emu::from_raw<double>(::tusk_emu::to_raw(v)); }

// ---- half precision: storage types with explicit, correctly rounded conversions ----------------
// (as the real headers under -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__:
// no arithmetic, no implicit conversions).
struct __half {
  uint16_t bits;
};
struct __nv_bfloat16 {
  uint16_t bits;
};

namespace tusk_emu {

inline uint32_t float_bits(float v) { return from_raw<uint32_t>(to_raw(v)); }
inline float bits_float(uint32_t bits) { return from_raw<float>(bits); }

// float -> IEEE binary16, round to nearest even; overflow gives infinity, NaN stays NaN.
inline uint16_t float_to_half_bits(float value) {
  uint32_t x = float_bits(value);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0u));
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (x >= 0x38800000u) {  // a normal half: rebias the exponent (127 - 15), round 13 bits away
    const uint32_t m = x - 0x38000000u;
    return static_cast<uint16_t>(sign | ((m + 0xfffu + ((m >> 13) & 1u)) >> 13));
  }
  // Subnormal or zero: multiples of 2^-24; scaling by 2^24 is exact, nearbyint rounds to even.
  const float scaled = bits_float(x) * 16777216.0f;
  return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(scaled)));
}

inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0x1fu) return bits_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return sign != 0 ? -magnitude : magnitude;
  }
  return bits_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

// float -> bfloat16 (the top 16 bits), round to nearest even; NaN stays a (quiet) NaN.
inline uint16_t float_to_bfloat16_bits(float value) {
  const uint32_t x = float_bits(value);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

inline float bfloat16_bits_to_float(uint16_t b) { return bits_float(static_cast<uint32_t>(b) << 16); }

}  // namespace tusk_emu

inline float __half2float(__half h) { return ::tusk_emu::half_bits_to_float(h.bits); }
inline __half __float2half_rn(float v) { return __half{::tusk_emu::float_to_half_bits(v)}; }
inline float __bfloat162float(__nv_bfloat16 b) { return ::tusk_emu::bfloat16_bits_to_float(b.bits); }
inline __nv_bfloat16 __float2bfloat16_rn(float v) {
  return __nv_bfloat16{::tusk_emu::float_to_bfloat16_bits(v)};
}
inline unsigned short __half_as_ushort(__half h) { return h.bits; }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 b) { return b.bits; }
