// sample_descriptors on CUDA: bilinear sampling of features [B,C,H,W] at keypoints xy [B,K,2].
// Contract and tap convention: tusk/ops/reference/sample_descriptors.py, tusk/bilinear.h.
//
// Forward: one thread per output (b, k, c), consecutive threads over channels, so a warp covers
// one keypoint's channels (C >= 32) and writes [B,K,C] coalesced; the four taps of a channel
// plane are two adjacent pairs (one or two 32-byte sectors each). Every thread recomputes the
// ~40-flop tap setup instead of sharing it: cheaper than a shuffle round for a memory-bound op.
// Backward:
//  - grad_xy: one warp per keypoint, lanes over channels, warp-reduced in a fixed order
//    (deterministic).
//  - grad_features: one thread per (b, k, c) adds its four weighted taps with atomicAdd into a
//    zero-filled map (float32 scratch for float16/bfloat16). Keypoints that share a tap make the
//    float summation order, and so the last bits, vary between runs. With deterministic != 0
//    (torch.use_deterministic_algorithms(True)) one thread per (b, c) plane visits the keypoints in
//    order instead, like the CPU kernel: reproducible, but only B*C threads.
#include "cuda_utils.cuh"
#include "tusk/bilinear.h"
#include "tusk/cuda/sample_descriptors.h"

namespace tusk {
namespace cuda {
namespace {

template <typename scalar_t>
__device__ __forceinline__ BilinearTaps<acc_t<scalar_t>> taps_at(const scalar_t* xy, int64_t bk,
                                                                 int64_t height, int64_t width,
                                                                 Padding padding) {
  return bilinear_taps<acc_t<scalar_t>>(load(xy + 2 * bk), load(xy + 2 * bk + 1), height, width,
                                        padding);
}

template <typename scalar_t>
__global__ void forward_kernel(const scalar_t* __restrict__ features,
                               const scalar_t* __restrict__ xy, int64_t batch, int64_t channels,
                               int64_t height, int64_t width, int64_t k, Padding padding,
                               scalar_t* __restrict__ out) {
  using acc = acc_t<scalar_t>;
  const int64_t total = batch * k * channels, plane = height * width;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t c = t % channels, bk = t / channels, b = bk / k;
    const BilinearTaps<acc> taps = taps_at(xy, bk, height, width, padding);
    const scalar_t* f = features + (b * channels + c) * plane;
    acc v = 0;
#pragma unroll
    for (int i = 0; i < 4; ++i) v += taps.weight[i] * load(f + taps.index[i]);
    out[t] = from_acc<scalar_t>(v);
  }
}

template <typename scalar_t>
__global__ void grad_xy_kernel(const scalar_t* __restrict__ grad,
                               const scalar_t* __restrict__ features,
                               const scalar_t* __restrict__ xy, int64_t batch, int64_t channels,
                               int64_t height, int64_t width, int64_t k, Padding padding,
                               scalar_t* __restrict__ grad_xy) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t plane = height * width;
  for (int64_t bk = global_warp(); bk < batch * k; bk += global_warps()) {
    const int64_t b = bk / k;
    const BilinearTaps<acc> taps = taps_at(xy, bk, height, width, padding);
    acc gx = 0, gy = 0;
    for (int64_t c = lane; c < channels; c += kWarp) {
      const scalar_t* f = features + (b * channels + c) * plane;
      const acc g = load(grad + bk * channels + c);
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const acc v = g * load(f + taps.index[i]);
        gx += taps.dweight_dx[i] * v;
        gy += taps.dweight_dy[i] * v;
      }
    }
    gx = warp_sum(gx);
    gy = warp_sum(gy);
    if (lane == 0) {
      grad_xy[2 * bk] = from_acc<scalar_t>(gx);
      grad_xy[2 * bk + 1] = from_acc<scalar_t>(gy);
    }
  }
}

template <typename scalar_t>
__global__ void grad_features_atomic_kernel(const scalar_t* __restrict__ grad,
                                            const scalar_t* __restrict__ xy, int64_t batch,
                                            int64_t channels, int64_t height, int64_t width,
                                            int64_t k, Padding padding,
                                            acc_t<scalar_t>* __restrict__ accum) {
  using acc = acc_t<scalar_t>;
  const int64_t total = batch * k * channels, plane = height * width;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t c = t % channels, bk = t / channels, b = bk / k;
    const BilinearTaps<acc> taps = taps_at(xy, bk, height, width, padding);
    const acc g = load(grad + t);
    acc* out = accum + (b * channels + c) * plane;
#pragma unroll
    for (int i = 0; i < 4; ++i) atomic_add(out + taps.index[i], taps.weight[i] * g);
  }
}

template <typename scalar_t>
__global__ void grad_features_ordered_kernel(const scalar_t* __restrict__ grad,
                                             const scalar_t* __restrict__ xy, int64_t batch,
                                             int64_t channels, int64_t height, int64_t width,
                                             int64_t k, Padding padding,
                                             acc_t<scalar_t>* __restrict__ accum) {
  using acc = acc_t<scalar_t>;
  const int64_t plane = height * width;
  for (int64_t bc = global_thread(); bc < batch * channels; bc += global_stride()) {
    const int64_t b = bc / channels, c = bc % channels;
    acc* out = accum + bc * plane;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t bk = b * k + j;
      const BilinearTaps<acc> taps = taps_at(xy, bk, height, width, padding);
      const acc g = load(grad + bk * channels + c);
      for (int i = 0; i < 4; ++i) out[taps.index[i]] += taps.weight[i] * g;
    }
  }
}

template <typename scalar_t>
__global__ void cast_kernel(const float* __restrict__ in, scalar_t* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) out[i] = from_acc<scalar_t>(in[i]);
}

bool sizes_ok(int64_t batch, int64_t channels, int64_t height, int64_t width, int64_t k,
              int padding) {
  return batch >= 0 && channels >= 0 && height >= 1 && width >= 1 && k >= 0 &&
         (padding == 0 || padding == 1);
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

extern "C" cudaError_t tusk_sample_descriptors_forward(tusk_dtype dtype, const void* features,
                                                       const void* xy, int64_t batch,
                                                       int64_t channels, int64_t height,
                                                       int64_t width, int64_t k, int padding,
                                                       void* out, cudaStream_t stream) {
  if (!sizes_ok(batch, channels, height, width, k, padding)) return cudaErrorInvalidValue;
  const int64_t total = batch * k * channels;
  if (total == 0) return cudaSuccess;
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    forward_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(features), static_cast<const scalar_t*>(xy), batch, channels,
        height, width, k, static_cast<Padding>(padding), static_cast<scalar_t*>(out));
  });
  return launch_status();
}

extern "C" size_t tusk_sample_descriptors_backward_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                                   int64_t channels,
                                                                   int64_t height, int64_t width) {
  if (!tusk_is_half(dtype) || batch < 0 || channels < 0 || height < 0 || width < 0) return 0;
  return static_cast<size_t>(batch * channels * height * width) * sizeof(float);
}

extern "C" cudaError_t tusk_sample_descriptors_backward(
    tusk_dtype dtype, const void* grad, const void* features, const void* xy, int64_t batch,
    int64_t channels, int64_t height, int64_t width, int64_t k, int padding, int deterministic,
    void* grad_features, void* grad_xy, void* workspace, cudaStream_t stream) {
  if (!sizes_ok(batch, channels, height, width, k, padding)) return cudaErrorInvalidValue;
  const Padding pad = static_cast<Padding>(padding);
  const bool half = tusk_is_half(dtype);
  const int64_t map_size = batch * channels * height * width;
  if (grad_features != nullptr && map_size > 0) {
    void* accum = half ? workspace : grad_features;
    const size_t acc_bytes = static_cast<size_t>(map_size) * (dtype == TUSK_FLOAT64 ? 8 : 4);
    const cudaError_t err = cudaMemsetAsync(accum, 0, acc_bytes, stream);
    if (err != cudaSuccess) return err;
    TUSK_DISPATCH_FLOATING(dtype, [&] {
      using acc = acc_t<scalar_t>;
      const scalar_t* g = static_cast<const scalar_t*>(grad);
      const scalar_t* p = static_cast<const scalar_t*>(xy);
      if (batch * k * channels > 0) {
        if (deterministic) {
          grad_features_ordered_kernel<scalar_t><<<blocks_for(batch * channels), kThreads, 0,
                                                   stream>>>(g, p, batch, channels, height, width,
                                                             k, pad, static_cast<acc*>(accum));
        } else {
          grad_features_atomic_kernel<scalar_t><<<blocks_for(batch * k * channels), kThreads, 0,
                                                  stream>>>(g, p, batch, channels, height, width,
                                                            k, pad, static_cast<acc*>(accum));
        }
      }
      if (half) {
        cast_kernel<scalar_t><<<blocks_for(map_size), kThreads, 0, stream>>>(
            static_cast<const float*>(accum), static_cast<scalar_t*>(grad_features), map_size);
      }
    });
  }
  if (grad_xy != nullptr && batch * k > 0) {
    if (channels == 0) {  // nothing depends on xy
      const cudaError_t err = cudaMemsetAsync(grad_xy, 0, batch * k * 2 * tusk_dtype_size(dtype),
                                              stream);
      if (err != cudaSuccess) return err;
    } else {
      TUSK_DISPATCH_FLOATING(dtype, [&] {
        grad_xy_kernel<scalar_t><<<blocks_for(batch * k * kWarp), kThreads, 0, stream>>>(
            static_cast<const scalar_t*>(grad), static_cast<const scalar_t*>(features),
            static_cast<const scalar_t*>(xy), batch, channels, height, width, k, pad,
            static_cast<scalar_t*>(grad_xy));
      });
    }
  }
  return launch_status();
}
