// Writing large outputs with non-temporal ("streaming") stores.
//
// An ordinary store first reads the destination cache line (read-for-ownership), so a kernel
// that writes a fresh output larger than the caches moves every output byte twice. Streaming
// stores skip that read and do not evict the inputs from the caches. Measured on the team
// machine (EPYC, 2 threads): alpha_composite's backward, which writes grad_rgb (29 MB at the
// CLEVR configuration) while reading rgb, ran ~25% faster. Outputs that fit in the caches are
// better written normally (the consumer then finds them there): callers stream only outputs of
// at least kStreamBytes.
//
// Usage: compute a row into an L1-resident scratch buffer, then write_row(dst, scratch, n,
// stream); call stream_fence() once after a task's last streaming store.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "simd.h"

namespace tusk {

constexpr int64_t kStreamBytes = int64_t(8) << 20;

template <typename T, typename S>
TUSK_INLINE_IN_CLONES void write_row(T* __restrict__ dst, const S* __restrict__ src, int64_t n,
                                     bool stream) {
#if defined(__SSE2__)
  if (stream) {
    if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
      int64_t p = 0;
      for (; p < n && (reinterpret_cast<uintptr_t>(dst + p) & 15u) != 0; ++p) dst[p] = src[p];
      for (; p + 4 <= n; p += 4) _mm_stream_ps(dst + p, _mm_loadu_ps(src + p));
      for (; p < n; ++p) dst[p] = src[p];
      return;
    } else if constexpr (std::is_same_v<T, double> && std::is_same_v<S, double>) {
      int64_t p = 0;
      for (; p < n && (reinterpret_cast<uintptr_t>(dst + p) & 15u) != 0; ++p) dst[p] = src[p];
      for (; p + 2 <= n; p += 2) _mm_stream_pd(dst + p, _mm_loadu_pd(src + p));
      for (; p < n; ++p) dst[p] = src[p];
      return;
    }
  }
#else
  (void)stream;
#endif
  for (int64_t p = 0; p < n; ++p) dst[p] = static_cast<T>(src[p]);
}

// Orders this thread's streaming stores before whatever follows (e.g. the end of the parallel
// region, after which other threads read the output).
TUSK_INLINE_IN_CLONES void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace tusk
