// splat_gaussians on CUDA: truncated, optionally normalised Gaussians of keypoint descriptors.
// Contract: tusk/ops/reference/splat_gaussians.py; per-keypoint maths: tusk/gaussian.h.
//
// Forward, reduce="sum" ([B,C,H,W]), deterministic and atomic-free (a gather):
//  1. prep: one thread per keypoint computes its clipped window and 1/Z (SplatKeypoint) and a
//     compact copy of the window.
//  2. tile: one block per 32x8 pixel tile (one warp per tile row, so every channel plane is
//     written as 128-byte rows). The block scans the image's keypoint windows (16-byte int32
//     boxes written by prep: 32 KiB per tile at K = 2048) 256 at a time and appends
//     the ones whose window meets the tile to a shared-memory list, in keypoint order (warp
//     ballots + a prefix over the 8 warps); then every thread accumulates its pixel's channels
//     in registers, 8 channels per pass, and stores them. Each output element has exactly one
//     writer and a fixed summation order, and the dense output is written once
//     (memory-bound: ~B*C*H*W stores).
// Forward, reduce="none" ([B,K,C,H,W]): one thread per (b, k, pixel) writes its C values.
// Backward: one warp per keypoint reads only the grad window of its keypoint:
//  - pass A, lanes over window pixels, loop over channels: S(p) = d . grad(p) and the scalar
//    sums of tusk::SplatGradSums (warp-reduced) -> grad_xy, grad_weights;
//  - pass B, lanes over channels, loop over window pixels (Gaussian broadcast by shuffle):
//    grad_descriptors[c] = w * sum_p Gn(p) grad_c(p), accumulated in registers.
//  Every output has one writer: deterministic, no atomics.
#include "cuda_utils.cuh"
#include "tusk/cuda/splat_gaussians.h"
#include "tusk/gaussian.h"
#include "tusk/workspace.h"

namespace tusk {
namespace cuda {
namespace {

constexpr int kTileW = 32, kTileH = 8, kTileThreads = kTileW * kTileH;
// Keypoints held in shared memory per tile (list + indices: 64 or 80 bytes each). A tile meets
// a handful of keypoints in TUSK (variance 0.05 -> 3x3 windows); only more than kListCap
// keypoints on one tile make a second flush, which re-reads the stored partial sums.
constexpr int kListCap = 256;
constexpr int kChannelsPerPass = 8;  // register accumulators per thread

template <typename scalar_t>
__device__ __forceinline__ SplatKeypoint<acc_t<scalar_t>> keypoint_at(
    const scalar_t* xy, const scalar_t* weights, int64_t bk, int64_t height, int64_t width,
    acc_t<scalar_t> variance, int64_t radius, bool normalize) {
  using acc = acc_t<scalar_t>;
  const acc w = weights ? load(weights + bk) : acc(1);
  return splat_keypoint<acc>(load(xy + 2 * bk), load(xy + 2 * bk + 1), w, height, width, variance,
                             radius, normalize);
}

// Window of a keypoint as four int32 (x_lo, x_hi, y_lo, y_hi), 16 bytes: what the tile blocks
// scan for every keypoint (int32 is enough: bounds are clipped to the image, or the empty (1, 0)).
__device__ __forceinline__ int4 window_box(int64_t x_lo, int64_t x_hi, int64_t y_lo, int64_t y_hi) {
  return make_int4(static_cast<int>(x_lo), static_cast<int>(x_hi), static_cast<int>(y_lo),
                   static_cast<int>(y_hi));
}

__device__ __forceinline__ bool box_meets_tile(int4 box, int64_t x0, int64_t y0) {
  return window_meets_tile(box.x, box.y, box.z, box.w, x0, y0, kTileW, kTileH);
}

template <typename scalar_t>
__global__ void prep_kernel(const scalar_t* __restrict__ xy, const scalar_t* __restrict__ weights,
                            int64_t total, int64_t height, int64_t width,
                            acc_t<scalar_t> variance, int64_t radius, bool normalize,
                            SplatKeypoint<acc_t<scalar_t>>* __restrict__ params,
                            int4* __restrict__ boxes) {
  for (int64_t bk = global_thread(); bk < total; bk += global_stride()) {
    const SplatKeypoint<acc_t<scalar_t>> kp =
        keypoint_at(xy, weights, bk, height, width, variance, radius, normalize);
    params[bk] = kp;
    boxes[bk] = splat_window_empty(kp) ? window_box(1, 0, 1, 0)
                                       : window_box(kp.x_lo, kp.x_hi, kp.y_lo, kp.y_hi);
  }
}

// Adds the listed keypoints' contributions to this thread's pixel, kChannelsPerPass channels at a
// time in registers; the first flush of a tile stores, later ones (only when more than kListCap
// keypoints meet one tile) add to what is stored.
template <typename scalar_t>
__device__ void flush_list(const SplatKeypoint<acc_t<scalar_t>>* listed, const int64_t* listed_k,
                           int count, const scalar_t* __restrict__ descriptors, int64_t b,
                           int64_t k, int64_t channels, int64_t plane, int64_t px, int64_t py,
                           bool written, scalar_t* out_pixel) {
  using acc = acc_t<scalar_t>;
  for (int64_t c0 = 0; c0 < channels; c0 += kChannelsPerPass) {
    acc v[kChannelsPerPass];
#pragma unroll
    for (int cc = 0; cc < kChannelsPerPass; ++cc) v[cc] = 0;
    for (int i = 0; i < count; ++i) {
      const SplatKeypoint<acc>& q = listed[i];
      if (!splat_covers(q, px, py)) continue;
      const acc g = q.weight * q.norm * splat_gauss(q, px, py);
      const scalar_t* d = descriptors + (b * k + listed_k[i]) * channels + c0;
#pragma unroll
      for (int cc = 0; cc < kChannelsPerPass; ++cc) {
        if (c0 + cc < channels) v[cc] += g * load(d + cc);
      }
    }
#pragma unroll
    for (int cc = 0; cc < kChannelsPerPass; ++cc) {
      if (c0 + cc >= channels) break;
      scalar_t* o = out_pixel + (c0 + cc) * plane;
      *o = from_acc<scalar_t>(written ? to_acc<scalar_t>(*o) + v[cc] : v[cc]);
    }
  }
}

template <typename scalar_t>
__global__ void __launch_bounds__(kTileThreads)
    tile_sum_kernel(const SplatKeypoint<acc_t<scalar_t>>* __restrict__ params,
                    const int4* __restrict__ boxes, const scalar_t* __restrict__ descriptors, int64_t batch, int64_t k,
                    int64_t channels, int64_t height, int64_t width, scalar_t* __restrict__ out) {
  using acc = acc_t<scalar_t>;
  __shared__ SplatKeypoint<acc> listed[kListCap];
  __shared__ int64_t listed_k[kListCap];
  __shared__ int warp_counts[kTileThreads / kWarp];
  const int tid = threadIdx.x, lane = tid % kWarp, warp = tid / kWarp;
  const int64_t tiles_x = ceil_div(width, kTileW), tiles_y = ceil_div(height, kTileH);
  const int64_t plane = height * width;
  for (int64_t block = blockIdx.x; block < batch * tiles_y * tiles_x; block += gridDim.x) {
    const int64_t b = block / (tiles_y * tiles_x);
    const int64_t tx0 = (block % tiles_x) * kTileW, ty0 = ((block / tiles_x) % tiles_y) * kTileH;
    const int64_t px = tx0 + tid % kTileW, py = ty0 + tid / kTileW;
    const bool inside = px < width && py < height;
    scalar_t* out_pixel = out + b * channels * plane + (inside ? py * width + px : 0);
    bool written = false;  // block-uniform: has a flush stored this tile's outputs yet?
    int listed_count = 0;  // block-uniform
    for (int64_t chunk = 0; chunk < k; chunk += kTileThreads) {
      // Append the keypoints of this chunk whose window meets the tile, in keypoint order.
      const int64_t j = chunk + tid;
      const bool hit = j < k && box_meets_tile(__ldg(boxes + b * k + j), tx0, ty0);
      const unsigned ballot = __ballot_sync(kFullMask, hit);
      if (lane == 0) warp_counts[warp] = __popc(ballot);
      __syncthreads();
      int before = 0, count = 0;
      for (int w = 0; w < kTileThreads / kWarp; ++w) {
        before += w < warp ? warp_counts[w] : 0;
        count += warp_counts[w];
      }
      if (listed_count + count > kListCap) {  // rare: the list is full, fold it in first
        if (inside) {
          flush_list(listed, listed_k, listed_count, descriptors, b, k, channels, plane, px, py,
                     written, out_pixel);
        }
        written = true;
        listed_count = 0;
        __syncthreads();  // everyone is done reading the list before it is overwritten
      }
      if (hit) {
        const int slot = listed_count + before + __popc(ballot & ((1u << lane) - 1u));
        listed[slot] = params[b * k + j];
        listed_k[slot] = j;
      }
      listed_count += count;
      __syncthreads();  // list complete; warp_counts free for the next chunk
    }
    if (inside) {
      if (listed_count > 0 || !written) {  // with an empty list, this stores the zeros
        flush_list(listed, listed_k, listed_count, descriptors, b, k, channels, plane, px, py,
                   written, out_pixel);
      }
    }
    __syncthreads();  // the next tile of this block reuses the list
  }
}

template <typename scalar_t>
__global__ void per_keypoint_kernel(const SplatKeypoint<acc_t<scalar_t>>* __restrict__ params,
                                    const scalar_t* __restrict__ descriptors, int64_t batch,
                                    int64_t k, int64_t channels, int64_t height, int64_t width,
                                    scalar_t* __restrict__ out) {
  using acc = acc_t<scalar_t>;
  const int64_t plane = height * width, total = batch * k * plane;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t bk = t / plane, p = t % plane, px = p % width, py = p / width;
    const SplatKeypoint<acc> kp = params[bk];
    // Outside the window the reference multiplies by an exact 0 (so NaN descriptors stay NaN).
    const acc g = splat_covers(kp, px, py) ? kp.weight * kp.norm * splat_gauss(kp, px, py) : acc(0);
    const scalar_t* d = descriptors + bk * channels;
    scalar_t* o = out + bk * channels * plane + p;
    for (int64_t c = 0; c < channels; ++c) o[c * plane] = from_acc<scalar_t>(g * load(d + c));
  }
}

template <typename scalar_t>
__global__ void backward_kernel(const scalar_t* __restrict__ grad, const scalar_t* __restrict__ xy,
                                const scalar_t* __restrict__ descriptors,
                                const scalar_t* __restrict__ weights, int64_t batch, int64_t k,
                                int64_t channels, int64_t height, int64_t width,
                                acc_t<scalar_t> variance, int64_t radius, bool normalize,
                                bool reduce_sum, scalar_t* __restrict__ grad_xy,
                                scalar_t* __restrict__ grad_descriptors,
                                scalar_t* __restrict__ grad_weights) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t plane = height * width;
  for (int64_t bk = global_warp(); bk < batch * k; bk += global_warps()) {
    const int64_t b = bk / k;
    const SplatKeypoint<acc> kp =
        keypoint_at(xy, weights, bk, height, width, variance, radius, normalize);
    const int64_t wx = kp.x_hi - kp.x_lo + 1;
    const int64_t cells = splat_window_empty(kp) ? 0 : wx * (kp.y_hi - kp.y_lo + 1);
    const scalar_t* g = grad + (reduce_sum ? b * channels * plane : bk * channels * plane);
    const scalar_t* d = descriptors + bk * channels;

    // Pass A: lanes over window pixels.
    acc mx, my;
    splat_centre(kp, normalize, &mx, &my);
    SplatGradSums<acc> sums;
    for (int64_t base = 0; base < cells; base += kWarp) {
      const int64_t cell = base + lane;
      if (cell >= cells) break;
      const int64_t px = kp.x_lo + cell % wx, py = kp.y_lo + cell / wx;
      const acc gn = kp.norm * splat_gauss(kp, px, py);
      const scalar_t* gp = g + py * width + px;
      acc s = 0;
      for (int64_t c = 0; c < channels; ++c) s += load(d + c) * load(gp + c * plane);
      const acc ox = static_cast<acc>(px) - kp.x - mx, oy = static_cast<acc>(py) - kp.y - my;
      sums.a += gn * s;
      sums.sgx += gn * s * ox;
      sums.sgy += gn * s * oy;
    }
    sums.a = warp_sum(sums.a);
    sums.sgx = warp_sum(sums.sgx);
    sums.sgy = warp_sum(sums.sgy);
    if (lane == 0) {
      acc gx, gy, gw;
      splat_keypoint_grads(sums, kp.weight, variance, &gx, &gy, &gw);
      if (grad_xy) {
        grad_xy[2 * bk] = from_acc<scalar_t>(gx);
        grad_xy[2 * bk + 1] = from_acc<scalar_t>(gy);
      }
      if (grad_weights) grad_weights[bk] = from_acc<scalar_t>(gw);
    }

    // Pass B: lanes over channels; the 32 Gaussians of a pixel batch are shared by shuffles.
    if (grad_descriptors) {
      for (int64_t c0 = 0; c0 < channels; c0 += kWarp) {
        const int64_t c = c0 + lane;
        acc total = 0;
        for (int64_t base = 0; base < cells; base += kWarp) {
          const int64_t cell = base + lane;
          const acc gn_lane =
              cell < cells ? kp.norm * splat_gauss(kp, kp.x_lo + cell % wx, kp.y_lo + cell / wx)
                           : acc(0);
          const int64_t batch_cells = min_value<int64_t>(kWarp, cells - base);
          for (int i = 0; i < batch_cells; ++i) {
            const acc gn = __shfl_sync(kFullMask, gn_lane, i);
            const int64_t px = kp.x_lo + (base + i) % wx, py = kp.y_lo + (base + i) / wx;
            if (c < channels) total += gn * load(g + c * plane + py * width + px);
          }
        }
        if (c < channels) grad_descriptors[bk * channels + c] = from_acc<scalar_t>(kp.weight * total);
      }
    }
  }
}

// Bound on the radius so the integer window arithmetic cannot overflow; it changes nothing for
// keypoints closer than 2^40 pixels to the image.
constexpr int64_t kMaxRadius = int64_t(1) << 40;

bool sizes_ok(int64_t batch, int64_t k, int64_t channels, int64_t height, int64_t width,
              double variance, int64_t radius) {
  return batch >= 0 && k >= 0 && channels >= 0 && height >= 1 && width >= 1 && variance > 0 &&
         radius >= 0;
}

size_t keypoint_record_size(tusk_dtype dtype) {
  return dtype == TUSK_FLOAT64 ? sizeof(SplatKeypoint<double>) : sizeof(SplatKeypoint<float>);
}

struct ForwardWorkspace {
  void* params;
  int4* boxes;
  uint64_t bytes;
};

ForwardWorkspace forward_workspace(void* base, tusk_dtype dtype, int64_t keypoints) {
  WorkspaceLayout layout(base);
  ForwardWorkspace ws;
  ws.params = layout.take<unsigned char>(keypoints * keypoint_record_size(dtype));
  ws.boxes = layout.take<int4>(keypoints);
  ws.bytes = layout.used;
  return ws;
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

extern "C" size_t tusk_splat_gaussians_workspace_bytes(tusk_dtype dtype, int64_t batch, int64_t k) {
  if (batch < 0 || k < 0) return 0;
  return forward_workspace(nullptr, dtype, batch * k).bytes;
}

extern "C" cudaError_t tusk_splat_gaussians_forward(tusk_dtype dtype, const void* xy,
                                                    const void* descriptors, const void* weights,
                                                    int64_t batch, int64_t k, int64_t channels,
                                                    int64_t height, int64_t width, double variance,
                                                    int64_t radius, int normalize, int reduce_sum,
                                                    void* out, void* workspace,
                                                    cudaStream_t stream) {
  if (!sizes_ok(batch, k, channels, height, width, variance, radius)) return cudaErrorInvalidValue;
  const int64_t plane = height * width;
  const int64_t out_size = reduce_sum ? batch * channels * plane : batch * k * channels * plane;
  if (out_size == 0) return cudaSuccess;
  if (k == 0) {  // sum over no keypoints
    return cudaMemsetAsync(out, 0, static_cast<size_t>(out_size) * tusk_dtype_size(dtype), stream);
  }
  radius = min_value<int64_t>(radius, kMaxRadius);
  const ForwardWorkspace ws = forward_workspace(workspace, dtype, batch * k);
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    auto* params = static_cast<SplatKeypoint<acc>*>(ws.params);
    const scalar_t* d = static_cast<const scalar_t*>(descriptors);
    prep_kernel<scalar_t><<<blocks_for(batch * k), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(xy), static_cast<const scalar_t*>(weights), batch * k, height,
        width, static_cast<acc>(variance), radius, normalize != 0, params, ws.boxes);
    if (reduce_sum) {
      const int64_t tiles = batch * ceil_div(height, kTileH) * ceil_div(width, kTileW);
      tile_sum_kernel<scalar_t><<<blocks_for(tiles, 1), kTileThreads, 0, stream>>>(
          params, ws.boxes, d, batch, k, channels, height, width, static_cast<scalar_t*>(out));
    } else {
      per_keypoint_kernel<scalar_t><<<blocks_for(batch * k * plane), kThreads, 0, stream>>>(
          params, d, batch, k, channels, height, width, static_cast<scalar_t*>(out));
    }
  });
  return launch_status();
}

extern "C" cudaError_t tusk_splat_gaussians_backward(
    tusk_dtype dtype, const void* grad, const void* xy, const void* descriptors, const void* weights,
    int64_t batch, int64_t k, int64_t channels, int64_t height, int64_t width, double variance,
    int64_t radius, int normalize, int reduce_sum, void* grad_xy, void* grad_descriptors,
    void* grad_weights, cudaStream_t stream) {
  if (!sizes_ok(batch, k, channels, height, width, variance, radius)) return cudaErrorInvalidValue;
  if (batch * k == 0) return cudaSuccess;
  radius = min_value<int64_t>(radius, kMaxRadius);
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    backward_kernel<scalar_t><<<blocks_for(batch * k * kWarp), kThreads, 0, stream>>>(
        static_cast<const scalar_t*>(grad), static_cast<const scalar_t*>(xy),
        static_cast<const scalar_t*>(descriptors), static_cast<const scalar_t*>(weights), batch, k,
        channels, height, width, static_cast<acc>(variance), radius, normalize != 0,
        reduce_sum != 0, static_cast<scalar_t*>(grad_xy), static_cast<scalar_t*>(grad_descriptors),
        static_cast<scalar_t*>(grad_weights));
  });
  return launch_status();
}
