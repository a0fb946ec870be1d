// Host tests of the index arithmetic and per-element maths that the CUDA kernels run
// (kernels/include/tusk/*.h), executed thread by thread on the CPU. Built with
// -fsanitize=address,undefined by CMakeLists.txt, so an out-of-range index in a plan or a merge
// aborts the test. What this cannot check: scheduling, barriers and shared-memory races of the
// real kernels (those need a GPU; see benchmarks/gpu/device_check.sh).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "tusk/gaussian.h"
#include "tusk/gmm.h"
#include "tusk/merge.h"
#include "tusk/numeric.h"
#include "tusk/sliced.h"
#include "tusk/softargmax.h"
#include "tusk/softmax.h"
#include "tusk/sort_plan.h"
#include "tusk/topk.h"
#include "tusk/workspace.h"

namespace {

int failures = 0;

#define EXPECT(cond)                                                        \
  do {                                                                      \
    if (!(cond)) {                                                          \
      std::fprintf(stderr, "%s:%d: EXPECT(%s) failed\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                           \
    }                                                                       \
  } while (0)

std::mt19937_64 rng(1234);

double special_value(int which) {
  const double specials[] = {0.0, -0.0, 1.0, -1.0, INFINITY, -INFINITY, NAN, -NAN,
                             std::numeric_limits<double>::denorm_min(),
                             -std::numeric_limits<double>::denorm_min(),
                             std::numeric_limits<double>::max(), -std::numeric_limits<double>::max(),
                             0.5, 0.25, 1e-300, -1e300};
  return specials[which % 16];
}

double random_value() {
  std::uniform_int_distribution<int> pick(0, 3);
  if (pick(rng) == 0) return special_value(static_cast<int>(rng() % 16));
  std::uniform_int_distribution<int> small(-3, 3);
  return small(rng) * 0.5;  // many exact ties
}

// Total order of torch.sort(descending=True): NaN first, -0 == +0.
bool value_above(double a, double b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && !std::isnan(b);
  return a > b;
}

void test_orderable_key() {
  for (int i = 0; i < 20000; ++i) {
    const double a = random_value(), b = random_value();
    const uint64_t ka = tusk::orderable_key(a), kb = tusk::orderable_key(b);
    EXPECT((ka > kb) == value_above(a, b));
    EXPECT(ka != 0);  // 0 is reserved for sentinels
    const double back = tusk::orderable_value(ka);
    EXPECT(std::isnan(a) ? std::isnan(back) : back == a);
  }
  EXPECT(tusk::orderable_key(-0.0) == tusk::orderable_key(0.0));
  EXPECT(tusk::orderable_key(NAN) > tusk::orderable_key(INFINITY));
  EXPECT(tusk::orderable_key(-INFINITY) > 0);
}

struct Pixel {
  double score;
  bool peak;
  int64_t index;
};

bool pixel_before(const Pixel& a, const Pixel& b) {  // the reference's order, spelled out
  if (a.peak != b.peak) return a.peak;
  if (value_above(a.score, b.score)) return true;
  if (value_above(b.score, a.score)) return false;
  return a.index < b.index;
}

void test_topkey() {
  for (int i = 0; i < 20000; ++i) {
    Pixel a{random_value(), rng() % 2 == 0, static_cast<int64_t>(rng() % 1000)};
    Pixel b{random_value(), rng() % 2 == 0, static_cast<int64_t>(rng() % 1000)};
    if (a.index == b.index) b.index += 1;
    const tusk::TopKey ka = tusk::make_topkey(a.score, a.peak, a.index);
    const tusk::TopKey kb = tusk::make_topkey(b.score, b.peak, b.index);
    EXPECT(tusk::key_better(ka, kb) == pixel_before(a, b));
    EXPECT(tusk::key_better(ka, tusk::sentinel_topkey()));
    EXPECT(tusk::topkey_index(ka) == a.index && tusk::topkey_is_peak(ka) == a.peak);
  }
  const int64_t big = (int64_t(1) << 62) + 12345;
  EXPECT(tusk::topkey_index(tusk::make_topkey(1.0, true, big)) == big);
  EXPECT(!tusk::key_better(tusk::sentinel_topkey(), tusk::sentinel_topkey()));
}

// Runs a bitonic sort stage by stage, pair by pair, as the block of threads would.
template <typename Item, typename Before>
void bitonic_sort(std::vector<Item>& items, Before before) {
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t size = 2; size <= n; size <<= 1)
    for (int64_t stride = size >> 1; stride > 0; stride >>= 1)
      for (int64_t pair = 0; pair < n / 2; ++pair) {
        const int64_t i = tusk::bitonic_first(pair, stride);
        EXPECT(i >= 0 && i + stride < n);
        tusk::bitonic_exchange(items.data(), pair, size, stride, before);
      }
}

void test_bitonic() {
  for (int64_t n = 1; n <= 4096; n <<= 1) {
    for (int rep = 0; rep < 3; ++rep) {
      std::vector<tusk::TopKey> keys;
      for (int64_t i = 0; i < n; ++i) keys.push_back(tusk::make_topkey(random_value(), rng() % 3 == 0, i));
      std::vector<tusk::TopKey> expected = keys;
      std::sort(expected.begin(), expected.end(), tusk::TopKeyBefore());
      bitonic_sort(keys, tusk::TopKeyBefore());
      for (int64_t i = 0; i < n; ++i) EXPECT(keys[i].hi == expected[i].hi && keys[i].lo == expected[i].lo);
    }
  }
  // Every pair of a stage is visited exactly once (disjoint pairs: no two threads race).
  for (int64_t n = 2; n <= 1024; n <<= 1)
    for (int64_t stride = 1; stride < n; stride <<= 1) {
      std::vector<int> seen(n, 0);
      for (int64_t pair = 0; pair < n / 2; ++pair) {
        seen[tusk::bitonic_first(pair, stride)]++;
        seen[tusk::bitonic_first(pair, stride) + stride]++;
      }
      for (int64_t i = 0; i < n; ++i) EXPECT(seen[i] == 1);
    }
}

struct Tagged {
  int key;
  int tag;  // 0 = from A, 1 = from B; position within its list in `pos`
  int pos;
};

void test_merge_path() {
  auto before = [](const Tagged& a, const Tagged& b) { return a.key < b.key; };
  for (int rep = 0; rep < 3000; ++rep) {
    const int la = static_cast<int>(rng() % 40), lb = static_cast<int>(rng() % 40);
    std::vector<Tagged> a, b;
    for (int i = 0; i < la; ++i) a.push_back({static_cast<int>(rng() % 10), 0, 0});
    for (int i = 0; i < lb; ++i) b.push_back({static_cast<int>(rng() % 10), 1, 0});
    std::sort(a.begin(), a.end(), before);
    std::sort(b.begin(), b.end(), before);
    for (int i = 0; i < la; ++i) a[i].pos = i;
    for (int i = 0; i < lb; ++i) b[i].pos = i;
    std::vector<Tagged> expected;
    std::merge(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(expected), before);  // stable
    for (int r = 0; r < la + lb; ++r) {
      const Tagged got = tusk::merge_path_pick(a.data(), la, b.data(), lb, r, before);
      EXPECT(got.key == expected[r].key && got.tag == expected[r].tag && got.pos == expected[r].pos);
    }
  }
}

// The whole segmented sort of a SortPlan, launch by launch, thread by thread, with every buffer
// access bounds-checked: phase 1 (each tile's candidates, bitonic-sorted after padding to a
// power of two, best min(keep, tile) kept with their valid count), then the merge rounds through
// merge_round_step exactly as merge_round_kernel runs them. `candidate(segment, index)` says
// whether an item may be selected (detection: only peaks when an image has >= K of them).
template <typename Item, typename Before, typename Candidate>
std::vector<std::vector<Item>> run_plan(const tusk::SortPlan& plan,
                                        const std::vector<std::vector<Item>>& segments,
                                        Item sentinel, Before before, Candidate candidate,
                                        std::vector<int64_t>* final_valid) {
  const int64_t size = plan.segments * plan.stride, lists0 = plan.segments * plan.tiles;
  std::vector<Item> buffers[2] = {std::vector<Item>(size, sentinel), std::vector<Item>(size, sentinel)};
  std::vector<int64_t> valid[2] = {std::vector<int64_t>(lists0, -1), std::vector<int64_t>(lists0, -1)};
  const int64_t keep0 = tusk::plan_length(plan, 0);
  EXPECT(plan.tiles * keep0 <= plan.stride);
  for (int64_t block = 0; block < plan.segments * plan.tiles; ++block) {
    const int64_t segment = block / plan.tiles, tile = block % plan.tiles;
    std::vector<Item> items;
    for (int64_t t = 0; t < plan.tile; ++t) {
      const int64_t i = tile * plan.tile + t;
      if (i < plan.items && candidate(segment, i)) items.push_back(segments[segment][i]);
    }
    const int64_t count = static_cast<int64_t>(items.size());
    EXPECT(count <= plan.tile);
    items.resize(tusk::next_pow2(count), sentinel);
    bitonic_sort(items, before);
    const int64_t kept = std::min(keep0, count);
    for (int64_t t = 0; t < kept; ++t) {
      const int64_t at = segment * plan.stride + tile * keep0 + t;
      EXPECT(at >= 0 && at < size);
      if (at >= 0 && at < size) buffers[0][at] = items[t];
    }
    valid[0][block] = kept;
  }
  for (int round = 1; round <= plan.rounds; ++round) {
    const int64_t in_lists = tusk::plan_lists(plan, round - 1), in_length = tusk::plan_length(plan, round - 1);
    const int64_t out_lists = tusk::plan_lists(plan, round), out_length = tusk::plan_length(plan, round);
    EXPECT(out_lists * out_length <= plan.stride);
    EXPECT(out_length <= 2 * in_length && out_lists <= plan.tiles);
    const std::vector<Item>& in = buffers[(round - 1) % 2];
    std::vector<Item>& out = buffers[round % 2];
    const std::vector<int64_t>& in_valid = valid[(round - 1) % 2];
    std::vector<int64_t>& out_valid = valid[round % 2];
    for (int64_t list = 0; list < plan.segments * in_lists; ++list) {
      EXPECT(in_valid[list] >= 0 && in_valid[list] <= in_length);
    }
    std::vector<Item> out_copy = out;
    for (int64_t t = 0; t < plan.segments * out_lists * out_length; ++t) {
      tusk::merge_round_step(in.data(), in_valid.data(), out_copy.data(), out_valid.data(), plan.stride,
                             in_lists, in_length, out_lists, out_length, t, before);
    }
    out = out_copy;
  }
  EXPECT(tusk::plan_lists(plan, plan.rounds) == 1);
  EXPECT(tusk::plan_length(plan, plan.rounds) == plan.keep);
  std::vector<std::vector<Item>> result(plan.segments);
  const std::vector<Item>& final_buffer = buffers[plan.rounds % 2];
  final_valid->assign(valid[plan.rounds % 2].begin(), valid[plan.rounds % 2].begin() + plan.segments);
  for (int64_t s = 0; s < plan.segments; ++s)
    result[s].assign(final_buffer.begin() + s * plan.stride, final_buffer.begin() + s * plan.stride + (*final_valid)[s]);
  return result;
}

void test_sort_plan_topk() {
  const int64_t tiles[] = {1, 2, 4, 8, 2048};
  for (int64_t max_tile : tiles) {
    for (int rep = 0; rep < 60; ++rep) {
      const int64_t items = 1 + static_cast<int64_t>(rng() % (rep < 30 ? 40 : 300));
      const int64_t keep = 1 + static_cast<int64_t>(rng() % items);
      const int64_t segments = 1 + static_cast<int64_t>(rng() % 3);
      const tusk::SortPlan plan = tusk::make_sort_plan(segments, items, keep, max_tile);
      EXPECT(plan.tile >= 1 && (plan.tile & (plan.tile - 1)) == 0 && plan.tile <= max_tile);
      EXPECT(plan.tiles * plan.tile >= items && (plan.tiles - 1) * plan.tile < items);
      EXPECT(plan.threads >= 32 && plan.threads <= 1024 && plan.threads % 32 == 0);
      std::vector<std::vector<tusk::TopKey>> data(segments);
      std::vector<int64_t> peaks(segments, 0);
      for (int64_t s = 0; s < segments; ++s)
        for (int64_t i = 0; i < items; ++i) {
          const bool peak = rng() % (rep % 2 ? 3 : 12) == 0;
          peaks[s] += peak;
          data[s].push_back(tusk::make_topkey(random_value(), peak, i));
        }
      // As tile_topk_kernel: only peaks are candidates when the segment has >= keep of them.
      auto candidate = [&](int64_t s, int64_t i) { return peaks[s] < keep || tusk::topkey_is_peak(data[s][i]); };
      std::vector<int64_t> final_valid;
      const auto got = run_plan(plan, data, tusk::sentinel_topkey(), tusk::TopKeyBefore(), candidate, &final_valid);
      for (int64_t s = 0; s < segments; ++s) {
        EXPECT(final_valid[s] == keep);
        std::vector<tusk::TopKey> expected = data[s];
        std::sort(expected.begin(), expected.end(), tusk::TopKeyBefore());
        for (int64_t i = 0; i < std::min<int64_t>(keep, final_valid[s]); ++i)
          EXPECT(got[s][i].hi == expected[i].hi && got[s][i].lo == expected[i].lo);
      }
    }
  }
  // The SuperPoint case: 480 x 640 pixels, K = 2048, 8 images.
  const tusk::SortPlan sp = tusk::make_sort_plan(8, 480 * 640, 2048);
  EXPECT(sp.tile == 2048 && sp.tiles == 150 && sp.rounds == 8 && sp.threads == 1024);
  EXPECT(tusk::plan_length(sp, sp.rounds) == 2048 && tusk::plan_lists(sp, sp.rounds) == 1);
  const tusk::SortPlan tiny = tusk::make_sort_plan(1, 1, 1);
  EXPECT(tiny.tile == 1 && tiny.tiles == 1 && tiny.rounds == 0 && tiny.threads == 32 && tiny.stride == 1);
}

void test_sort_plan_sliced() {
  using Item = tusk::SortItem<double>;
  for (int rep = 0; rep < 40; ++rep) {
    const int64_t items = 1 + static_cast<int64_t>(rng() % 200);
    const tusk::SortPlan plan = tusk::make_sort_plan(2, items, items, 16);
    std::vector<std::vector<Item>> data(2);
    for (auto& seg : data)
      for (int64_t i = 0; i < items; ++i) seg.push_back({random_value(), i});
    std::vector<int64_t> final_valid;
    const auto got = run_plan(plan, data, tusk::sort_item_sentinel<double>(), tusk::SortItemBefore<double>(),
                              [](int64_t, int64_t) { return true; }, &final_valid);
    for (int s = 0; s < 2; ++s) {
      EXPECT(final_valid[s] == items);
      std::vector<Item> expected = data[s];
      std::stable_sort(expected.begin(), expected.end(), tusk::SortItemBefore<double>());
      for (int64_t i = 0; i < items; ++i) EXPECT(got[s][i].index == expected[i].index);
    }
  }
  // Ascending like torch.sort: NaN last, ties (and -0/+0) by index.
  const Item a{-0.0, 3}, b{0.0, 1}, n{NAN, 0};
  EXPECT(tusk::sort_before(b, a) && !tusk::sort_before(a, b));
  EXPECT(tusk::sort_before(a, n) && !tusk::sort_before(n, a));
  EXPECT(tusk::sort_before(n, tusk::sort_item_sentinel<double>()));
}

void test_splat_keypoint() {
  const int64_t height = 7, width = 9;
  for (int rep = 0; rep < 2000; ++rep) {
    std::uniform_real_distribution<double> coord(-4.0, 12.0);
    const double x = coord(rng), y = coord(rng);
    const int64_t radius = static_cast<int64_t>(rng() % 4);
    const double variance = 0.05 + (rng() % 100) * 0.05;
    const auto kp = tusk::splat_keypoint<double>(x, y, 2.0, height, width, variance, radius, true);
    // Brute force over the image: window membership and the normaliser.
    double total = 0;
    bool any = false;
    for (int64_t py = 0; py < height; ++py)
      for (int64_t px = 0; px < width; ++px) {
        const bool in = std::fabs(px - std::floor(x + 0.5)) <= radius && std::fabs(py - std::floor(y + 0.5)) <= radius;
        EXPECT(in == tusk::splat_covers(kp, px, py));
        if (in) {
          any = true;
          total += std::exp(-((px - x) * (px - x) + (py - y) * (py - y)) / (2 * variance));
        }
      }
    EXPECT(any == !tusk::splat_window_empty(kp));
    if (any && total > 0) EXPECT(std::fabs(kp.norm * total - 1.0) < 1e-12);
    // Tile test against covering any pixel of the tile.
    for (int64_t y0 = 0; y0 < height; y0 += 2)
      for (int64_t x0 = 0; x0 < width; x0 += 4) {
        bool meets = false;
        for (int64_t py = y0; py < std::min(y0 + 2, height); ++py)
          for (int64_t px = x0; px < std::min(x0 + 4, width); ++px) meets = meets || tusk::splat_covers(kp, px, py);
        EXPECT(meets == tusk::splat_meets_tile(kp, x0, y0, 4, 2));
      }
  }
  const auto far = tusk::splat_keypoint<float>(1e30f, 2.0f, 1.0f, height, width, 0.05f, 1, true);
  EXPECT(tusk::splat_window_empty(far));
  const auto inf = tusk::splat_keypoint<float>(INFINITY, 2.0f, 1.0f, height, width, 0.05f, 1, false);
  EXPECT(tusk::splat_window_empty(inf));
  const auto nan_norm = tusk::splat_keypoint<float>(NAN, 2.0f, 1.0f, height, width, 0.05f, 1, true);
  EXPECT(tusk::splat_window_empty(nan_norm));
  const auto nan_raw = tusk::splat_keypoint<float>(NAN, 2.0f, 1.0f, height, width, 0.05f, 1, false);
  EXPECT(!tusk::splat_window_empty(nan_raw) && std::isnan(tusk::splat_gauss(nan_raw, 3, 3)));
  const auto huge = tusk::splat_keypoint<double>(4.0, 3.0, 1.0, height, width, 0.05, int64_t(1) << 40, false);
  EXPECT(huge.x_lo == 0 && huge.x_hi == width - 1 && huge.y_lo == 0 && huge.y_hi == height - 1);
}

void test_online_softmax() {
  for (int rep = 0; rep < 3000; ++rep) {
    const int n = 1 + static_cast<int>(rng() % 12);
    std::vector<double> logits(n), values(n);
    std::uniform_real_distribution<double> u(-5, 5);
    for (int i = 0; i < n; ++i) {
      logits[i] = (rng() % 5 == 0) ? -INFINITY : u(rng);
      values[i] = u(rng);
    }
    tusk::OnlineSoftmax<double> sm;
    double acc = values[0] * sm.start(logits[0]);
    for (int i = 1; i < n; ++i) {
      double w;
      const double rescale = sm.add(logits[i], &w);
      acc = acc * rescale + w * values[i];
    }
    double mx = -INFINITY;
    for (double l : logits) mx = std::max(mx, l);
    if (mx == -INFINITY) continue;  // torch gives NaN there; documented difference
    double sum = 0, blend = 0;
    for (int i = 0; i < n; ++i) {
      const double e = std::exp(logits[i] - mx);
      sum += e;
      blend += e * values[i];
    }
    EXPECT(std::fabs(sm.max - mx) == 0);
    EXPECT(std::fabs(sm.sum - sum) < 1e-12 * sum);
    EXPECT(std::fabs(acc / sm.sum - blend / sum) < 1e-12);
    for (int i = 0; i < n; ++i) EXPECT(std::fabs(sm.weight(logits[i]) - std::exp(logits[i] - mx)) < 1e-15);
  }
  tusk::OnlineSoftmax<float> sm;
  float w;
  sm.start(1.0f);
  sm.add(NAN, &w);
  EXPECT(std::isnan(sm.sum));
}

void test_window_cells() {
  for (int64_t height : {1, 2, 5})
    for (int64_t width : {1, 3, 6})
      for (int64_t window : {1, 3, 5, 13})
        for (int64_t centre = 0; centre < height * width; ++centre) {
          int inside = 0;
          for (int64_t cell = 0; cell < window * window; ++cell) {
            const tusk::WindowCell c = tusk::window_cell(centre, cell, window, height, width);
            EXPECT(c.dx >= -window / 2 && c.dx <= window / 2 && c.dy >= -window / 2 && c.dy <= window / 2);
            if (c.inside) {
              ++inside;
              EXPECT(c.flat >= 0 && c.flat < height * width);
              EXPECT(c.flat == (centre / width + c.dy) * width + centre % width + c.dx);
            }
          }
          const int64_t r = window / 2, px = centre % width, py = centre / width;
          const int64_t nx = std::min(px + r, width - 1) - std::max<int64_t>(px - r, 0) + 1;
          const int64_t ny = std::min(py + r, height - 1) - std::max<int64_t>(py - r, 0) + 1;
          EXPECT(inside == nx * ny);
        }
}

void test_gmm_bookkeeping() {
  for (int rep = 0; rep < 500; ++rep) {
    const int64_t m = 1 + static_cast<int64_t>(rng() % 12);
    std::vector<double> fraction(m);
    for (auto& f : fraction) f = (rng() % 4) * 0.25;  // ties
    std::vector<int64_t> order(m);
    for (int64_t i = 0; i < m; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return fraction[a] > fraction[b]; });
    for (int64_t pos = 0; pos < m; ++pos) EXPECT(tusk::remainder_rank(fraction.data(), m, order[pos]) == pos);
    std::vector<int64_t> counts(m), cumulative(m);
    int64_t running = 0;
    for (int64_t i = 0; i < m; ++i) {
      counts[i] = static_cast<int64_t>(rng() % 4);
      running += counts[i];
      cumulative[i] = running;
    }
    if (running == 0) continue;
    for (int64_t i = 0; i < running; ++i) {
      const int64_t proto = tusk::prototype_of_sample(cumulative.data(), m, i);
      const int64_t expected = std::upper_bound(cumulative.begin(), cumulative.end(), i) - cumulative.begin();
      EXPECT(proto == expected && counts[proto] > 0);
    }
  }
  // normalize_grad against central differences of v / |v|.
  const double v[3] = {0.3, -1.2, 0.7}, g[3] = {0.5, 0.1, -0.4};
  double norm = 0, vg = 0;
  for (int c = 0; c < 3; ++c) {
    norm += v[c] * v[c];
    vg += v[c] * g[c];
  }
  norm = std::sqrt(norm);
  for (int c = 0; c < 3; ++c) {
    double plus[3] = {v[0], v[1], v[2]}, minus[3] = {v[0], v[1], v[2]};
    plus[c] += 1e-6;
    minus[c] -= 1e-6;
    auto loss = [&](const double* w) {
      const double n = std::sqrt(w[0] * w[0] + w[1] * w[1] + w[2] * w[2]);
      return (g[0] * w[0] + g[1] * w[1] + g[2] * w[2]) / n;
    };
    const double numeric = (loss(plus) - loss(minus)) / 2e-6;
    EXPECT(std::fabs(tusk::normalize_grad(v[c], g[c], norm, vg, 1e-12) - numeric) < 1e-8);
  }
}

void test_workspace_layout() {
  tusk::WorkspaceLayout sizing(nullptr);
  sizing.take<char>(3);
  sizing.take<double>(5);
  EXPECT(sizing.used == 256 + 40);
  std::vector<char> memory(sizing.used + 256);
  char* base = memory.data();
  tusk::WorkspaceLayout carve(base);
  char* a = carve.take<char>(3);
  double* b = carve.take<double>(5);
  EXPECT(a == base && reinterpret_cast<char*>(b) == base + 256 && carve.used == sizing.used);
}

}  // namespace

int main() {
  test_orderable_key();
  test_topkey();
  test_bitonic();
  test_merge_path();
  test_sort_plan_topk();
  test_sort_plan_sliced();
  test_splat_keypoint();
  test_online_softmax();
  test_window_cells();
  test_gmm_bookkeeping();
  test_workspace_layout();
  if (failures) {
    std::fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  std::printf("all host checks passed\n");
  return 0;
}
