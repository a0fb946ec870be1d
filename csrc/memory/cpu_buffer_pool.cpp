#include "memory/cpu_buffer_pool.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <sys/mman.h>
#include <torch/library.h>

#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace tusk {
namespace {

constexpr size_t kHugePage = size_t(2) << 20;

size_t round_up(size_t n, size_t to) { return (n + to - 1) / to * to; }

size_t cap_bytes() {
  static const size_t cap = [] {
    const char* env = std::getenv("TUSK_CPU_POOL_MB");
    const long mb = env ? std::atol(env) : 2048;
    return static_cast<size_t>(mb < 0 ? 0 : mb) << 20;
  }();
  return cap;
}

class BufferPool {
 public:
  // Returns a block of exactly `bytes` (a multiple of kHugePage) from the cache or a new one.
  void* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_.find(bytes);
      if (it != free_.end() && !it->second.empty()) {
        void* ptr = it->second.back();
        it->second.pop_back();
        cached_ -= bytes;
        in_use_ += bytes;
        report(ptr, static_cast<int64_t>(bytes));
        return ptr;
      }
    }
    void* ptr = nullptr;
    if (posix_memalign(&ptr, kHugePage, bytes) != 0 || ptr == nullptr) throw std::bad_alloc();
#ifdef MADV_HUGEPAGE
    madvise(ptr, bytes, MADV_HUGEPAGE);  // best effort: fewer, cheaper page faults
#endif
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ += bytes;
    report(ptr, static_cast<int64_t>(bytes));
    return ptr;
  }

  void give_back(void* ptr, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    in_use_ -= bytes;
    report(ptr, -static_cast<int64_t>(bytes));
    if (cached_ + bytes <= cap_bytes()) {
      free_[bytes].push_back(ptr);
      cached_ += bytes;
    } else {
      std::free(ptr);
    }
  }

  void release() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& entry : free_) {
      for (void* ptr : entry.second) std::free(ptr);
    }
    free_.clear();
    cached_ = 0;
  }

  std::vector<int64_t> stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return {static_cast<int64_t>(in_use_), static_cast<int64_t>(cached_)};
  }

 private:
  void report(void* ptr, int64_t delta) {
    if (c10::memoryProfilingEnabled()) {
      c10::reportMemoryUsageToProfiler(ptr, delta, in_use_, in_use_ + cached_, c10::Device(c10::kCPU));
    }
  }

  std::mutex mutex_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  size_t in_use_ = 0, cached_ = 0;
};

BufferPool& pool() {
  static BufferPool* instance = new BufferPool();  // never destroyed: frees may come at exit
  return *instance;
}

struct Block {
  void* ptr;
  size_t bytes;
};

void delete_block(void* ctx) {
  auto* block = static_cast<Block*>(ctx);
  pool().give_back(block->ptr, block->bytes);
  delete block;
}

class PooledAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t nbytes) override {
    if (nbytes < kPoolMinBytes) return c10::GetCPUAllocator()->allocate(nbytes);
    const size_t bytes = round_up(nbytes, kHugePage);
    void* ptr = pool().take(bytes);
    return {ptr, new Block{ptr, bytes}, &delete_block, c10::Device(c10::kCPU)};
  }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

PooledAllocator& allocator() {
  static PooledAllocator instance;
  return instance;
}

void cpu_pool_release() { pool().release(); }

std::vector<int64_t> cpu_pool_stats() { return pool().stats(); }

}  // namespace

at::Tensor empty_pooled(at::IntArrayRef sizes, at::ScalarType dtype) {
  return at::detail::empty_generic(sizes, &allocator(), c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   dtype, std::nullopt);
}

}  // namespace tusk

TORCH_LIBRARY_FRAGMENT(tusk, m) {
  m.def("cpu_pool_release() -> ()", &tusk::cpu_pool_release);
  m.def("cpu_pool_stats() -> int[]", &tusk::cpu_pool_stats);
}
