// Non-maximum suppression on the CPU: the pixels that equal the maximum of their
// nms_size x nms_size window, clipped at the image border (= max_pool2d with -inf padding,
// stride 1, padding nms_size // 2, followed by `scores == pooled`).
//
// The max filter is separable and uses the van Herk / Gil-Werman scheme: cut the (-inf padded)
// line into blocks of k = 2r + 1 values and take prefix maxima g and suffix maxima h inside each
// block; the maximum of any window [i, i + k - 1] is then max(h[i], g[i + k - 1]). That is three
// comparisons per pixel and axis whatever k is (k = 27 costs what k = 3 costs).
//
// Rows are filtered one at a time (scalar scans; independent blocks keep the out-of-order core
// busy). The vertical pass works on whole rows (loops along x that the compiler vectorises) and
// reads the horizontally filtered rows from a ring of 2k rows that is filled lazily, so the
// working set is ~3k rows instead of an H x W temporary (480 x 640, k = 5: 32 KB).
//
// NaN: max_pool2d propagates NaN, so no pixel whose window holds a NaN is a peak. The fast path
// uses a plain max and bails out of a strip when a row holds a NaN; the strip is then redone with
// a NaN-propagating max. Peaks are appended in flat-index order.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace tusk {

template <typename T>
struct Candidate {
  T score;
  int64_t index;  // flat y * W + x inside the image
};

template <typename T, bool kNanAware>
inline T max_of(T a, T b) {
  if constexpr (kNanAware) {
    return (b > a || b != b) ? b : a;  // NaN in either operand wins
  } else {
    return b > a ? b : a;
  }
}

template <typename T>
class PeakFinder {
 public:
  // `radius` = nms_size // 2. Radii beyond the image change nothing (the window is clipped),
  // so they are clamped per axis; that also bounds the scratch memory.
  PeakFinder(int64_t height, int64_t width, int64_t radius)
      : height_(height),
        width_(width),
        rx_(std::min(radius, width - 1)),
        ry_(std::min(radius, height - 1)),
        kx_(2 * rx_ + 1),
        ky_(2 * ry_ + 1),
        ring_rows_(2 * ky_),
        padded_(width + 2 * rx_, -std::numeric_limits<T>::infinity()),
        prefix_(width + 2 * rx_),
        suffix_(width + 2 * rx_),
        ring_(ring_rows_ * width),
        ring_tag_(ring_rows_, -1),
        block_(ky_ * width),
        running_(width),
        mask_((width + 7) / 8 * 8, 0),
        neg_inf_row_(width, -std::numeric_limits<T>::infinity()) {}

  // Appends the peaks among rows [y0, y1) of `image` ([H, W], row-major) to `out`.
  void find(const T* image, int64_t y0, int64_t y1, std::vector<Candidate<T>>& out) {
    const size_t mark = out.size();
    if (!find_impl<false>(image, y0, y1, out)) {
      out.resize(mark);  // a NaN was met: redo the strip with the NaN-propagating max
      find_impl<true>(image, y0, y1, out);
    }
  }

 private:
  // Horizontal filter of image row y into `dst`; false if !kNanAware and the row holds a NaN.
  template <bool kNanAware>
  bool filter_row(const T* row, T* dst) {
    const int64_t W = width_, k = kx_, n = W + 2 * rx_;
    T* p = padded_.data();
    int has_nan = 0;  // an int, not a bool, so that the loop vectorises
    for (int64_t x = 0; x < W; ++x) {
      p[rx_ + x] = row[x];
      has_nan |= static_cast<int>(row[x] != row[x]);
    }
    if (!kNanAware && has_nan) return false;
    T* g = prefix_.data();
    T* h = suffix_.data();
    for (int64_t start = 0; start < n; start += k) {
      const int64_t end = std::min(start + k, n);
      T m = p[start];
      g[start] = m;
      for (int64_t j = start + 1; j < end; ++j) g[j] = m = max_of<T, kNanAware>(m, p[j]);
      m = p[end - 1];
      h[end - 1] = m;
      for (int64_t j = end - 2; j >= start; --j) h[j] = m = max_of<T, kNanAware>(m, p[j]);
    }
    const T* g_end = g + k - 1;
    for (int64_t x = 0; x < W; ++x) dst[x] = max_of<T, kNanAware>(h[x], g_end[x]);
    return true;
  }

  // Horizontally filtered image row y (-inf outside the image), from the ring; nullptr if
  // !kNanAware and the row holds a NaN.
  template <bool kNanAware>
  const T* filtered_row(const T* image, int64_t y) {
    if (y < 0 || y >= height_) return neg_inf_row_.data();
    const int64_t slot = y % ring_rows_;
    T* dst = ring_.data() + slot * width_;
    if (ring_tag_[slot] != y) {
      if (!filter_row<kNanAware>(image + y * width_, dst)) return nullptr;
      ring_tag_[slot] = y;
    }
    return dst;
  }

  // Appends the pixels of image row y that equal max(a, b) (the pooled row), in x order.
  // The comparison is a vectorised pass into a byte mask; the mask is then read 8 bytes at a time
  // so that the (typically 99%) non-peak pixels cost no branch each.
  template <bool kNanAware>
  void emit(const T* image, int64_t y, const T* a, const T* b, std::vector<Candidate<T>>& out) {
    const T* row = image + y * width_;
    const int64_t base = y * width_, W = width_;
    uint8_t* mask = mask_.data();
    for (int64_t x = 0; x < W; ++x) {
      mask[x] = static_cast<uint8_t>(row[x] == max_of<T, kNanAware>(a[x], b[x]));
    }
    if constexpr (std::endian::native == std::endian::little) {
      for (int64_t x0 = 0; x0 < W; x0 += 8) {
        uint64_t word;
        std::memcpy(&word, mask + x0, 8);  // the mask is padded to a multiple of 8 with zeros
        while (word != 0) {
          const int64_t x = x0 + std::countr_zero(word) / 8;
          out.push_back({row[x], base + x});
          word &= word - 1;
        }
      }
    } else {
      for (int64_t x = 0; x < W; ++x) {
        if (mask[x]) out.push_back({row[x], base + x});
      }
    }
  }

  // Vertical van Herk over the padded rows j = 0 .. (y1 - y0) + 2 ry - 1 (image row
  // y0 - ry + j); output row i covers padded rows [i, i + k - 1].
  template <bool kNanAware>
  bool find_impl(const T* image, int64_t y0, int64_t y1, std::vector<Candidate<T>>& out) {
    std::fill(ring_tag_.begin(), ring_tag_.end(), -1);  // tags are rows of the previous image
    const int64_t W = width_, k = ky_, rows = y1 - y0, first = y0 - ry_;
    T* running = running_.data();
    for (int64_t start = 0; start < rows; start += k) {
      // start < rows implies the whole block [start, start + k) lies in the padded range.
      for (int64_t t = k - 1; t >= 0; --t) {
        const T* r = filtered_row<kNanAware>(image, first + start + t);
        if (r == nullptr) return false;
        T* h = block_.data() + t * W;
        if (t == k - 1) {
          std::copy(r, r + W, h);
        } else {
          const T* below = h + W;
          for (int64_t x = 0; x < W; ++x) h[x] = max_of<T, kNanAware>(below[x], r[x]);
        }
      }
      emit<kNanAware>(image, y0 + start, block_.data(), block_.data(), out);
      for (int64_t t = 1; t < k && start + t < rows; ++t) {
        const T* r = filtered_row<kNanAware>(image, first + start + k + t - 1);
        if (r == nullptr) return false;
        if (t == 1) {
          std::copy(r, r + W, running);
        } else {
          for (int64_t x = 0; x < W; ++x) running[x] = max_of<T, kNanAware>(running[x], r[x]);
        }
        emit<kNanAware>(image, y0 + start + t, block_.data() + t * W, running, out);
      }
    }
    return true;
  }

  int64_t height_, width_, rx_, ry_, kx_, ky_, ring_rows_;
  std::vector<T> padded_, prefix_, suffix_;  // one row, -inf padded by rx on both sides
  std::vector<T> ring_;                      // ring_rows_ horizontally filtered rows
  std::vector<int64_t> ring_tag_;            // image row held by each ring slot (-1: none)
  std::vector<T> block_;                     // suffix maxima of the current vertical block
  std::vector<T> running_;                   // running prefix max of the next vertical block
  std::vector<uint8_t> mask_;                // peak mask of one row
  std::vector<T> neg_inf_row_;
};

}  // namespace tusk
