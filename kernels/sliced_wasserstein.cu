// sliced_wasserstein on CUDA: per problem g and projection p, sort both projected point sets and
// average the squared differences of the sorted values. Contract:
// tusk/ops/reference/sliced_wasserstein.py; order and residuals: tusk/sliced.h.
//
// Forward:
//  - N <= 1024 (TUSK: N = 100..300): one block per (g, p) projects both sets into shared memory
//    (2 x 1024 x 16 B = 32 KiB at most), bitonic-sorts them, writes the residuals of every
//    sorted pair and reduces its squared differences (fixed tree) to a partial sum.
//  - larger N: a segmented sort (tusk/sort_plan.h, as in detect_keypoints): 2048-item tiles
//    sorted in shared memory, then merge-path rounds in global memory, then one block per (g, p)
//    for the residuals and the partial sum. The order (value, then index) is total, so both paths
//    give identical results.
//  - a last kernel sums each problem's P partials in order: deterministic, no atomics.
// Backward (x_residual/y_residual hold d distance / d projected point):
//  grad_x[g,i,:] = grad[g] * sum_p x_residual[g,i,p] theta[:,p]       one thread per output
//  grad_theta[:,p] = sum_g grad[g] sum_i (x_residual[g,i,p] x[g,i,:] + y_residual[g,i,p] y[g,i,:])
//    as a split-K reduction: fixed row blocks of 256 rows -> partials -> summed in order.
#include "cuda_utils.cuh"
#include "sorting.cuh"
#include "tusk/cuda/sliced_wasserstein.h"
#include "tusk/sliced.h"

namespace tusk {
namespace cuda {
namespace {

constexpr int64_t kBlockSortMax = 1024;  // largest N sorted by one block (fast path)
constexpr int64_t kRowsPerSplit = 256;   // split-K block of the grad_theta reduction

template <typename scalar_t>
__device__ __forceinline__ acc_t<scalar_t> project(const scalar_t* __restrict__ point,
                                                   const scalar_t* __restrict__ theta,
                                                   int64_t channels, int64_t count, int64_t p) {
  acc_t<scalar_t> v = 0;
  for (int64_t c = 0; c < channels; ++c) v += load(point + c) * load(theta + c * count + p);
  return v;
}

// Residuals of one (g, p) from its two sorted lists, and this block's sum of squared differences
// into partial[g * count + p]. All threads of the block call it.
template <typename scalar_t>
__device__ void residuals_and_partial(const SortItem<acc_t<scalar_t>>* xs,
                                      const SortItem<acc_t<scalar_t>>* ys, int64_t g, int64_t p,
                                      int64_t points, int64_t count,
                                      scalar_t* __restrict__ x_residual,
                                      scalar_t* __restrict__ y_residual,
                                      acc_t<scalar_t>* __restrict__ partial,
                                      acc_t<scalar_t>* scratch) {
  using acc = acc_t<scalar_t>;
  acc local = 0;
  for (int64_t r = threadIdx.x; r < points; r += blockDim.x) {
    const SortItem<acc> a = xs[r], b = ys[r];
    const acc d = a.value - b.value;
    const acc res = sliced_residual(a.value, b.value, points, count);
    x_residual[(g * points + a.index) * count + p] = from_acc<scalar_t>(res);
    y_residual[(g * points + b.index) * count + p] = from_acc<scalar_t>(-res);
    local += d * d;
  }
  const acc total = block_sum(local, scratch);
  if (threadIdx.x == 0) partial[g * count + p] = total;
}

// Launched with up to 512 threads; tile_sort_kernel with up to 1024 (SortPlan::threads).
template <typename scalar_t>
__global__ void __launch_bounds__(1024) block_sort_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                  const scalar_t* __restrict__ theta, int64_t groups,
                                  int64_t points, int64_t channels, int64_t count, int64_t padded,
                                  scalar_t* __restrict__ x_residual,
                                  scalar_t* __restrict__ y_residual,
                                  acc_t<scalar_t>* __restrict__ partial) {
  using acc = acc_t<scalar_t>;
  extern __shared__ unsigned char smem_raw[];
  SortItem<acc>* xs = reinterpret_cast<SortItem<acc>*>(smem_raw);
  SortItem<acc>* ys = xs + padded;
  __shared__ acc scratch[kWarp];
  for (int64_t block = blockIdx.x; block < groups * count; block += gridDim.x) {
    const int64_t g = block / count, p = block % count;
    for (int64_t i = threadIdx.x; i < padded; i += blockDim.x) {
      SortItem<acc> a = sort_item_sentinel<acc>(), b = sort_item_sentinel<acc>();
      if (i < points) {
        a.value = project(x + (g * points + i) * channels, theta, channels, count, p);
        b.value = project(y + (g * points + i) * channels, theta, channels, count, p);
        a.index = b.index = i;
      }
      xs[i] = a;
      ys[i] = b;
    }
    block_bitonic_sort(xs, padded, SortItemBefore<acc>());
    block_bitonic_sort(ys, padded, SortItemBefore<acc>());
    residuals_and_partial(xs, ys, g, p, points, count, x_residual, y_residual, partial, scratch);
    __syncthreads();  // xs/ys are refilled by the next block-stride iteration
  }
}

// Phase 1 of the large-N path: segment s = (g * count + p) * 2 + side.
template <typename scalar_t>
__global__ void __launch_bounds__(1024) tile_sort_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ y,
                                 const scalar_t* __restrict__ theta, int64_t channels,
                                 int64_t count, SortPlan plan,
                                 SortItem<acc_t<scalar_t>>* __restrict__ lists,
                                 int64_t* __restrict__ valid) {
  using acc = acc_t<scalar_t>;
  extern __shared__ unsigned char smem_raw[];
  SortItem<acc>* items = reinterpret_cast<SortItem<acc>*>(smem_raw);
  const int64_t keep = plan_length(plan, 0);
  for (int64_t block = blockIdx.x; block < plan.segments * plan.tiles; block += gridDim.x) {
    const int64_t segment = block / plan.tiles, tile = block % plan.tiles;
    const int64_t side = segment % 2, p = (segment / 2) % count, g = segment / (2 * count);
    const scalar_t* set = (side == 0 ? x : y) + g * plan.items * channels;
    for (int64_t t = threadIdx.x; t < plan.tile; t += blockDim.x) {
      const int64_t i = tile * plan.tile + t;
      SortItem<acc> item = sort_item_sentinel<acc>();
      if (i < plan.items) {
        item.value = project(set + i * channels, theta, channels, count, p);
        item.index = i;
      }
      items[t] = item;
    }
    block_bitonic_sort(items, plan.tile, SortItemBefore<acc>());
    SortItem<acc>* out = lists + segment * plan.stride + tile * keep;
    const int64_t kept = min_value(keep, plan.items - tile * plan.tile);  // real items of the tile
    for (int64_t t = threadIdx.x; t < kept; t += blockDim.x) out[t] = items[t];
    if (threadIdx.x == 0) valid[block] = kept;
    __syncthreads();
  }
}

template <typename scalar_t>
__global__ void sorted_residuals_kernel(const SortItem<acc_t<scalar_t>>* __restrict__ lists,
                                        int64_t stride, int64_t groups, int64_t points,
                                        int64_t count, scalar_t* __restrict__ x_residual,
                                        scalar_t* __restrict__ y_residual,
                                        acc_t<scalar_t>* __restrict__ partial) {
  using acc = acc_t<scalar_t>;
  __shared__ acc scratch[kWarp];
  for (int64_t block = blockIdx.x; block < groups * count; block += gridDim.x) {
    const int64_t g = block / count, p = block % count;
    const SortItem<acc>* xs = lists + (2 * block) * stride;
    const SortItem<acc>* ys = lists + (2 * block + 1) * stride;
    residuals_and_partial(xs, ys, g, p, points, count, x_residual, y_residual, partial, scratch);
  }
}

template <typename scalar_t>
__global__ void finish_kernel(const acc_t<scalar_t>* __restrict__ partial, int64_t groups,
                              int64_t points, int64_t count, scalar_t* __restrict__ distance) {
  using acc = acc_t<scalar_t>;
  for (int64_t g = global_thread(); g < groups; g += global_stride()) {
    acc total = 0;
    for (int64_t p = 0; p < count; ++p) total += partial[g * count + p];
    distance[g] = from_acc<scalar_t>(total / (static_cast<acc>(points) * static_cast<acc>(count)));
  }
}

// grad_x (and grad_y) [G,N,C]: one thread per output, channels fastest.
template <typename scalar_t>
__global__ void grad_points_kernel(const scalar_t* __restrict__ grad,
                                   const scalar_t* __restrict__ residual,
                                   const scalar_t* __restrict__ theta, int64_t groups,
                                   int64_t points, int64_t channels, int64_t count,
                                   scalar_t* __restrict__ out) {
  using acc = acc_t<scalar_t>;
  const int64_t total = groups * points * channels;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t c = t % channels, row = t / channels, g = row / points;
    const scalar_t* r = residual + row * count;
    const scalar_t* th = theta + c * count;
    acc v = 0;
    for (int64_t p = 0; p < count; ++p) v += load(r + p) * load(th + p);
    out[t] = from_acc<scalar_t>(load(grad + g) * v);
  }
}

// Split-K partials of grad_theta: partial[split][c][p], projections fastest (coalesced residual
// reads; the point value is shared by the warp).
template <typename scalar_t>
__global__ void grad_theta_partial_kernel(const scalar_t* __restrict__ grad,
                                          const scalar_t* __restrict__ x,
                                          const scalar_t* __restrict__ y,
                                          const scalar_t* __restrict__ x_residual,
                                          const scalar_t* __restrict__ y_residual, int64_t groups,
                                          int64_t points, int64_t channels, int64_t count,
                                          int64_t splits, acc_t<scalar_t>* __restrict__ partial) {
  using acc = acc_t<scalar_t>;
  const int64_t rows = groups * points, total = splits * channels * count;
  for (int64_t t = global_thread(); t < total; t += global_stride()) {
    const int64_t p = t % count, c = (t / count) % channels, split = t / (count * channels);
    const int64_t lo = split * kRowsPerSplit, hi = min_value(rows, lo + kRowsPerSplit);
    acc v = 0;
    for (int64_t n = lo; n < hi; ++n) {
      const acc term = load(x_residual + n * count + p) * load(x + n * channels + c) +
                       load(y_residual + n * count + p) * load(y + n * channels + c);
      v += load(grad + n / points) * term;
    }
    partial[t] = v;
  }
}

template <typename scalar_t>
__global__ void grad_theta_finish_kernel(const acc_t<scalar_t>* __restrict__ partial,
                                         int64_t splits, int64_t size, scalar_t* __restrict__ out) {
  using acc = acc_t<scalar_t>;
  for (int64_t t = global_thread(); t < size; t += global_stride()) {
    acc v = 0;
    for (int64_t s = 0; s < splits; ++s) v += partial[s * size + t];
    out[t] = from_acc<scalar_t>(v);
  }
}

size_t acc_size_of(tusk_dtype dtype) { return dtype == TUSK_FLOAT64 ? 8 : 4; }

// SortItem<float> and SortItem<double> are both 16 bytes (value + int64 index, 8-aligned).
static_assert(sizeof(SortItem<float>) == 16 && sizeof(SortItem<double>) == 16, "SortItem layout");

struct ForwardWorkspace {
  void* partial;
  void* lists[2];
  int64_t* valid[2];
  uint64_t bytes;
};

ForwardWorkspace forward_workspace(void* base, tusk_dtype dtype, int64_t groups, int64_t points,
                                   int64_t count) {
  WorkspaceLayout layout(base);
  ForwardWorkspace ws{};
  ws.partial = layout.take<unsigned char>(groups * count * acc_size_of(dtype));
  if (points > kBlockSortMax) {
    const SortPlan plan = make_sort_plan(groups * count * 2, points, points);
    for (int i = 0; i < 2; ++i) {
      ws.lists[i] = layout.take<SortItem<double>>(plan.segments * plan.stride);
      ws.valid[i] = layout.take<int64_t>(plan.segments * plan.tiles);
    }
  }
  ws.bytes = layout.used;
  return ws;
}

bool sizes_ok(int64_t groups, int64_t points, int64_t channels, int64_t count) {
  return groups >= 0 && points >= 1 && channels >= 1 && count >= 1;
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

extern "C" size_t tusk_sliced_wasserstein_workspace_bytes(tusk_dtype dtype, int64_t groups,
                                                          int64_t points, int64_t count) {
  if (groups < 0 || points < 1 || count < 1) return 0;
  return forward_workspace(nullptr, dtype, groups, points, count).bytes;
}

extern "C" cudaError_t tusk_sliced_wasserstein_forward(tusk_dtype dtype, const void* x,
                                                       const void* y, const void* projections,
                                                       int64_t groups, int64_t points,
                                                       int64_t channels, int64_t count,
                                                       void* distance, void* x_residual,
                                                       void* y_residual, void* workspace,
                                                       cudaStream_t stream) {
  if (!sizes_ok(groups, points, channels, count)) return cudaErrorInvalidValue;
  if (groups == 0) return cudaSuccess;
  const ForwardWorkspace ws = forward_workspace(workspace, dtype, groups, points, count);
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    const scalar_t* xp = static_cast<const scalar_t*>(x);
    const scalar_t* yp = static_cast<const scalar_t*>(y);
    const scalar_t* th = static_cast<const scalar_t*>(projections);
    scalar_t* xr = static_cast<scalar_t*>(x_residual);
    scalar_t* yr = static_cast<scalar_t*>(y_residual);
    acc* partial = static_cast<acc*>(ws.partial);
    const unsigned problem_blocks = static_cast<unsigned>(min_value(groups * count, kMaxBlocks));
    if (points <= kBlockSortMax) {
      const int64_t padded = next_pow2(points);
      const int64_t threads = min_value<int64_t>(1024, max_value<int64_t>(kWarp, padded / 2));
      block_sort_kernel<scalar_t><<<problem_blocks, static_cast<unsigned>(threads),
                                    2 * padded * sizeof(SortItem<acc>), stream>>>(
          xp, yp, th, groups, points, channels, count, padded, xr, yr, partial);
    } else {
      const SortPlan plan = make_sort_plan(groups * count * 2, points, points);
      SortItem<acc>* buffers[2] = {static_cast<SortItem<acc>*>(ws.lists[0]),
                                   static_cast<SortItem<acc>*>(ws.lists[1])};
      const unsigned tile_blocks = static_cast<unsigned>(min_value(plan.segments * plan.tiles, kMaxBlocks));
      tile_sort_kernel<scalar_t><<<tile_blocks, static_cast<unsigned>(plan.threads),
                                   plan.tile * sizeof(SortItem<acc>), stream>>>(
          xp, yp, th, channels, count, plan, buffers[0], ws.valid[0]);
      int64_t* valid[2] = {ws.valid[0], ws.valid[1]};
      const SortItem<acc>* sorted = run_merge_rounds(plan, buffers, valid, SortItemBefore<acc>(), stream);
      sorted_residuals_kernel<scalar_t><<<problem_blocks, kThreads, 0, stream>>>(
          sorted, plan.stride, groups, points, count, xr, yr, partial);
    }
    finish_kernel<scalar_t><<<blocks_for(groups), kThreads, 0, stream>>>(
        partial, groups, points, count, static_cast<scalar_t*>(distance));
  });
  return launch_status();
}

extern "C" size_t tusk_sliced_wasserstein_backward_workspace_bytes(tusk_dtype dtype,
                                                                   int64_t groups, int64_t points,
                                                                   int64_t channels,
                                                                   int64_t count) {
  if (!sizes_ok(groups, points, channels, count)) return 0;
  const int64_t splits = ceil_div(groups * points, kRowsPerSplit);
  return static_cast<size_t>(splits * channels * count) * acc_size_of(dtype);
}

extern "C" cudaError_t tusk_sliced_wasserstein_backward(
    tusk_dtype dtype, const void* grad, const void* x, const void* y, const void* projections,
    const void* x_residual, const void* y_residual, int64_t groups, int64_t points,
    int64_t channels, int64_t count, void* grad_x, void* grad_y, void* grad_projections,
    void* workspace, cudaStream_t stream) {
  if (!sizes_ok(groups, points, channels, count)) return cudaErrorInvalidValue;
  if (groups == 0) {  // grad_projections of an empty batch is zero
    if (grad_projections == nullptr) return cudaSuccess;
    return cudaMemsetAsync(grad_projections, 0,
                           static_cast<size_t>(channels * count) * tusk_dtype_size(dtype), stream);
  }
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    const scalar_t* g = static_cast<const scalar_t*>(grad);
    const scalar_t* th = static_cast<const scalar_t*>(projections);
    const scalar_t* xr = static_cast<const scalar_t*>(x_residual);
    const scalar_t* yr = static_cast<const scalar_t*>(y_residual);
    const int64_t point_outputs = groups * points * channels;
    if (grad_x) {
      grad_points_kernel<scalar_t><<<blocks_for(point_outputs), kThreads, 0, stream>>>(
          g, xr, th, groups, points, channels, count, static_cast<scalar_t*>(grad_x));
    }
    if (grad_y) {
      grad_points_kernel<scalar_t><<<blocks_for(point_outputs), kThreads, 0, stream>>>(
          g, yr, th, groups, points, channels, count, static_cast<scalar_t*>(grad_y));
    }
    if (grad_projections) {
      const int64_t splits = ceil_div(groups * points, kRowsPerSplit);
      acc* partial = static_cast<acc*>(workspace);
      grad_theta_partial_kernel<scalar_t><<<blocks_for(splits * channels * count), kThreads, 0,
                                            stream>>>(
          g, static_cast<const scalar_t*>(x), static_cast<const scalar_t*>(y), xr, yr, groups,
          points, channels, count, splits, partial);
      grad_theta_finish_kernel<scalar_t><<<blocks_for(channels * count), kThreads, 0, stream>>>(
          partial, splits, channels * count, static_cast<scalar_t*>(grad_projections));
    }
  });
  return launch_status();
}
