// One caller-provided workspace allocation carved into aligned sub-buffers (CUDA launchers).
#pragma once

#include <cstdint>

namespace tusk {

// Carves one workspace allocation into aligned sub-buffers: call take() in a fixed order with
// base = nullptr to size it, then again with the real base to get the pointers.
struct WorkspaceLayout {
  static constexpr uint64_t kAlign = 256;
  char* base;
  uint64_t used = 0;
  explicit WorkspaceLayout(void* base_ptr) : base(static_cast<char*>(base_ptr)) {}
  template <typename T>
  T* take(uint64_t count) {
    used = (used + kAlign - 1) / kAlign * kAlign;
    T* ptr = base ? reinterpret_cast<T*>(base + used) : nullptr;
    used += count * sizeof(T);
    return ptr;
  }
};

}  // namespace tusk
