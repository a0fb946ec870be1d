// detect_keypoints on CUDA: NMS + top-K + local soft-argmax + bilinear score, and its backward.
// Contract: tusk/ops/reference/detect_keypoints.py (order: peaks first, score descending with NaN
// first, index ascending; fewer-than-K peaks are filled by the best non-peaks).
//
// Forward, five launch kinds, no host synchronisation (K and the merge schedule follow from the
// shapes; data-dependent choices are read on the device):
//  1. nms_rowmax      separable max filter, horizontal half: row maxima over the clipped
//                     window, one thread per pixel (coalesced; the 2r+1 reads hit L1).
//  2. peak            vertical half: one block per tile of up to 2048 consecutive pixels writes
//                     the peak flags (with the strict / border / valid-size options) and the
//                     tile's peak count.
//  3. tile_topk       one block per tile: when the image has >= K peaks (the usual case), or
//                     without fill, only peaks can be selected, so the tile gathers just its
//                     peaks (~1/nms^2 of its pixels), else all its pixels; their (peak, score, index) keys (tusk/topk.h)
//                     are bitonic-sorted in shared memory and the best min(K, tile) kept.
//  4. merge_round     ceil(log2(tiles)) merge-path rounds pair up neighbouring candidate lists,
//                     keeping the best min(K, 2L) of each pair, until one list of K per image;
//                     each list carries its valid count, so slots past it cost one check.
//                     Keys are unique (the index is part of them), so the result equals a full
//                     stable sort: exactly the reference's order.
//  5. refine          one warp per keypoint: window max, then the softmax sums (warp
//                     reductions in a fixed order), then the bilinear score at the refined xy.
// Backward: one warp per keypoint recomputes the window softmax and scatters d score / d scores
// (four bilinear taps) and the soft-argmax gradient (window cells) with atomicAdd into a
// zero-filled map (float32 scratch for float16/bfloat16). Keypoints' windows overlap, so the
// float summation order, and therefore the last bits of grad_scores, may vary between runs.
// With deterministic != 0 (torch.use_deterministic_algorithms(True)) one warp per image walks its
// keypoints in order instead: bitwise reproducible, slower (K sequential steps per image).
#include "cuda_utils.cuh"
#include "sorting.cuh"
#include "tusk/bilinear.h"
#include "tusk/cuda/detect_keypoints.h"
#include "tusk/peak_rule.h"
#include "tusk/softargmax.h"
#include "tusk/topk.h"

namespace tusk {
namespace cuda {
namespace {

// ---- 1. horizontal max --------------------------------------------------------------------------
template <typename scalar_t>
__global__ void nms_rowmax_kernel(const scalar_t* __restrict__ scores, acc_t<scalar_t>* rowmax,
                                  int64_t total, int64_t width, int64_t radius) {
  for (int64_t p = global_thread(); p < total; p += global_stride()) {
    const int64_t x = p % width, row = p - x;
    const int64_t lo = max_value<int64_t>(x - radius, 0);
    const int64_t hi = min_value<int64_t>(x + radius, width - 1);
    acc_t<scalar_t> m = load(scores + p);
    for (int64_t xi = lo; xi <= hi; ++xi) m = max_propagate_nan(m, load(scores + row + xi));
    rowmax[p] = m;
  }
}

// ---- 2. vertical max: peak flags and peak counts per tile ----------------------------------------
// The peak rule's options (tusk/peak_rule.h, reference.peak_mask): a peak must lie in its image's
// PeakRegion, and with `strict` be greater than every other pixel of its clipped window: the
// maximum over the other rows comes from the row maxima, that over the other pixels of its own
// row is read directly (2r more loads, only for the candidates that equal the window maximum).
// Launched with up to 1024 threads (SortPlan::threads): the bound keeps registers <= 64.
template <typename scalar_t>
__global__ void __launch_bounds__(1024) peak_kernel(const scalar_t* __restrict__ scores,
                                                    const acc_t<scalar_t>* __restrict__ rowmax,
                                                    int64_t batch, int64_t height, int64_t width,
                                                    int64_t radius, bool strict, int64_t border,
                                                    const int64_t* __restrict__ image_size,
                                                    SortPlan plan,
                                                    uint8_t* __restrict__ is_peak,
                                                    int64_t* __restrict__ tile_peaks) {
  __shared__ int64_t scratch[kWarp];
  const int64_t pixels = height * width;
  for (int64_t block = blockIdx.x; block < batch * plan.tiles; block += gridDim.x) {
    const int64_t b = block / plan.tiles, tile = block % plan.tiles;
    const acc_t<scalar_t>* rm = rowmax + b * pixels;
    const scalar_t* s = scores + b * pixels;
    const PeakRegion region = peak_region(border, image_size, b, height, width);
    int64_t count = 0;
    for (int64_t i = threadIdx.x; i < plan.tile; i += blockDim.x) {
      const int64_t p = tile * plan.tile + i;
      if (p >= pixels) break;
      const int64_t x = p % width, y = p / width;
      const int64_t lo = max_value<int64_t>(y - radius, 0);
      const int64_t hi = min_value<int64_t>(y + radius, height - 1);
      acc_t<scalar_t> pooled = rm[p];
      for (int64_t yi = lo; yi <= hi; ++yi) pooled = max_propagate_nan(pooled, rm[yi * width + x]);
      const acc_t<scalar_t> value = load(s + p);
      bool peak = value == pooled && region.contains(x, y);  // NaN: never a peak
      if (strict && peak) {
        acc_t<scalar_t> others = -INFINITY;
        bool any = false;
        for (int64_t yi = lo; yi <= hi; ++yi) {
          if (yi == y) continue;
          others = max_propagate_nan(others, rm[yi * width + x]);
          any = true;
        }
        const int64_t x0 = max_value<int64_t>(x - radius, 0);
        const int64_t x1 = min_value<int64_t>(x + radius, width - 1);
        for (int64_t xi = x0; xi <= x1; ++xi) {
          if (xi == x) continue;
          others = max_propagate_nan(others, load(s + y * width + xi));
          any = true;
        }
        peak = !any || value > others;  // alone in its window: a peak (not NaN, checked above)
      }
      is_peak[b * pixels + p] = peak ? 1 : 0;
      count += peak ? 1 : 0;
    }
    count = block_sum(count, scratch);
    if (threadIdx.x == 0) tile_peaks[block] = count;
  }
}

// ---- 3. per-tile candidates, sorted ----------------------------------------------------------------
// If the image has at least K peaks, only peaks can be selected, so a tile sorts just its peaks
// (about 1 / nms_size^2 of its pixels); otherwise it sorts all its pixels. The decision is read
// from the peak counts on the device: no host synchronisation.
template <typename scalar_t>
__global__ void __launch_bounds__(1024) tile_topk_kernel(const scalar_t* __restrict__ scores,
                                                         const uint8_t* __restrict__ is_peak,
                                                         const int64_t* __restrict__ tile_peaks,
                                                         int64_t batch, int64_t pixels, int64_t k,
                                                         bool fill, SortPlan plan,
                                                         TopKey* __restrict__ candidates,
                                                         int64_t* __restrict__ valid) {
  extern __shared__ unsigned char smem_raw[];
  TopKey* keys = reinterpret_cast<TopKey*>(smem_raw);
  __shared__ int64_t scratch[kWarp];
  __shared__ int selected;
  const int64_t keep = plan_length(plan, 0);
  for (int64_t block = blockIdx.x; block < batch * plan.tiles; block += gridDim.x) {
    const int64_t b = block / plan.tiles, tile = block % plan.tiles;
    int64_t peaks = 0;
    for (int64_t t = threadIdx.x; t < plan.tiles; t += blockDim.x) peaks += tile_peaks[b * plan.tiles + t];
    const bool peaks_only = !fill || block_sum(peaks, scratch) >= k;  // block-uniform
    if (threadIdx.x == 0) selected = 0;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < plan.tile; i += blockDim.x) {
      const int64_t p = tile * plan.tile + i;
      if (p >= pixels) break;
      const bool peak = is_peak[b * pixels + p] != 0;
      if (peak || !peaks_only) {  // shared-memory slots in any order: the sort below orders them
        const int slot = atomicAdd(&selected, 1);
        keys[slot] = make_topkey(static_cast<double>(load(scores + b * pixels + p)), peak, p);
      }
    }
    __syncthreads();
    const int64_t count = selected, padded = next_pow2(count);
    for (int64_t i = count + threadIdx.x; i < padded; i += blockDim.x) keys[i] = sentinel_topkey();
    block_bitonic_sort(keys, padded, TopKeyBefore());
    const int64_t kept = min_value(keep, count);
    TopKey* out = candidates + b * plan.stride + tile * keep;
    for (int64_t i = threadIdx.x; i < kept; i += blockDim.x) out[i] = keys[i];
    if (threadIdx.x == 0) valid[block] = kept;
    __syncthreads();  // keys and `selected` are reused by the next block-stride iteration
  }
}

// ---- 4. soft-argmax -----------------------------------------------------------------------------
template <typename acc>
struct WindowStats {
  acc max, sum, sum_dx, sum_dy;
};

// Softmax statistics of the window around `centre`, reduced over the warp (all lanes get them).
template <typename scalar_t>
__device__ WindowStats<acc_t<scalar_t>> window_stats(const scalar_t* __restrict__ s,
                                                     int64_t centre, int64_t window,
                                                     int64_t height, int64_t width,
                                                     acc_t<scalar_t> inv_temperature) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const int64_t cells = window * window;
  acc m = -INFINITY;
  for (int64_t cell = lane; cell < cells; cell += kWarp) {
    const WindowCell c = window_cell(centre, cell, window, height, width);
    if (c.inside) m = max_propagate_nan(m, load(s + c.flat));
  }
  WindowStats<acc> st;
  st.max = warp_max_nan(m);
  acc sum = 0, sx = 0, sy = 0;
  for (int64_t cell = lane; cell < cells; cell += kWarp) {
    const WindowCell c = window_cell(centre, cell, window, height, width);
    if (!c.inside) continue;
    const acc a = exp_value((load(s + c.flat) - st.max) * inv_temperature);
    sum += a;
    sx += a * static_cast<acc>(c.dx);
    sy += a * static_cast<acc>(c.dy);
  }
  st.sum = warp_sum(sum);
  st.sum_dx = warp_sum(sx);
  st.sum_dy = warp_sum(sy);
  return st;
}

// `selected_count` (per image, the final merge list's valid count) is non-null without fill:
// slots past it hold no candidate (the lists held peaks only) and take pixel 0, not a peak.
template <typename scalar_t>
__global__ void refine_kernel(const scalar_t* __restrict__ scores,
                              const TopKey* __restrict__ selected,
                              const int64_t* __restrict__ selected_count, int64_t stride,
                              int64_t batch, int64_t height, int64_t width, int64_t k,
                              int64_t window, acc_t<scalar_t> inv_temperature,
                              scalar_t* __restrict__ xy, scalar_t* __restrict__ score,
                              bool* __restrict__ is_peak, int64_t* __restrict__ index) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  for (int64_t slot = global_warp(); slot < batch * k; slot += global_warps()) {
    const int64_t b = slot / k, j = slot % k;
    const bool empty = selected_count != nullptr && j >= selected_count[b];  // warp-uniform
    const TopKey key = empty ? make_topkey(0.0, false, 0) : selected[b * stride + j];
    const int64_t centre = topkey_index(key);
    const scalar_t* s = scores + b * height * width;
    const WindowStats<acc> st = window_stats(s, centre, window, height, width, inv_temperature);
    if (lane == 0) {
      const acc x = static_cast<acc>(centre % width) + st.sum_dx / st.sum;
      const acc y = static_cast<acc>(centre / width) + st.sum_dy / st.sum;
      const BilinearTaps<acc> taps = bilinear_taps<acc>(x, y, height, width, Padding::Border);
      acc v = 0;
      for (int t = 0; t < 4; ++t) v += taps.weight[t] * load(s + taps.index[t]);
      xy[2 * slot] = from_acc<scalar_t>(x);
      xy[2 * slot + 1] = from_acc<scalar_t>(y);
      score[slot] = from_acc<scalar_t>(v);
      is_peak[slot] = topkey_is_peak(key);
      index[slot] = centre;
    }
  }
}

// ---- backward -----------------------------------------------------------------------------------
// Adds one keypoint's gradient into grad (acc map of image b). All lanes of the warp call it.
// kAtomic: atomicAdd (keypoints run concurrently); else plain adds (the caller serialises
// keypoints and this function orders taps before cells with __syncwarp).
template <bool kAtomic, typename scalar_t>
__device__ void keypoint_backward(const scalar_t* __restrict__ s, acc_t<scalar_t>* grad,
                                  int64_t centre, acc_t<scalar_t> grad_x, acc_t<scalar_t> grad_y,
                                  acc_t<scalar_t> grad_score, int64_t window, int64_t height,
                                  int64_t width, acc_t<scalar_t> inv_temperature) {
  using acc = acc_t<scalar_t>;
  const int lane = threadIdx.x % kWarp;
  const WindowStats<acc> st = window_stats(s, centre, window, height, width, inv_temperature);
  const acc off_x = st.sum_dx / st.sum, off_y = st.sum_dy / st.sum;
  const acc x = static_cast<acc>(centre % width) + off_x;
  const acc y = static_cast<acc>(centre / width) + off_y;
  // score = bilinear(s, xy): direct gradient to its taps, and d score / d xy joins grad_xy.
  const BilinearTaps<acc> taps = bilinear_taps<acc>(x, y, height, width, Padding::Border);
  acc dscore_dx = 0, dscore_dy = 0;
  for (int t = 0; t < 4; ++t) {
    const acc v = load(s + taps.index[t]);
    dscore_dx += taps.dweight_dx[t] * v;
    dscore_dy += taps.dweight_dy[t] * v;
  }
  const acc gx = grad_x + grad_score * dscore_dx, gy = grad_y + grad_score * dscore_dy;
  if (lane == 0) {
    for (int t = 0; t < 4; ++t) {
      const acc g = grad_score * taps.weight[t];
      if (kAtomic) {
        atomic_add(grad + taps.index[t], g);
      } else {
        grad[taps.index[t]] += g;
      }
    }
  }
  if (!kAtomic) __syncwarp();
  const int64_t cells = window * window;
  for (int64_t cell = lane; cell < cells; cell += kWarp) {
    const WindowCell c = window_cell(centre, cell, window, height, width);
    if (!c.inside) continue;
    const acc w = exp_value((load(s + c.flat) - st.max) * inv_temperature) / st.sum;
    const acc g = softargmax_cell_grad(w, c, off_x, off_y, gx, gy, inv_temperature);
    if (kAtomic) {
      atomic_add(grad + c.flat, g);
    } else {
      grad[c.flat] += g;  // cells of one window are distinct pixels: one lane each
    }
  }
  if (!kAtomic) __syncwarp();
}

template <typename scalar_t>
__device__ void keypoint_grads_in(const scalar_t* grad_xy, const scalar_t* grad_score,
                                  int64_t slot, acc_t<scalar_t>* gx, acc_t<scalar_t>* gy,
                                  acc_t<scalar_t>* gs) {
  *gx = grad_xy ? load(grad_xy + 2 * slot) : acc_t<scalar_t>(0);
  *gy = grad_xy ? load(grad_xy + 2 * slot + 1) : acc_t<scalar_t>(0);
  *gs = grad_score ? load(grad_score + slot) : acc_t<scalar_t>(0);
}

// Index values come from the forward; out-of-range ones (a corrupted input) are skipped rather
// than written out of bounds.
template <typename scalar_t>
__global__ void backward_atomic_kernel(const scalar_t* __restrict__ grad_xy,
                                       const scalar_t* __restrict__ grad_score,
                                       const scalar_t* __restrict__ scores,
                                       const int64_t* __restrict__ index, int64_t batch,
                                       int64_t height, int64_t width, int64_t k, int64_t window,
                                       acc_t<scalar_t> inv_temperature, acc_t<scalar_t>* grad) {
  using acc = acc_t<scalar_t>;
  const int64_t pixels = height * width;
  for (int64_t slot = global_warp(); slot < batch * k; slot += global_warps()) {
    const int64_t b = slot / k, centre = index[slot];
    if (centre < 0 || centre >= pixels) continue;  // warp-uniform
    acc gx, gy, gs;
    keypoint_grads_in(grad_xy, grad_score, slot, &gx, &gy, &gs);
    keypoint_backward<true>(scores + b * pixels, grad + b * pixels, centre, gx, gy, gs, window,
                            height, width, inv_temperature);
  }
}

template <typename scalar_t>
__global__ void backward_ordered_kernel(const scalar_t* __restrict__ grad_xy,
                                        const scalar_t* __restrict__ grad_score,
                                        const scalar_t* __restrict__ scores,
                                        const int64_t* __restrict__ index, int64_t batch,
                                        int64_t height, int64_t width, int64_t k, int64_t window,
                                        acc_t<scalar_t> inv_temperature, acc_t<scalar_t>* grad) {
  using acc = acc_t<scalar_t>;
  const int64_t pixels = height * width;
  for (int64_t b = global_warp(); b < batch; b += global_warps()) {
    for (int64_t j = 0; j < k; ++j) {
      const int64_t slot = b * k + j, centre = index[slot];
      if (centre < 0 || centre >= pixels) continue;
      acc gx, gy, gs;
      keypoint_grads_in(grad_xy, grad_score, slot, &gx, &gy, &gs);
      keypoint_backward<false>(scores + b * pixels, grad + b * pixels, centre, gx, gy, gs, window,
                               height, width, inv_temperature);
    }
  }
}

template <typename scalar_t>
__global__ void cast_kernel(const float* __restrict__ in, scalar_t* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += global_stride()) out[i] = from_acc<scalar_t>(in[i]);
}

// ---- workspace ----------------------------------------------------------------------------------
struct ForwardWorkspace {
  void* rowmax;
  uint8_t* is_peak;
  int64_t* tile_peaks;
  int64_t* valid[2];
  TopKey* keys[2];
  uint64_t bytes;
};

ForwardWorkspace forward_workspace(void* base, size_t acc_size, const SortPlan& plan,
                                   int64_t pixels) {
  WorkspaceLayout layout(base);
  ForwardWorkspace ws;
  ws.rowmax = layout.take<unsigned char>(plan.segments * pixels * acc_size);
  ws.is_peak = layout.take<uint8_t>(plan.segments * pixels);
  ws.tile_peaks = layout.take<int64_t>(plan.segments * plan.tiles);
  for (int i = 0; i < 2; ++i) {
    ws.valid[i] = layout.take<int64_t>(plan.segments * plan.tiles);
    ws.keys[i] = layout.take<TopKey>(plan.segments * plan.stride);
  }
  ws.bytes = layout.used;
  return ws;
}

size_t acc_size_of(tusk_dtype dtype) { return dtype == TUSK_FLOAT64 ? 8 : 4; }

// A soft-argmax window wider than 2 max(H, W) - 1 has no more cells inside the image than that
// one (same centre, same offsets): clamp it so huge windows cost nothing extra. Stays odd.
int64_t effective_window(int64_t window, int64_t height, int64_t width) {
  return min_value<int64_t>(window, 2 * max_value(height, width) - 1);
}

bool forward_args_ok(int64_t batch, int64_t height, int64_t width, int64_t k) {
  return batch >= 0 && height >= 1 && width >= 1 && k >= 1 && k <= height * width;
}

}  // namespace
}  // namespace cuda
}  // namespace tusk

using namespace tusk;
using namespace tusk::cuda;

extern "C" size_t tusk_detect_keypoints_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                        int64_t height, int64_t width, int64_t k) {
  if (!forward_args_ok(batch, height, width, k)) return 0;
  const SortPlan plan = make_sort_plan(batch, height * width, k);
  return forward_workspace(nullptr, acc_size_of(dtype), plan, height * width).bytes;
}

extern "C" cudaError_t tusk_detect_keypoints_forward(tusk_dtype dtype, const void* scores,
                                                     int64_t batch, int64_t height, int64_t width,
                                                     int64_t k, int64_t nms_size, int64_t window,
                                                     double temperature, int strict,
                                                     int64_t border, const int64_t* image_size,
                                                     int fill, void* xy, void* score,
                                                     bool* is_peak, int64_t* index,
                                                     void* workspace, cudaStream_t stream) {
  if (!forward_args_ok(batch, height, width, k) || nms_size < 1 || window < 1 ||
      !(temperature > 0) || border < 0) {
    return cudaErrorInvalidValue;
  }
  if (batch == 0) return cudaSuccess;
  const int64_t pixels = height * width;
  // A window wider than the image clips to the image: bound the loops by the image size.
  const int64_t radius = min_value<int64_t>(nms_size / 2, max_value(height, width));
  window = effective_window(window, height, width);
  const SortPlan plan = make_sort_plan(batch, pixels, k);
  const ForwardWorkspace ws = forward_workspace(workspace, acc_size_of(dtype), plan, pixels);
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    const scalar_t* s = static_cast<const scalar_t*>(scores);
    acc* rowmax = static_cast<acc*>(ws.rowmax);
    nms_rowmax_kernel<scalar_t><<<blocks_for(batch * pixels), kThreads, 0, stream>>>(
        s, rowmax, batch * pixels, width, radius);
    const unsigned blocks = static_cast<unsigned>(min_value<int64_t>(batch * plan.tiles, kMaxBlocks));
    const unsigned threads = static_cast<unsigned>(plan.threads);
    peak_kernel<scalar_t><<<blocks, threads, 0, stream>>>(s, rowmax, batch, height, width, radius,
                                                         strict != 0, border, image_size, plan,
                                                         ws.is_peak, ws.tile_peaks);
    tile_topk_kernel<scalar_t><<<blocks, threads, plan.tile * sizeof(TopKey), stream>>>(
        s, ws.is_peak, ws.tile_peaks, batch, pixels, k, fill != 0, plan, ws.keys[0], ws.valid[0]);
    TopKey* buffers[2] = {ws.keys[0], ws.keys[1]};
    int64_t* valid[2] = {ws.valid[0], ws.valid[1]};
    const TopKey* selected = run_merge_rounds(plan, buffers, valid, TopKeyBefore(), stream);
    // The last round's single list per image (or the only tile's) and its valid count.
    const int64_t* selected_count = fill != 0 ? nullptr : valid[plan.rounds % 2];
    refine_kernel<scalar_t><<<blocks_for(batch * k * kWarp), kThreads, 0, stream>>>(
        s, selected, selected_count, plan.stride, batch, height, width, k, window,
        static_cast<acc>(1.0 / temperature), static_cast<scalar_t*>(xy),
        static_cast<scalar_t*>(score), is_peak, index);
  });
  return launch_status();
}

extern "C" size_t tusk_detect_keypoints_backward_workspace_bytes(tusk_dtype dtype, int64_t batch,
                                                                 int64_t height, int64_t width) {
  if (!tusk_is_half(dtype) || batch < 0 || height < 0 || width < 0) return 0;
  return static_cast<size_t>(batch * height * width) * sizeof(float);
}

extern "C" cudaError_t tusk_detect_keypoints_backward(
    tusk_dtype dtype, const void* grad_xy, const void* grad_score, const void* scores,
    const int64_t* index, int64_t batch, int64_t height, int64_t width, int64_t k, int64_t window,
    double temperature, int deterministic, void* grad_scores, void* workspace,
    cudaStream_t stream) {
  if (batch < 0 || height < 1 || width < 1 || k < 0 || window < 1 || !(temperature > 0)) {
    return cudaErrorInvalidValue;
  }
  const int64_t total = batch * height * width;
  if (total == 0) return cudaSuccess;
  window = effective_window(window, height, width);
  const bool half = tusk_is_half(dtype);
  void* accumulator = half ? workspace : grad_scores;
  const size_t acc_bytes = static_cast<size_t>(total) * acc_size_of(dtype);
  cudaError_t err = cudaMemsetAsync(accumulator, 0, acc_bytes, stream);
  if (err != cudaSuccess) return err;
  TUSK_DISPATCH_FLOATING(dtype, [&] {
    using acc = acc_t<scalar_t>;
    const acc inv_t = static_cast<acc>(1.0 / temperature);
    const scalar_t* gxy = static_cast<const scalar_t*>(grad_xy);
    const scalar_t* gs = static_cast<const scalar_t*>(grad_score);
    const scalar_t* s = static_cast<const scalar_t*>(scores);
    acc* grad = static_cast<acc*>(accumulator);
    if (k > 0) {
      if (deterministic) {
        backward_ordered_kernel<scalar_t><<<blocks_for(batch * kWarp), kThreads, 0, stream>>>(
            gxy, gs, s, index, batch, height, width, k, window, inv_t, grad);
      } else {
        backward_atomic_kernel<scalar_t><<<blocks_for(batch * k * kWarp), kThreads, 0, stream>>>(
            gxy, gs, s, index, batch, height, width, k, window, inv_t, grad);
      }
    }
    if (half) {
      cast_kernel<scalar_t><<<blocks_for(total), kThreads, 0, stream>>>(
          reinterpret_cast<const float*>(accumulator), static_cast<scalar_t*>(grad_scores), total);
    }
  });
  return launch_status();
}
