// A caching pool for large CPU output buffers (gradients, dense maps).
//
// Why: glibc serves allocations above 32 MB with fresh mmap()s, so every large tensor an op
// returns is page-faulted in on first touch (~0.24 ms/MB on the team's machines: 12 ms for a
// CLEVR-sized [32,32,112,112] float gradient, against ~1 ms of actual work). Training allocates
// the same shapes every step, so keeping freed buffers and handing them out again removes that
// floor (measured 38 ms -> 2.5 ms for sample_descriptors fwd+bwd at the CLEVR config). New blocks
// are 2 MB aligned and marked MADV_HUGEPAGE, which also makes the first touch ~4x cheaper.
//
// Only buffers of at least kPoolMinBytes are pooled; smaller ones use the default allocator
// (glibc already reuses them). The cache is bounded (TUSK_CPU_POOL_MB, default 2048 MB of idle
// buffers) and can be emptied with torch.ops.tusk.cpu_pool_release(). Allocations and frees are
// reported to the PyTorch profiler like the default allocator's.
#pragma once

#include <ATen/ATen.h>

namespace tusk {

constexpr size_t kPoolMinBytes = size_t(8) << 20;

// An uninitialised contiguous CPU tensor; large ones come from the pool.
at::Tensor empty_pooled(at::IntArrayRef sizes, at::ScalarType dtype);

}  // namespace tusk
