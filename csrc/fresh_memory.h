// First-touch cost of large fresh outputs.
//
// glibc serves allocations above its mmap threshold (at most 32 MiB) with a fresh mmap that is
// unmapped again on free, so every call that returns such a tensor pays one page fault per
// 4 KiB page when the kernel first writes it: measured ~0.24 ms/MiB on the team machine, i.e.
// ~12 ms for the 49 MiB splatting output of the CLEVR configuration, several times the kernel's
// own work. Asking for transparent huge pages on that region (one fault per 2 MiB) cuts this
// cost severalfold where THP is in "madvise" mode (the common default); PyTorch's allocator
// does the same for every allocation when THP_MEM_ALLOC_ENABLE=1 is set.
//
// Only outputs at or above kFreshOutputBytes are advised: those are private mmaps owned by the
// tensor and unmapped when it is freed, so the advice cannot outlive the output or touch memory
// that other allocations reuse. Elsewhere (other allocators, non-Linux) it is a no-op.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tusk {

constexpr int64_t kFreshOutputBytes = int64_t(32) << 20;

inline void advise_fresh_output(const at::Tensor& out) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const int64_t bytes = out.numel() * static_cast<int64_t>(out.element_size());
  if (bytes < kFreshOutputBytes) return;
  constexpr uintptr_t kHugePage = uintptr_t(2) << 20;
  const uintptr_t start = reinterpret_cast<uintptr_t>(out.data_ptr());
  const uintptr_t first = (start + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t last = (start + static_cast<uintptr_t>(bytes)) & ~(kHugePage - 1);
  if (last > first) {
    // Advice only: failure (e.g. THP disabled) leaves ordinary pages, which is still correct.
    (void)madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE);
  }
#else
  (void)out;
#endif
}

}  // namespace tusk
