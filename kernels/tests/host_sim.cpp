// Host simulation of the CUDA kernels' algorithms, in float64, for tests/test_cuda_host_sim.py.
//
// Each function walks the same decomposition as its kernel (tiles, chunks, merge rounds, warp
// passes, channel groups, split-K blocks) and calls the same shared TUSK_HD helpers
// (kernels/include/tusk/*.h), one simulated thread after another, so the maths, the gradient
// formulas and the index arithmetic are checked against the PyTorch references. Tunables that
// are constants in the kernels (tile sizes, list capacity, channel group, split size) are
// parameters here so small inputs reach the rare paths (many merge rounds, list flushes,
// several channel groups). Floating-point summation order follows a sequential walk, not the
// warp butterflies, so results match the kernels to rounding, not bitwise.
#include <cmath>
#include <cstdint>
#include <vector>

#include "tusk/bilinear.h"
#include "tusk/gaussian.h"
#include "tusk/gmm.h"
#include "tusk/merge.h"
#include "tusk/sliced.h"
#include "tusk/softargmax.h"
#include "tusk/softmax.h"
#include "tusk/sort_plan.h"
#include "tusk/topk.h"

using namespace tusk;

namespace {

template <typename Item, typename Before>
void bitonic_sort(std::vector<Item>& items, Before before) {
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t size = 2; size <= n; size <<= 1)
    for (int64_t stride = size >> 1; stride > 0; stride >>= 1)
      for (int64_t pair = 0; pair < n / 2; ++pair) bitonic_exchange(items.data(), pair, size, stride, before);
}

// Phase-1 lists already in buffers[0] / valid[0]; runs the merge rounds like merge_round_kernel.
template <typename Item, typename Before>
const std::vector<Item>& merge_rounds(const SortPlan& plan, std::vector<Item> buffers[2],
                                      std::vector<int64_t> valid[2], Before before) {
  for (int round = 1; round <= plan.rounds; ++round) {
    const int64_t in_lists = plan_lists(plan, round - 1), in_length = plan_length(plan, round - 1);
    const int64_t out_lists = plan_lists(plan, round), out_length = plan_length(plan, round);
    for (int64_t t = 0; t < plan.segments * out_lists * out_length; ++t) {
      merge_round_step(buffers[(round - 1) % 2].data(), valid[(round - 1) % 2].data(),
                       buffers[round % 2].data(), valid[round % 2].data(), plan.stride, in_lists,
                       in_length, out_lists, out_length, t, before);
    }
  }
  return buffers[plan.rounds % 2];
}

// Phase 1 of one tile: sort the candidates (padded to a power of two) and keep the best.
template <typename Item, typename Before>
void keep_best(std::vector<Item> items, Item sentinel, Before before, const SortPlan& plan,
               int64_t segment, int64_t tile, std::vector<Item>& buffer, std::vector<int64_t>& valid) {
  const int64_t count = static_cast<int64_t>(items.size());
  const int64_t keep = plan_length(plan, 0), kept = std::min(keep, count);
  items.resize(next_pow2(count), sentinel);
  bitonic_sort(items, before);
  for (int64_t i = 0; i < kept; ++i) buffer[segment * plan.stride + tile * keep + i] = items[i];
  valid[segment * plan.tiles + tile] = kept;
}

struct Stats {
  double max, sum, sum_dx, sum_dy;
};

Stats window_stats(const double* s, int64_t centre, int64_t window, int64_t height, int64_t width,
                   double inv_t) {
  Stats st{-INFINITY, 0, 0, 0};
  for (int64_t cell = 0; cell < window * window; ++cell) {
    const WindowCell c = window_cell(centre, cell, window, height, width);
    if (c.inside) st.max = max_propagate_nan(st.max, s[c.flat]);
  }
  for (int64_t cell = 0; cell < window * window; ++cell) {
    const WindowCell c = window_cell(centre, cell, window, height, width);
    if (!c.inside) continue;
    const double a = std::exp((s[c.flat] - st.max) * inv_t);
    st.sum += a;
    st.sum_dx += a * c.dx;
    st.sum_dy += a * c.dy;
  }
  return st;
}

int64_t effective_window(int64_t window, int64_t height, int64_t width) {
  return std::min<int64_t>(window, 2 * std::max(height, width) - 1);
}

}  // namespace

extern "C" {

void tusk_sim_detect_forward(const double* scores, int64_t batch, int64_t height, int64_t width,
                             int64_t k, int64_t nms_size, int64_t window, double temperature,
                             int64_t max_tile, double* xy, double* score, uint8_t* is_peak,
                             int64_t* index) {
  const int64_t pixels = height * width;
  const int64_t radius = std::min<int64_t>(nms_size / 2, std::max(height, width));
  window = effective_window(window, height, width);
  std::vector<double> rowmax(batch * pixels);
  for (int64_t p = 0; p < batch * pixels; ++p) {  // nms_rowmax_kernel
    const int64_t x = p % width, row = p - x;
    double m = scores[p];
    for (int64_t xi = std::max<int64_t>(x - radius, 0); xi <= std::min(x + radius, width - 1); ++xi)
      m = max_propagate_nan(m, scores[row + xi]);
    rowmax[p] = m;
  }
  const SortPlan plan = make_sort_plan(batch, pixels, k, max_tile);
  std::vector<uint8_t> peak(batch * pixels);
  std::vector<int64_t> tile_peaks(batch * plan.tiles, 0);
  for (int64_t p = 0; p < batch * pixels; ++p) {  // peak_kernel
    const int64_t b = p / pixels, q = p % pixels, x = q % width, y = q / width;
    double pooled = rowmax[p];
    for (int64_t yi = std::max<int64_t>(y - radius, 0); yi <= std::min(y + radius, height - 1); ++yi)
      pooled = max_propagate_nan(pooled, rowmax[b * pixels + yi * width + x]);
    peak[p] = scores[p] == pooled;
    tile_peaks[b * plan.tiles + q / plan.tile] += peak[p];
  }
  std::vector<TopKey> buffers[2] = {std::vector<TopKey>(batch * plan.stride, sentinel_topkey()),
                                    std::vector<TopKey>(batch * plan.stride, sentinel_topkey())};
  std::vector<int64_t> valid[2] = {std::vector<int64_t>(batch * plan.tiles, -1),
                                   std::vector<int64_t>(batch * plan.tiles, -1)};
  for (int64_t block = 0; block < batch * plan.tiles; ++block) {  // tile_topk_kernel
    const int64_t b = block / plan.tiles, tile = block % plan.tiles;
    int64_t peaks = 0;
    for (int64_t t = 0; t < plan.tiles; ++t) peaks += tile_peaks[b * plan.tiles + t];
    std::vector<TopKey> keys;
    for (int64_t i = 0; i < plan.tile && tile * plan.tile + i < pixels; ++i) {
      const int64_t p = tile * plan.tile + i;
      if (peak[b * pixels + p] || peaks < k) keys.push_back(make_topkey(scores[b * pixels + p], peak[b * pixels + p], p));
    }
    keep_best(keys, sentinel_topkey(), TopKeyBefore(), plan, b, tile, buffers[0], valid[0]);
  }
  const std::vector<TopKey>& selected = merge_rounds(plan, buffers, valid, TopKeyBefore());
  for (int64_t slot = 0; slot < batch * k; ++slot) {  // refine_kernel
    const int64_t b = slot / k, j = slot % k;
    const TopKey key = selected[b * plan.stride + j];
    const int64_t centre = topkey_index(key);
    const double* s = scores + b * pixels;
    const Stats st = window_stats(s, centre, window, height, width, 1.0 / temperature);
    const double x = static_cast<double>(centre % width) + st.sum_dx / st.sum;
    const double y = static_cast<double>(centre / width) + st.sum_dy / st.sum;
    const BilinearTaps<double> taps = bilinear_taps<double>(x, y, height, width, Padding::Border);
    double v = 0;
    for (int t = 0; t < 4; ++t) v += taps.weight[t] * s[taps.index[t]];
    xy[2 * slot] = x;
    xy[2 * slot + 1] = y;
    score[slot] = v;
    is_peak[slot] = topkey_is_peak(key);
    index[slot] = centre;
  }
}

void tusk_sim_detect_backward(const double* grad_xy, const double* grad_score, const double* scores,
                              const int64_t* index, int64_t batch, int64_t height, int64_t width,
                              int64_t k, int64_t window, double temperature, double* grad) {
  const int64_t pixels = height * width;
  window = effective_window(window, height, width);
  const double inv_t = 1.0 / temperature;
  for (int64_t i = 0; i < batch * pixels; ++i) grad[i] = 0;
  for (int64_t slot = 0; slot < batch * k; ++slot) {  // keypoint_backward, in slot order
    const int64_t b = slot / k, centre = index[slot];
    if (centre < 0 || centre >= pixels) continue;
    const double* s = scores + b * pixels;
    double* g = grad + b * pixels;
    const Stats st = window_stats(s, centre, window, height, width, inv_t);
    const double off_x = st.sum_dx / st.sum, off_y = st.sum_dy / st.sum;
    const double x = static_cast<double>(centre % width) + off_x;
    const double y = static_cast<double>(centre / width) + off_y;
    const BilinearTaps<double> taps = bilinear_taps<double>(x, y, height, width, Padding::Border);
    double dsdx = 0, dsdy = 0;
    for (int t = 0; t < 4; ++t) {
      dsdx += taps.dweight_dx[t] * s[taps.index[t]];
      dsdy += taps.dweight_dy[t] * s[taps.index[t]];
    }
    const double gs = grad_score[slot];
    const double gx = grad_xy[2 * slot] + gs * dsdx, gy = grad_xy[2 * slot + 1] + gs * dsdy;
    for (int t = 0; t < 4; ++t) g[taps.index[t]] += gs * taps.weight[t];
    for (int64_t cell = 0; cell < window * window; ++cell) {
      const WindowCell c = window_cell(centre, cell, window, height, width);
      if (!c.inside) continue;
      const double w = std::exp((s[c.flat] - st.max) * inv_t) / st.sum;
      g[c.flat] += softargmax_cell_grad(w, c, off_x, off_y, gx, gy, inv_t);
    }
  }
}

// splat forward: prep + (reduce_sum ? tile_sum_kernel : per_keypoint_kernel).
void tusk_sim_splat_forward(const double* xy, const double* descriptors, const double* weights,
                            int64_t batch, int64_t k, int64_t channels, int64_t height, int64_t width,
                            double variance, int64_t radius, int normalize, int reduce_sum,
                            int64_t tile_w, int64_t tile_h, int64_t list_cap, double* out) {
  const int64_t plane = height * width;
  std::vector<SplatKeypoint<double>> params(batch * k);
  for (int64_t bk = 0; bk < batch * k; ++bk) {
    params[bk] = splat_keypoint<double>(xy[2 * bk], xy[2 * bk + 1], weights ? weights[bk] : 1.0, height,
                                        width, variance, radius, normalize != 0);
  }
  if (!reduce_sum) {
    for (int64_t t = 0; t < batch * k * plane; ++t) {
      const int64_t bk = t / plane, p = t % plane, px = p % width, py = p / width;
      const SplatKeypoint<double>& kp = params[bk];
      const double g = splat_covers(kp, px, py) ? kp.weight * kp.norm * splat_gauss(kp, px, py) : 0.0;
      for (int64_t c = 0; c < channels; ++c) out[(bk * channels + c) * plane + p] = g * descriptors[bk * channels + c];
    }
    return;
  }
  const int64_t chunk_size = tile_w * tile_h;  // one keypoint per thread of the tile block
  const int64_t tiles_x = ceil_div(width, tile_w), tiles_y = ceil_div(height, tile_h);
  for (int64_t block = 0; block < batch * tiles_y * tiles_x; ++block) {
    const int64_t b = block / (tiles_y * tiles_x);
    const int64_t tx0 = (block % tiles_x) * tile_w, ty0 = ((block / tiles_x) % tiles_y) * tile_h;
    std::vector<int64_t> listed;
    bool written = false;
    auto flush = [&]() {  // flush_list for every thread (pixel) of the tile
      for (int64_t t = 0; t < chunk_size; ++t) {
        const int64_t px = tx0 + t % tile_w, py = ty0 + t / tile_w;
        if (px >= width || py >= height) continue;
        for (int64_t c = 0; c < channels; ++c) {
          double v = 0;
          for (int64_t j : listed) {
            const SplatKeypoint<double>& q = params[b * k + j];
            if (!splat_covers(q, px, py)) continue;
            v += q.weight * q.norm * splat_gauss(q, px, py) * descriptors[(b * k + j) * channels + c];
          }
          double& o = out[(b * channels + c) * plane + py * width + px];
          o = written ? o + v : v;
        }
      }
      written = true;
    };
    for (int64_t chunk = 0; chunk < k; chunk += chunk_size) {
      std::vector<int64_t> hits;
      for (int64_t t = 0; t < chunk_size; ++t) {
        const int64_t j = chunk + t;
        if (j < k && splat_meets_tile(params[b * k + j], tx0, ty0, tile_w, tile_h)) hits.push_back(j);
      }
      if (static_cast<int64_t>(listed.size() + hits.size()) > list_cap) {
        flush();
        listed.clear();
      }
      listed.insert(listed.end(), hits.begin(), hits.end());
    }
    if (!listed.empty() || !written) flush();
  }
}

// splat backward: backward_kernel's passes A and B, one keypoint (warp) at a time.
void tusk_sim_splat_backward(const double* grad, const double* xy, const double* descriptors,
                             const double* weights, int64_t batch, int64_t k, int64_t channels,
                             int64_t height, int64_t width, double variance, int64_t radius,
                             int normalize, int reduce_sum, double* grad_xy, double* grad_descriptors,
                             double* grad_weights) {
  const int64_t plane = height * width;
  for (int64_t bk = 0; bk < batch * k; ++bk) {
    const int64_t b = bk / k;
    const SplatKeypoint<double> kp = splat_keypoint<double>(
        xy[2 * bk], xy[2 * bk + 1], weights ? weights[bk] : 1.0, height, width, variance, radius, normalize != 0);
    const int64_t wx = kp.x_hi - kp.x_lo + 1;
    const int64_t cells = splat_window_empty(kp) ? 0 : wx * (kp.y_hi - kp.y_lo + 1);
    const double* g = grad + (reduce_sum ? b * channels * plane : bk * channels * plane);
    const double* d = descriptors + bk * channels;
    double mx, my;
    splat_centre(kp, normalize != 0, &mx, &my);
    SplatGradSums<double> sums;
    for (int64_t cell = 0; cell < cells; ++cell) {
      const int64_t px = kp.x_lo + cell % wx, py = kp.y_lo + cell / wx;
      const double gn = kp.norm * splat_gauss(kp, px, py);
      double s = 0;
      for (int64_t c = 0; c < channels; ++c) s += d[c] * g[c * plane + py * width + px];
      const double ox = px - kp.x - mx, oy = py - kp.y - my;
      sums.a += gn * s;
      sums.sgx += gn * s * ox;
      sums.sgy += gn * s * oy;
    }
    double gx, gy, gw;
    splat_keypoint_grads(sums, kp.weight, variance, &gx, &gy, &gw);
    grad_xy[2 * bk] = gx;
    grad_xy[2 * bk + 1] = gy;
    if (grad_weights) grad_weights[bk] = gw;
    for (int64_t c = 0; c < channels; ++c) {
      double total = 0;
      for (int64_t cell = 0; cell < cells; ++cell) {
        const int64_t px = kp.x_lo + cell % wx, py = kp.y_lo + cell / wx;
        total += kp.norm * splat_gauss(kp, px, py) * g[c * plane + py * width + px];
      }
      grad_descriptors[bk * channels + c] = kp.weight * total;
    }
  }
}

// alpha_composite forward/backward, one pixel (thread) at a time, `group` channels per pass.
void tusk_sim_alpha_forward(const double* rgb, const double* logits, int64_t batch, int64_t k,
                            int64_t channels, int64_t pixels, int64_t group, double* image, double* alpha) {
  for (int64_t t = 0; t < batch * pixels; ++t) {
    const int64_t b = t / pixels, p = t % pixels;
    const double* l = logits + b * k * pixels + p;
    const double* r = rgb + b * k * channels * pixels + p;
    OnlineSoftmax<double> sm;
    for (int64_t c0 = 0; c0 < channels; c0 += group) {
      std::vector<double> v(group, 0.0);
      if (c0 == 0) {
        sm.start(l[0]);
        for (int64_t cc = 0; cc < group && cc < channels; ++cc) v[cc] = r[cc * pixels];
        for (int64_t j = 1; j < k; ++j) {
          double w;
          const double rescale = sm.add(l[j * pixels], &w);
          for (int64_t cc = 0; cc < group && cc < channels; ++cc)
            v[cc] = v[cc] * rescale + w * r[(j * channels + cc) * pixels];
        }
      } else {
        for (int64_t j = 0; j < k; ++j) {
          const double w = sm.weight(l[j * pixels]);
          for (int64_t cc = 0; c0 + cc < channels && cc < group; ++cc) v[cc] += w * r[(j * channels + c0 + cc) * pixels];
        }
      }
      for (int64_t cc = 0; c0 + cc < channels && cc < group; ++cc) image[(b * channels + c0 + cc) * pixels + p] = v[cc] / sm.sum;
    }
    if (channels == 0) {
      sm.start(l[0]);
      for (int64_t j = 1; j < k; ++j) {
        double w;
        sm.add(l[j * pixels], &w);
      }
    }
    for (int64_t j = 0; j < k; ++j) alpha[(b * k + j) * pixels + p] = sm.weight(l[j * pixels]) / sm.sum;
  }
}

void tusk_sim_alpha_backward(const double* grad_image, const double* grad_alpha, const double* rgb,
                             const double* logits, int64_t batch, int64_t k, int64_t channels,
                             int64_t pixels, int64_t group, double* grad_rgb, double* grad_logits) {
  for (int64_t t = 0; t < batch * pixels; ++t) {
    const int64_t b = t / pixels, p = t % pixels;
    const double* l = logits + b * k * pixels + p;
    const double* r = rgb + b * k * channels * pixels + p;
    double* st = grad_logits + b * k * pixels + p;  // the stash lives in grad_logits (float64)
    OnlineSoftmax<double> sm;
    sm.start(l[0]);
    for (int64_t j = 1; j < k; ++j) {
      double w;
      sm.add(l[j * pixels], &w);
    }
    const double inv_sum = 1.0 / sm.sum;
    double dot = 0;
    const int64_t groups = channels > 0 ? ceil_div(channels, group) : 1;
    for (int64_t gi_index = 0; gi_index < groups; ++gi_index) {
      const int64_t c0 = gi_index * group;
      for (int64_t j = 0; j < k; ++j) {
        const double a = sm.weight(l[j * pixels]) * inv_sum;
        double tj = 0;
        for (int64_t cc = 0; cc < group && c0 + cc < channels; ++cc) {
          const double gi = grad_image[(b * channels + c0 + cc) * pixels + p];
          tj += gi * r[(j * channels + c0 + cc) * pixels];
          grad_rgb[((b * k + j) * channels + c0 + cc) * pixels + p] = a * gi;
        }
        tj += gi_index == 0 ? grad_alpha[(b * k + j) * pixels + p] : st[j * pixels];
        st[j * pixels] = tj;
        if (gi_index + 1 == groups) dot += a * tj;
      }
    }
    for (int64_t j = 0; j < k; ++j) {
      const double a = sm.weight(l[j * pixels]) * inv_sum;
      st[j * pixels] = a * (st[j * pixels] - dot);
    }
  }
}

// sliced_wasserstein forward: the block path (points <= block_max) or the SortPlan path.
void tusk_sim_sliced_forward(const double* x, const double* y, const double* theta, int64_t groups,
                             int64_t points, int64_t channels, int64_t count, int64_t block_max,
                             int64_t max_tile, double* distance, double* x_residual, double* y_residual) {
  using Item = SortItem<double>;
  auto project = [&](const double* point, int64_t p) {
    double v = 0;
    for (int64_t c = 0; c < channels; ++c) v += point[c] * theta[c * count + p];
    return v;
  };
  std::vector<double> partial(groups * count, 0.0);
  auto residuals = [&](const Item* xs, const Item* ys, int64_t g, int64_t p) {
    double local = 0;
    for (int64_t r = 0; r < points; ++r) {
      const double d = xs[r].value - ys[r].value;
      const double res = sliced_residual(xs[r].value, ys[r].value, points, count);
      x_residual[(g * points + xs[r].index) * count + p] = res;
      y_residual[(g * points + ys[r].index) * count + p] = -res;
      local += d * d;
    }
    partial[g * count + p] = local;
  };
  if (points <= block_max) {
    const int64_t padded = next_pow2(points);
    for (int64_t block = 0; block < groups * count; ++block) {
      const int64_t g = block / count, p = block % count;
      std::vector<Item> xs(padded, sort_item_sentinel<double>()), ys(padded, sort_item_sentinel<double>());
      for (int64_t i = 0; i < points; ++i) {
        xs[i] = {project(x + (g * points + i) * channels, p), i};
        ys[i] = {project(y + (g * points + i) * channels, p), i};
      }
      bitonic_sort(xs, SortItemBefore<double>());
      bitonic_sort(ys, SortItemBefore<double>());
      residuals(xs.data(), ys.data(), g, p);
    }
  } else {
    const SortPlan plan = make_sort_plan(groups * count * 2, points, points, max_tile);
    std::vector<Item> buffers[2] = {std::vector<Item>(plan.segments * plan.stride, sort_item_sentinel<double>()),
                                    std::vector<Item>(plan.segments * plan.stride, sort_item_sentinel<double>())};
    std::vector<int64_t> valid[2] = {std::vector<int64_t>(plan.segments * plan.tiles, -1),
                                     std::vector<int64_t>(plan.segments * plan.tiles, -1)};
    for (int64_t block = 0; block < plan.segments * plan.tiles; ++block) {  // tile_sort_kernel
      const int64_t segment = block / plan.tiles, tile = block % plan.tiles;
      const int64_t side = segment % 2, p = (segment / 2) % count, g = segment / (2 * count);
      const double* set = (side == 0 ? x : y) + g * points * channels;
      std::vector<Item> items;
      for (int64_t t = 0; t < plan.tile && tile * plan.tile + t < points; ++t) {
        const int64_t i = tile * plan.tile + t;
        items.push_back({project(set + i * channels, p), i});
      }
      keep_best(items, sort_item_sentinel<double>(), SortItemBefore<double>(), plan, segment, tile, buffers[0], valid[0]);
    }
    const std::vector<Item>& sorted = merge_rounds(plan, buffers, valid, SortItemBefore<double>());
    for (int64_t block = 0; block < groups * count; ++block) {
      residuals(sorted.data() + 2 * block * plan.stride, sorted.data() + (2 * block + 1) * plan.stride,
                block / count, block % count);
    }
  }
  for (int64_t g = 0; g < groups; ++g) {
    double total = 0;
    for (int64_t p = 0; p < count; ++p) total += partial[g * count + p];
    distance[g] = total / (static_cast<double>(points) * static_cast<double>(count));
  }
}

void tusk_sim_sliced_backward(const double* grad, const double* x, const double* y, const double* theta,
                              const double* x_residual, const double* y_residual, int64_t groups,
                              int64_t points, int64_t channels, int64_t count, int64_t rows_per_split,
                              double* grad_x, double* grad_y, double* grad_theta) {
  for (int64_t t = 0; t < groups * points * channels; ++t) {  // grad_points_kernel
    const int64_t c = t % channels, row = t / channels, g = row / points;
    double vx = 0, vy = 0;
    for (int64_t p = 0; p < count; ++p) {
      vx += x_residual[row * count + p] * theta[c * count + p];
      vy += y_residual[row * count + p] * theta[c * count + p];
    }
    grad_x[t] = grad[g] * vx;
    grad_y[t] = grad[g] * vy;
  }
  const int64_t rows = groups * points, splits = ceil_div(rows, rows_per_split);
  std::vector<double> partial(splits * channels * count);
  for (int64_t t = 0; t < splits * channels * count; ++t) {  // grad_theta_partial_kernel
    const int64_t p = t % count, c = (t / count) % channels, split = t / (count * channels);
    const int64_t lo = split * rows_per_split, hi = std::min(rows, lo + rows_per_split);
    double v = 0;
    for (int64_t n = lo; n < hi; ++n) {
      v += grad[n / points] * (x_residual[n * count + p] * x[n * channels + c] +
                               y_residual[n * count + p] * y[n * channels + c]);
    }
    partial[t] = v;
  }
  for (int64_t t = 0; t < channels * count; ++t) {  // grad_theta_finish_kernel
    double v = 0;
    for (int64_t s = 0; s < splits; ++s) v += partial[s * channels * count + t];
    grad_theta[t] = v;
  }
}

void tusk_sim_gmm_forward(const double* prototypes, const double* features, const double* noise,
                          int64_t count, int64_t points, int64_t channels, double smoothing,
                          double* samples, int64_t* assignment) {
  std::vector<int64_t> nearest(points);
  std::vector<double> deviation(points);
  for (int64_t i = 0; i < points; ++i) {  // nearest_kernel (sequential argmin: first minimum)
    double best = INFINITY;
    int64_t best_m = 0;
    for (int64_t m = 0; m < count; ++m) {
      double d = 0;
      for (int64_t c = 0; c < channels; ++c) {
        const double diff = features[i * channels + c] - prototypes[m * channels + c];
        d += diff * diff;
      }
      if (d < best) {
        best = d;
        best_m = m;
      }
    }
    double dev = 0;
    for (int64_t c = 0; c < channels; ++c) {
      const double diff = features[i * channels + c] - prototypes[best_m * channels + c];
      dev += diff * diff;
    }
    nearest[i] = best_m;
    deviation[i] = dev / channels;
  }
  std::vector<double> counts(count, 0.0), spread(count, 0.0), fraction(count), base(count);
  for (int64_t i = 0; i < points; ++i) {  // stats_kernel
    counts[nearest[i]] += 1;
    spread[nearest[i]] += deviation[i];
  }
  for (int64_t m = 0; m < count; ++m) spread[m] = counts[m] > 0 ? spread[m] / counts[m] : 1.0;
  const double n = static_cast<double>(points);  // counts_kernel
  double mean = 0, variance = 0, total = 0, base_sum = 0;
  for (double s : spread) mean += s;
  mean /= count;
  for (double s : spread) variance += (s - mean) * (s - mean);
  variance /= count;
  for (int64_t m = 0; m < count; ++m) total += counts[m] + n * (smoothing + variance);
  for (int64_t m = 0; m < count; ++m) {
    const double quota = (counts[m] + n * (smoothing + variance)) / total * n;
    base[m] = std::floor(quota);
    fraction[m] = quota - base[m];
    base_sum += base[m];
  }
  const double remainder = n - base_sum;
  std::vector<int64_t> cumulative(count);
  int64_t running = 0;
  for (int64_t m = 0; m < count; ++m) {
    running += static_cast<int64_t>(base[m]) + (remainder_rank(fraction.data(), count, m) < remainder ? 1 : 0);
    cumulative[m] = running;
  }
  for (int64_t i = 0; i < points; ++i) {  // samples_kernel
    const int64_t m = prototype_of_sample(cumulative.data(), count, i);
    double sq = 0;
    for (int64_t c = 0; c < channels; ++c) {
      const double v = prototypes[m * channels + c] + noise[i * channels + c];
      sq += v * v;
    }
    const double denom = std::max(std::sqrt(sq), 1e-12);
    for (int64_t c = 0; c < channels; ++c) samples[i * channels + c] = (prototypes[m * channels + c] + noise[i * channels + c]) / denom;
    assignment[i] = m;
  }
}

void tusk_sim_gmm_backward(const double* grad, const double* prototypes, const double* noise,
                           const int64_t* assignment, int64_t count, int64_t points, int64_t channels,
                           double* grad_prototypes) {
  std::vector<double> grad_v(points * channels, 0.0);
  for (int64_t i = 0; i < points; ++i) {  // sample_grad_kernel
    const int64_t m = assignment[i];
    if (m < 0 || m >= count) continue;
    double sq = 0, vg = 0;
    for (int64_t c = 0; c < channels; ++c) {
      const double v = prototypes[m * channels + c] + noise[i * channels + c];
      sq += v * v;
      vg += v * grad[i * channels + c];
    }
    const double norm = std::sqrt(sq);
    for (int64_t c = 0; c < channels; ++c) {
      grad_v[i * channels + c] = normalize_grad(prototypes[m * channels + c] + noise[i * channels + c],
                                                grad[i * channels + c], norm, vg, 1e-12);
    }
  }
  for (int64_t t = 0; t < count * channels; ++t) grad_prototypes[t] = 0;  // prototype_sum_kernel
  for (int64_t i = 0; i < points; ++i) {
    const int64_t m = assignment[i];
    if (m < 0 || m >= count) continue;
    for (int64_t c = 0; c < channels; ++c) grad_prototypes[m * channels + c] += grad_v[i * channels + c];
  }
}

}  // extern "C"
