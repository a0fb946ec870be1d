// detect_keypoints on the CPU: NMS + top-K + local soft-argmax + bilinear score, and backward.
//
// Forward:
//  1. NMS: separable van Herk max filter (peak_filter.h); peaks collected as (score, flat index)
//     in index order, then filtered by the peak rule's options (PeakRule: strict maxima, border,
//     per-image valid size), which only drop peaks.
//  2. Top-K by partial selection (nth_element + sort of the K winners) in the reference's order
//     (score descending, ties to the lower flat index); with fewer than K peaks the rest are the
//     best non-peaks in the same order (NaN first, as torch.sort), or pixel 0 without `fill`.
//  3. Soft-argmax in each of the K windows (in row order), bilinear (border) score at the
//     refined xy.
// With enough images one task per image does all three while the image is in cache; with few,
// large images (B < 2 * threads) NMS runs per (image, row strip) first. Nothing of size H x W is
// allocated (except the non-peak candidates of an image with fewer than K peaks): the cost is
// the filter's few comparisons per pixel plus O(K window^2).
//
// Backward: one task per (image, row strip) owns those rows of grad_scores, zeroes them and
// sweeps the keypoints that reach them in row order, adding the soft-argmax term
// (d xy / d s times grad_xy plus grad_score times the bilinear spatial derivative) and the
// bilinear taps of the score. Every gradient element has one writer and a summation order that
// does not depend on the strips, so the result is deterministic and the same for any thread
// count.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>
#include <vector>

#include "common.h"
#include "detect_keypoints/peak_filter.h"
#include "detect_keypoints/soft_argmax.h"
#include "tusk/peak_rule.h"

namespace tusk {
namespace {

// Runs body(scratch, item) for item in [0, count) on the intra-op threads, handing out items
// one at a time from a shared counter instead of in fixed contiguous blocks: on a shared
// machine one of the two threads is often descheduled for milliseconds, and the other then
// takes over its remaining images instead of waiting at the end of the region. Each thread
// builds one `Scratch` (make_scratch()) for all its items. Results do not depend on which
// thread runs an item: every item writes its own outputs.
template <typename MakeScratch, typename Body>
void parallel_items(int64_t count, MakeScratch make_scratch, Body body) {
  if (count <= 0) return;
  std::atomic<int64_t> next{0};
  const int64_t workers = std::min<int64_t>(count, at::get_num_threads());
  at::parallel_for(0, workers, 1, [&](int64_t begin, int64_t end) {
    auto scratch = make_scratch();
    for (int64_t worker = begin; worker < end; ++worker) {
      for (int64_t item = next.fetch_add(1); item < count; item = next.fetch_add(1)) {
        body(scratch, item);
      }
    }
  });
}

// Strips per image so that batch * strips >= 2 * threads when the map is tall enough
// (each strip at least `min_rows` rows).
int64_t strips_per_image(int64_t batch, int64_t height, int64_t min_rows) {
  const int64_t threads = at::get_num_threads();
  const int64_t wanted = (2 * threads + batch - 1) / batch;
  const int64_t most = std::max<int64_t>(1, height / std::max<int64_t>(1, min_rows));
  return std::clamp<int64_t>(wanted, 1, most);
}

// The reference's order: higher score first, NaN before everything (torch.sort, descending),
// equal scores by lower flat index. A functor, so that std::sort inlines it (as a function
// pointer it was ~10% of the 480 x 640, K = 2048 forward).
struct RanksBefore {
  template <typename T>
  bool operator()(const Candidate<T>& a, const Candidate<T>& b) const {
    if (a.score > b.score) return true;
    if (a.score < b.score) return false;
    const bool a_nan = a.score != a.score, b_nan = b.score != b.score;
    if (a_nan != b_nan) return a_nan;
    return a.index < b.index;
  }
};

// Moves the best `count` candidates (RanksBefore order) to the front, sorted.
template <typename T>
void select_best(std::vector<Candidate<T>>& pool, int64_t count) {
  if (count < static_cast<int64_t>(pool.size())) {
    std::nth_element(pool.begin(), pool.begin() + count, pool.end(), RanksBefore{});
  }
  std::sort(pool.begin(), pool.begin() + std::min<int64_t>(count, pool.size()), RanksBefore{});
}

// Counting sort of K slots by the row of their pixel (stable: slot order within a row).
// Visiting the K windows in row order instead of score order turns scattered reads of a map
// larger than L2 into a sweep, and lets a row strip find its keypoints by row.
// `row_start[y] .. row_start[y + 1]` are the positions in `order` of the slots on row y.
inline void sort_by_row(const int64_t* index, int64_t k, int64_t width, int64_t height,
                        std::vector<int64_t>& row_start, std::vector<int64_t>& order) {
  row_start.assign(height + 1, 0);
  for (int64_t s = 0; s < k; ++s) ++row_start[index[s] / width + 1];
  for (int64_t y = 0; y < height; ++y) row_start[y + 1] += row_start[y];
  order.resize(k);
  std::vector<int64_t> fill(row_start.begin(), row_start.end() - 1);
  for (int64_t s = 0; s < k; ++s) order[fill[index[s] / width]++] = s;
}

// Prefetches whole rows of a map a few rows ahead of a sweep that visits keypoint windows in
// row order. The windows are scattered along each row and the map is larger than L2, so their
// reads miss; streaming the rows ahead turns that into sequential traffic the hardware handles
// well. 8 x 480 x 640, K = 2048, window 5, 1 thread, user CPU time on a shared machine
// (noisy): backward 7.1-8.6 ms prefetching each window 6 keypoints ahead, 5.9-7.1 ms streaming
// rows, 7.1-9.0 ms without either; the forward refinement (3.6-4.5 ms) is the same with both.
template <typename T>
class RowPrefetcher {
 public:
  RowPrefetcher(const T* image, int64_t height, int64_t width, int64_t first_row)
      : image_(image), height_(height), width_(width), next_(std::max<int64_t>(0, first_row)) {}

  // Makes sure rows up to `row` + kRowsAhead have been prefetched.
  void reach(int64_t row) {
#if defined(__GNUC__) || defined(__clang__)
    const int64_t until = std::min(row + kRowsAhead, height_ - 1);
    for (; next_ <= until; ++next_) {
      const char* begin = reinterpret_cast<const char*>(image_ + next_ * width_);
      const char* end = reinterpret_cast<const char*>(image_ + (next_ + 1) * width_);
      for (const char* line = begin; line < end; line += 64) __builtin_prefetch(line);
    }
#else
    (void)row;
#endif
  }

 private:
  static constexpr int64_t kRowsAhead = 3;
  const T* image_;
  int64_t height_, width_, next_;
};

struct Geometry {
  int64_t batch, height, width, k;
  int64_t nms_radius, window_radius;  // clamped to the image (larger radii change nothing)
};

// The options of the peak rule (reference.peak_mask) beyond "equals its window's maximum":
// `strict` keeps only pixels greater than every other pixel of their clipped NMS window; a peak
// must lie in the image's PeakRegion (tusk/peak_rule.h: border, valid size image_size [B, 2]
// int64, or null for the map's own size).
struct PeakRule {
  bool strict = false;
  int64_t border = 0;
  const int64_t* image_size = nullptr;
  bool fill = true;  // slots past the peaks: the best non-peaks (true) or pixel 0 (false)

  bool filters() const { return strict || border > 0 || image_size != nullptr; }
};

// Drops from `peaks` (NMS peaks of image b, index order) those the rule excludes; the
// order of the rest is kept. A strict check only looks for another pixel equal to the peak's
// value in its window (a peak is the window's maximum and not NaN): a few reads per peak, and
// ~1 in 25 pixels is a peak of a 5 x 5 NMS on a detector map.
template <typename T>
void apply_peak_rule(const T* image, int64_t b, const Geometry& g, const PeakRule& rule,
                     std::vector<Candidate<T>>& peaks) {
  if (!rule.filters()) return;
  const int64_t H = g.height, W = g.width, r = g.nms_radius;
  const PeakRegion region = peak_region(rule.border, rule.image_size, b, H, W);
  auto keep = [&](const Candidate<T>& c) {
    const int64_t x = c.index % W, y = c.index / W;
    if (!region.contains(x, y)) return false;
    if (!rule.strict) return true;
    const int64_t wx0 = std::max<int64_t>(x - r, 0), wx1 = std::min(x + r, W - 1);
    const int64_t wy0 = std::max<int64_t>(y - r, 0), wy1 = std::min(y + r, H - 1);
    for (int64_t wy = wy0; wy <= wy1; ++wy) {
      const T* row = image + wy * W;
      for (int64_t wx = wx0; wx <= wx1; ++wx) {
        if (row[wx] == c.score && (wx != x || wy != y)) return false;  // a tie: not strict
      }
    }
    return true;
  };
  auto out = peaks.begin();
  for (auto it = out; it != peaks.end(); ++it) {
    if (keep(*it)) *out++ = *it;
  }
  peaks.erase(out, peaks.end());
}

Geometry geometry(const at::Tensor& scores, int64_t k, int64_t nms_size, int64_t window) {
  const int64_t H = scores.size(1), W = scores.size(2), extent = std::max(H, W);
  return {scores.size(0), H, W, k, std::min(nms_size / 2, extent), std::min(window / 2, extent)};
}

// Stage 2 for one image: fills index/is_peak for the K slots from the image's peaks
// (`peaks`, in flat-index order; reordered here). Returns how many slots hold peaks. Without
// `fill` the slots past the peaks hold pixel 0 instead of the best non-peaks.
template <typename T>
int64_t select_slots(const T* image, int64_t hw, int64_t k, bool fill, std::vector<Candidate<T>>& peaks,
                     int64_t* index, bool* is_peak) {
  const int64_t num_peaks = static_cast<int64_t>(peaks.size());
  if (num_peaks >= k) {
    select_best(peaks, k);
    for (int64_t s = 0; s < k; ++s) {
      index[s] = peaks[s].index;
      is_peak[s] = true;
    }
    return k;
  }
  if (!fill) {
    select_best(peaks, num_peaks);
    for (int64_t s = 0; s < num_peaks; ++s) {
      index[s] = peaks[s].index;
      is_peak[s] = true;
    }
    std::fill(index + num_peaks, index + k, int64_t{0});
    std::fill(is_peak + num_peaks, is_peak + k, false);
    return num_peaks;
  }
  // Fewer peaks than slots: every peak, then the best non-peaks (peaks are index-sorted here).
  const int64_t fillers = k - num_peaks;
  std::vector<Candidate<T>> others;
  int64_t next = 0;
  if (fillers * 16 < hw) {
    // A few fill slots (e.g. a cap set above the peak count): keep the best `fillers` non-peaks in
    // a heap whose top is the worst kept, so most pixels cost one comparison, instead of copying
    // and partitioning all of them (two 480 x 640 maps with ~2900 peaks each, K = 4096, one
    // thread: the call went from 7.9 to 5.0 ms).
    // Pixels come in index order, so a tie with the worst kept loses, as the order requires.
    others.reserve(fillers);
    const RanksBefore before;
    for (int64_t p = 0; p < hw; ++p) {
      if (next < num_peaks && peaks[next].index == p) {
        ++next;
        continue;
      }
      const Candidate<T> c{image[p], p};
      if (static_cast<int64_t>(others.size()) < fillers) {
        others.push_back(c);
        std::push_heap(others.begin(), others.end(), before);
      } else if (before(c, others.front())) {
        std::pop_heap(others.begin(), others.end(), before);
        others.back() = c;
        std::push_heap(others.begin(), others.end(), before);
      }
    }
    std::sort_heap(others.begin(), others.end(), before);
  } else {
    others.reserve(hw - num_peaks);
    for (int64_t p = 0; p < hw; ++p) {
      if (next < num_peaks && peaks[next].index == p) {
        ++next;
      } else {
        others.push_back({image[p], p});
      }
    }
    select_best(others, fillers);
  }
  select_best(peaks, num_peaks);
  for (int64_t s = 0; s < num_peaks; ++s) {
    index[s] = peaks[s].index;
    is_peak[s] = true;
  }
  for (int64_t s = num_peaks; s < k; ++s) {
    index[s] = others[s - num_peaks].index;
    is_peak[s] = false;
  }
  return num_peaks;
}

template <typename scalar_t>
void forward_kernel(const at::Tensor& scores, const Geometry& g, const PeakRule& rule,
                    double temperature, at::Tensor& xy, at::Tensor& score, at::Tensor& is_peak, at::Tensor& index) {
  using acc = acc_t<scalar_t>;
  const int64_t B = g.batch, H = g.height, W = g.width, K = g.k, HW = H * W;
  const scalar_t* s = scores.data_ptr<scalar_t>();
  scalar_t* out_xy = xy.data_ptr<scalar_t>();
  scalar_t* out_score = score.data_ptr<scalar_t>();
  bool* out_peak = is_peak.data_ptr<bool>();
  int64_t* out_index = index.data_ptr<int64_t>();

  const acc inv_temperature = static_cast<acc>(1.0 / temperature);
  struct Scratch {  // per thread
    PeakFinder<scalar_t> finder;
    std::vector<Candidate<scalar_t>> pool;
    std::vector<int64_t> row_start, order;
    SoftArgmax<acc> sa;
  };
  auto make_scratch = [&] { return Scratch{PeakFinder<scalar_t>(H, W, g.nms_radius), {}, {}, {}, {}}; };

  // Selection and refinement of image b from its peaks (index order; reordered here).
  auto finish_image = [&](int64_t b, std::vector<Candidate<scalar_t>>& pool, Scratch& t) {
    const scalar_t* image = s + b * HW;
    int64_t* slot_index = out_index + b * K;
    const int64_t filled = select_slots(image, HW, K, rule.fill, pool, slot_index, out_peak + b * K);
    // Without fill the slots past the peaks all hold pixel 0: refine it once (below), not per slot.
    const int64_t refined = rule.fill ? K : std::min(K, filled + 1);
    sort_by_row(slot_index, refined, W, H, t.row_start, t.order);
    RowPrefetcher<scalar_t> prefetch(image, H, W, 0);
    for (int64_t pos = 0; pos < refined; ++pos) {
      const int64_t slot = t.order[pos], p = slot_index[slot], px = p % W, py = p / W;
      prefetch.reach(py + g.window_radius);
      const ClippedWindow win(px, py, g.window_radius, H, W);
      t.sa.compute(image, W, win, px, py, inv_temperature);
      const scalar_t x = static_cast<scalar_t>(static_cast<acc>(px) + t.sa.offset_x);
      const scalar_t y = static_cast<scalar_t>(static_cast<acc>(py) + t.sa.offset_y);
      const auto taps = bilinear_taps<acc>(x, y, H, W, Padding::Border);
      acc value = 0;
      for (int i = 0; i < 4; ++i) value += taps.weight[i] * static_cast<acc>(image[taps.index[i]]);
      const int64_t bk = b * K + slot;
      out_xy[2 * bk] = x;
      out_xy[2 * bk + 1] = y;
      out_score[bk] = static_cast<scalar_t>(value);
    }
    for (int64_t slot = refined; slot < K; ++slot) {  // copies of slot `filled` (pixel 0)
      const int64_t from = b * K + filled, to = b * K + slot;
      out_xy[2 * to] = out_xy[2 * from];
      out_xy[2 * to + 1] = out_xy[2 * from + 1];
      out_score[to] = out_score[from];
    }
  };

  // NMS in strips of >= 32 rows (and >= 4 radii, so that the 2-radius halo each strip
  // re-filters stays small), only as many as needed to give every thread work.
  const int64_t strips = strips_per_image(B, H, std::max<int64_t>(32, 4 * g.nms_radius));
  if (strips == 1) {
    // Enough images: one task per image does NMS, selection and refinement while the image is
    // still in cache.
    parallel_items(B, make_scratch, [&](Scratch& t, int64_t b) {
      t.pool.clear();
      t.finder.find(s + b * HW, 0, H, t.pool);
      apply_peak_rule(s + b * HW, b, g, rule, t.pool);
      finish_image(b, t.pool, t);
    });
    return;
  }
  // Few, large images: NMS per (image, strip), then selection and refinement per image.
  const int64_t strip_rows = (H + strips - 1) / strips;
  std::vector<std::vector<Candidate<scalar_t>>> peaks(B * strips);
  parallel_items(B * strips, make_scratch, [&](Scratch& t, int64_t unit) {
    const int64_t b = unit / strips, y0 = (unit % strips) * strip_rows;
    const int64_t y1 = std::min(H, y0 + strip_rows);
    if (y0 < y1) {
      t.finder.find(s + b * HW, y0, y1, peaks[unit]);
      apply_peak_rule(s + b * HW, b, g, rule, peaks[unit]);
    }
  });
  parallel_items(B, make_scratch, [&](Scratch& t, int64_t b) {
    std::vector<Candidate<scalar_t>>& pool = peaks[b * strips];
    for (int64_t strip = 1; strip < strips; ++strip) {
      auto& more = peaks[b * strips + strip];
      pool.insert(pool.end(), more.begin(), more.end());
    }
    finish_image(b, pool, t);
  });
}

template <typename scalar_t>
void backward_kernel(const at::Tensor& grad_xy, const at::Tensor& grad_score,
                     const at::Tensor& scores, const at::Tensor& xy, const at::Tensor& index,
                     const Geometry& g, double temperature, at::Tensor& grad_scores) {
  using acc = acc_t<scalar_t>;
  const int64_t B = g.batch, H = g.height, W = g.width, K = g.k, HW = H * W;
  const int64_t radius = g.window_radius;
  const scalar_t* s = scores.data_ptr<scalar_t>();
  const scalar_t* gxy = grad_xy.data_ptr<scalar_t>();
  const scalar_t* gs = grad_score.data_ptr<scalar_t>();
  const scalar_t* p_xy = xy.data_ptr<scalar_t>();
  const int64_t* idx = index.data_ptr<int64_t>();
  scalar_t* out = grad_scores.data_ptr<scalar_t>();
  const acc inv_temperature = static_cast<acc>(1.0 / temperature);

  // One task per (image, row strip) owns those rows of grad_scores. It sweeps, in row order
  // (sort_by_row; each strip sorts its image's slots itself, so there is one parallel region),
  // the keypoints whose reach [py - r, py + r + 1] (window rows plus the row below, which the
  // bilinear taps of an xy inside the window can touch) meets the strip: recompute the window's
  // soft-argmax and the score's spatial derivative, add d xy / d s times the total xy-gradient
  // over the window rows in the strip, then grad_score times the tap weights. Gradient rows are
  // zeroed just before the sweep first reaches them, and the score rows are prefetched ahead of
  // it. Taps outside the reach (only for an xy not made by forward, e.g. NaN) are added last.
  const int64_t strips = strips_per_image(B, H, 16);
  const int64_t strip_rows = (H + strips - 1) / strips;
  struct Scratch {  // per thread
    SoftArgmax<acc> sa;
    std::vector<int64_t> row_start, order;
  };
  parallel_items(B * strips, [] { return Scratch{}; }, [&](Scratch& t, int64_t unit) {
    const int64_t b = unit / strips, y0 = (unit % strips) * strip_rows;
    const int64_t y1 = std::min(H, y0 + strip_rows);
    if (y0 >= y1) return;
    SoftArgmax<acc>& sa = t.sa;
    std::vector<int64_t>& row_start = t.row_start;
    std::vector<int64_t>& order = t.order;
    const scalar_t* image = s + b * HW;
    const int64_t* image_index = idx + b * K;
    sort_by_row(image_index, K, W, H, row_start, order);
    const int64_t* image_order = order.data();
    scalar_t* grad = out + b * HW;
    int64_t zeroed = y0;  // rows [y0, zeroed) of the strip are zeroed
    auto zero_until = [&](int64_t row_end) {
      row_end = std::min(row_end, y1);
      if (row_end > zeroed) {
        std::memset(grad + zeroed * W, 0, sizeof(scalar_t) * (row_end - zeroed) * W);
        zeroed = row_end;
      }
    };
    const int64_t* starts = row_start.data();
    const int64_t first = starts[std::max<int64_t>(0, y0 - radius - 1)];
    const int64_t last = starts[std::min(H, y1 + radius)];
    RowPrefetcher<scalar_t> prefetch(image, H, W, y0);
    for (int64_t pos = first; pos < last; ++pos) {
      const int64_t slot = image_order[pos], bk = b * K + slot;
      const int64_t p = image_index[slot], px = p % W, py = p / W;
      prefetch.reach(std::min(py + radius, y1 - 1));
      const int64_t reach_lo = std::max(py - radius, y0), reach_hi = std::min(py + radius + 1, y1 - 1);
      zero_until(reach_hi + 1);
      const ClippedWindow win(px, py, radius, H, W);
      const auto taps = bilinear_taps<acc>(p_xy[2 * bk], p_xy[2 * bk + 1], H, W, Padding::Border);
      const acc grad_s = static_cast<acc>(gs[bk]);
      const int64_t row_lo = std::max(win.y_lo, y0), row_hi = std::min(win.y_hi, y1 - 1);
      if (row_lo <= row_hi) {
        acc dscore_dx = 0, dscore_dy = 0;
        for (int i = 0; i < 4; ++i) {
          const acc v = static_cast<acc>(image[taps.index[i]]);
          dscore_dx += taps.dweight_dx[i] * v;
          dscore_dy += taps.dweight_dy[i] * v;
        }
        const acc grad_x = static_cast<acc>(gxy[2 * bk]) + grad_s * dscore_dx;
        const acc grad_y = static_cast<acc>(gxy[2 * bk + 1]) + grad_s * dscore_dy;
        sa.compute(image, W, win, px, py, inv_temperature);
        const acc scale = inv_temperature / sa.sum;
        const acc* a = sa.weights(win, row_lo);
        const int64_t cols = win.columns();
        for (int64_t y = row_lo; y <= row_hi; ++y, a += cols) {
          scalar_t* grow = grad + y * W + win.x_lo;
          const acc along_y = grad_y * (static_cast<acc>(y - py) - sa.offset_y);
          for (int64_t c = 0; c < cols; ++c) {
            const acc along = grad_x * (static_cast<acc>(win.x_lo + c - px) - sa.offset_x) + along_y;
            grow[c] += static_cast<scalar_t>(a[c] * scale * along);
          }
        }
      }
      for (int i = 0; i < 4; ++i) {
        if (taps.index[i] >= reach_lo * W && taps.index[i] < (reach_hi + 1) * W) {
          grad[taps.index[i]] += static_cast<scalar_t>(grad_s * taps.weight[i]);
        }
      }
    }
    zero_until(y1);
    for (int64_t pos = 0; pos < K; ++pos) {  // stray taps
      const int64_t slot = image_order[pos], bk = b * K + slot, py = image_index[slot] / W;
      const scalar_t y = p_xy[2 * bk + 1];
      if (y >= py - radius && y <= py + radius) continue;  // taps within the reach (not NaN)
      const auto taps = bilinear_taps<acc>(p_xy[2 * bk], p_xy[2 * bk + 1], H, W, Padding::Border);
      const int64_t swept_lo = std::max<int64_t>(py - radius, 0) * W;
      const int64_t swept_hi = std::min(py + radius + 2, H) * W;
      for (int i = 0; i < 4; ++i) {
        const int64_t at = taps.index[i];
        if ((at < swept_lo || at >= swept_hi) && at >= y0 * W && at < y1 * W) {
          grad[taps.index[i]] += static_cast<scalar_t>(static_cast<acc>(gs[bk]) * taps.weight[i]);
        }
      }
    }
  });
}

void check_scores(const at::Tensor& scores) {
  check_float_tensor(scores, "scores", 3);
  check_cpu(scores, "scores");
  TORCH_CHECK(scores.size(1) > 0 && scores.size(2) > 0, "scores must have H, W > 0, got ",
              scores.sizes());
}

void check_settings(const at::Tensor& scores, int64_t k, int64_t nms_size, int64_t window,
                    double temperature) {
  TORCH_CHECK(k >= 1 && k <= scores.size(1) * scores.size(2), "k must be in [1, H*W], got ", k,
              " for scores ", scores.sizes());
  TORCH_CHECK(nms_size >= 1 && nms_size % 2 == 1, "nms_size must be odd and >= 1, got ", nms_size);
  TORCH_CHECK(window >= 1 && window % 2 == 1, "window must be odd and >= 1, got ", window);
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature),
              "temperature must be a finite number > 0, got ", temperature);
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> detect_keypoints_cpu(
    const at::Tensor& scores_in, int64_t k, int64_t nms_size, int64_t window, double temperature,
    bool strict, int64_t border, const std::optional<at::Tensor>& image_size_in, bool fill) {
  check_scores(scores_in);
  check_settings(scores_in, k, nms_size, window, temperature);
  TORCH_CHECK(border >= 0, "border must be >= 0, got ", border);
  at::Tensor image_size;
  if (image_size_in.has_value() && image_size_in->defined()) {
    image_size = image_size_in->contiguous();
    TORCH_CHECK(image_size.scalar_type() == at::kLong && image_size.device().is_cpu(),
                "image_size must be an int64 CPU tensor, got ", image_size.scalar_type(), " on ",
                image_size.device());
    TORCH_CHECK(image_size.dim() == 2 && image_size.size(0) == scores_in.size(0) &&
                    image_size.size(1) == 2,
                "image_size must be [B, 2] with B = ", scores_in.size(0), ", got ",
                image_size.sizes());
  }
  const PeakRule rule{strict, border, image_size.defined() ? image_size.data_ptr<int64_t>() : nullptr, fill};
  const at::Tensor scores = scores_in.contiguous();
  const Geometry g = geometry(scores, k, nms_size, window);
  at::Tensor xy = at::empty({g.batch, k, 2}, scores.options());
  at::Tensor score = at::empty({g.batch, k}, scores.options());
  at::Tensor is_peak = at::empty({g.batch, k}, scores.options().dtype(at::kBool));
  at::Tensor index = at::empty({g.batch, k}, scores.options().dtype(at::kLong));
  if (g.batch == 0) return {xy, score, is_peak, index};
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "detect_keypoints_cpu", [&] {
    forward_kernel<scalar_t>(scores, g, rule, temperature, xy, score, is_peak, index);
  });
  return {xy, score, is_peak, index};
}

at::Tensor detect_keypoints_backward_cpu(const at::Tensor& grad_xy_in,
                                         const at::Tensor& grad_score_in,
                                         const at::Tensor& scores_in, const at::Tensor& xy_in,
                                         const at::Tensor& index_in, int64_t window,
                                         double temperature) {
  check_scores(scores_in);
  check_float_tensor(xy_in, "xy", 3);
  check_float_tensor(grad_xy_in, "grad_xy", 3);
  check_float_tensor(grad_score_in, "grad_score", 2);
  for (const auto* t : {&xy_in, &grad_xy_in, &grad_score_in}) {
    check_cpu(*t, "xy/grad_xy/grad_score");
    check_same_dtype(scores_in, *t, "scores", "xy/grad_xy/grad_score");
  }
  TORCH_CHECK(index_in.scalar_type() == at::kLong && index_in.dim() == 2,
              "index must be a [B,K] int64 tensor, got ", index_in.scalar_type(), " ",
              index_in.sizes());
  const int64_t B = scores_in.size(0), K = index_in.size(1), HW = scores_in.size(1) * scores_in.size(2);
  TORCH_CHECK(index_in.size(0) == B, "index must be [B,K] with B=", B, ", got ", index_in.sizes());
  TORCH_CHECK(xy_in.sizes() == at::IntArrayRef({B, K, 2}), "xy must be [B,K,2], got ", xy_in.sizes());
  TORCH_CHECK(grad_xy_in.sizes() == at::IntArrayRef({B, K, 2}), "grad_xy must be [B,K,2], got ",
              grad_xy_in.sizes());
  TORCH_CHECK(grad_score_in.sizes() == at::IntArrayRef({B, K}), "grad_score must be [B,K], got ",
              grad_score_in.sizes());
  TORCH_CHECK(window >= 1 && window % 2 == 1, "window must be odd and >= 1, got ", window);
  TORCH_CHECK(temperature > 0 && std::isfinite(temperature),
              "temperature must be a finite number > 0, got ", temperature);
  const at::Tensor scores = scores_in.contiguous(), xy = xy_in.contiguous();
  const at::Tensor grad_xy = grad_xy_in.contiguous(), grad_score = grad_score_in.contiguous();
  const at::Tensor index = index_in.contiguous();
  const int64_t* idx = index.data_ptr<int64_t>();
  for (int64_t i = 0; i < index.numel(); ++i) {
    TORCH_CHECK(idx[i] >= 0 && idx[i] < HW, "index must hold flat pixel indices in [0, H*W), got ",
                idx[i]);
  }
  const Geometry g = geometry(scores, K, 1, window);
  at::Tensor grad_scores = at::empty_like(scores);
  if (B == 0) return grad_scores;
  AT_DISPATCH_FLOATING_TYPES(scores.scalar_type(), "detect_keypoints_backward_cpu", [&] {
    backward_kernel<scalar_t>(grad_xy, grad_score, scores, xy, index, g, temperature, grad_scores);
  });
  return grad_scores;
}

}  // namespace tusk

TORCH_LIBRARY_IMPL(tusk, CPU, m) {
  m.impl("detect_keypoints", &tusk::detect_keypoints_cpu);
  m.impl("detect_keypoints_backward", &tusk::detect_keypoints_backward_cpu);
}
