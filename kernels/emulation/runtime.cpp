// Host emulation of CUDA kernel execution for tusk's kernels (see tusk_emulation/device.h).
//
// Every thread of a block is a fiber (context.h) with its own stack. The scheduler runs each
// runnable fiber until it parks (at __syncthreads or a warp collective) or returns; when none can
// run, it completes the warp collectives whose lanes have all arrived, else releases the block
// barrier when every live thread waits there, else reports a deadlock. Blocks run one after
// another. Nothing here is thread-safe across OS threads except by being thread_local: a launch
// runs entirely on the calling thread.
#include <sys/mman.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "context.h"
#include "tusk_emulation/device.h"

// Under AddressSanitizer (TUSK_EMULATION_SANITIZE=address, tests/cuda_emulation.py) the fibers
// tell ASan about every stack switch, and shared memory outside the slots in use is poisoned, so
// out-of-bounds reads and writes of global, shared and local memory are all reported.
#if defined(__SANITIZE_ADDRESS__)
#define TUSK_EMULATION_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TUSK_EMULATION_ASAN 1
#endif
#endif

#ifdef TUSK_EMULATION_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif

namespace tusk_emu {
namespace {

#ifdef TUSK_EMULATION_ASAN
constexpr size_t kSlotGap = 64;  // poisoned bytes after every shared slot
void poison(void* p, size_t bytes) { ASAN_POISON_MEMORY_REGION(p, bytes); }
void unpoison(void* p, size_t bytes) { ASAN_UNPOISON_MEMORY_REGION(p, bytes); }
void start_switch(void** fake_stack, const void* bottom, size_t size) {
  __sanitizer_start_switch_fiber(fake_stack, bottom, size);
}
void finish_switch(void* fake_stack, const void** bottom_old, size_t* size_old) {
  __sanitizer_finish_switch_fiber(fake_stack, bottom_old, size_old);
}
#else
constexpr size_t kSlotGap = 0;
void poison(void*, size_t) {}
void unpoison(void*, size_t) {}
void start_switch(void**, const void*, size_t) {}
void finish_switch(void*, const void**, size_t*) {}
#endif

constexpr int kWarpSize = 32;
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kSharedBytesPerBlock = 48 * 1024;  // the default limit without an opt-in
constexpr size_t kMaxSlots = 64;  // __shared__ declarations per kernel
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kStackInUse = 64 * 1024;  // deeper than any kernel's frames (see run_block)
constexpr size_t kGuardBytes = 4096;  // an inaccessible page below each stack: overflow faults

enum class State { kRunnable, kAtBarrier, kAtWarp, kDone };

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kSync: return "__syncwarp";
    case WarpOp::kShuffle: return "__shfl_sync";
    case WarpOp::kShuffleXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
  }
  return "?";
}

struct Fiber {
  Context context;
  void* stack = nullptr;
  void* fake_stack = nullptr;  // ASan's bookkeeping while the fiber is switched out
  ThreadContext builtins;
  State state = State::kDone;
  // The warp collective this lane waits in (state kAtWarp) and, once released, its result.
  WarpOp op = WarpOp::kSync;
  unsigned mask = 0;
  uint64_t value = 0;
  int lane_argument = 0;
  int width = kWarpSize;
  uint64_t result = 0;
};

struct SharedSlot {
  const void* tag;
  size_t offset;
};

// Stacks are mapped once per OS thread and reused by every launch.
class StackPool {
 public:
  ~StackPool() {
    for (void* base : bases_) munmap(base, kStackBytes + kGuardBytes);
  }
  void* stack(size_t index) {
    while (bases_.size() <= index) {
      void* base = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED) {
        std::fprintf(stderr, "tusk emulation: cannot map a fiber stack\n");
        std::abort();
      }
      mprotect(base, kGuardBytes, PROT_NONE);
      bases_.push_back(base);
    }
    return static_cast<char*>(bases_[index]) + kGuardBytes;
  }

 private:
  std::vector<void*> bases_;
};

struct Scheduler {
  // Per launch.
  const std::function<void()>* body = nullptr;
  dim3 grid, block;
  size_t dynamic_bytes = 0;
  // Per block.
  std::vector<Fiber> fibers;
  std::vector<int> order;
  Fiber* running = nullptr;
  Context home;
  void* home_fake_stack = nullptr;
  const void* home_bottom = nullptr;
  size_t home_size = 0;
  // Static slots from the bottom (with kSlotGap poisoned bytes after each under ASan), dynamic
  // shared memory at the top.
  alignas(128) unsigned char shared[kSharedBytesPerBlock + kMaxSlots * kSlotGap];
  size_t static_used = 0;
  std::vector<SharedSlot> slots;
  std::string fault;  // non-empty: the launch failed
  // Settings and counters.
  int schedule = 0;
  uint64_t seed = 0;
  std::mt19937_64 random;
  cudaError_t last_error = cudaSuccess;
  std::string error_message;
  int64_t launches = 0;
  StackPool stacks;
};

thread_local Scheduler* g_scheduler = nullptr;

Scheduler& scheduler() {
  if (g_scheduler == nullptr) g_scheduler = new Scheduler();  // lives as long as its thread
  return *g_scheduler;
}

Fiber& running_fiber() {
  Scheduler& s = scheduler();
  if (s.running == nullptr) {
    std::fprintf(stderr, "tusk emulation: device code called outside a kernel launch\n");
    std::abort();
  }
  return *s.running;
}

int linear_index(const ThreadContext& t) {
  return static_cast<int>(t.thread_idx.x + t.block_dim.x * (t.thread_idx.y + t.block_dim.y * t.thread_idx.z));
}

// Parks the running fiber and returns to the scheduler; resumes when the scheduler switches back.
// `final`: the fiber will never resume (its stack is reused by the next block).
void park(bool final = false) {
  Scheduler& s = scheduler();
  Fiber* self = s.running;
  start_switch(final ? nullptr : &self->fake_stack, s.home_bottom, s.home_size);
  switch_context(self->context, s.home);
  finish_switch(self->fake_stack, nullptr, nullptr);
}

// Runs fiber `f` until it parks or finishes.
void resume(Scheduler& s, Fiber& f) {
  s.running = &f;
  start_switch(&s.home_fake_stack, f.stack, kStackBytes);
  switch_context(s.home, f.context);
  finish_switch(s.home_fake_stack, nullptr, nullptr);
  s.running = nullptr;
}

// Records the first fault of the launch and abandons the running fiber (its stack is reused).
[[noreturn]] void fail(const std::string& message) {
  Scheduler& s = scheduler();
  if (s.fault.empty()) {
    const ThreadContext& t = running_fiber().builtins;
    s.fault = "block (" + std::to_string(t.block_idx.x) + "," + std::to_string(t.block_idx.y) + "," +
              std::to_string(t.block_idx.z) + ") thread (" + std::to_string(t.thread_idx.x) + "," +
              std::to_string(t.thread_idx.y) + "," + std::to_string(t.thread_idx.z) + "): " + message;
  }
  running_fiber().state = State::kDone;
  park(true);
  std::abort();  // never resumed
}

void fiber_main() {
  Scheduler& s = scheduler();
  finish_switch(nullptr, &s.home_bottom, &s.home_size);  // learns the scheduler's stack
  (*s.body)();
  s.running->state = State::kDone;
  park(true);
  std::abort();  // never resumed
}

std::string lanes_text(unsigned mask) {
  char text[16];
  std::snprintf(text, sizeof(text), "0x%08x", mask);
  return text;
}

// Completes the warp collectives whose lanes have all arrived. Returns true if any completed.
bool release_warp_collectives(Scheduler& s) {
  bool released = false;
  const int count = static_cast<int>(s.fibers.size());
  for (int first = 0; first < count; first += kWarpSize) {
    const int lanes = std::min(kWarpSize, count - first);
    unsigned handled = 0;
    for (int lane = 0; lane < lanes; ++lane) {
      Fiber& leader = s.fibers[first + lane];
      if (leader.state != State::kAtWarp || (handled >> lane & 1u)) continue;
      const unsigned mask = leader.mask;
      bool complete = true;
      for (int other = 0; other < kWarpSize; ++other) {
        if (!(mask >> other & 1u)) continue;
        if (other >= lanes) {
          s.fault = std::string(op_name(leader.op)) + " with mask " + lanes_text(mask) + " in warp " +
                    std::to_string(first / kWarpSize) + ", which has only " + std::to_string(lanes) +
                    " lanes";
          return false;
        }
        const Fiber& f = s.fibers[first + other];
        if (f.state == State::kDone) {
          s.fault = std::string(op_name(leader.op)) + " with mask " + lanes_text(mask) + " in warp " +
                    std::to_string(first / kWarpSize) + ": lane " + std::to_string(other) +
                    " exited without joining it";
          return false;
        }
        if (f.state != State::kAtWarp) {
          complete = false;  // still at a block barrier: a deadlock unless something else moves
          continue;
        }
        if (f.mask != mask || f.op != leader.op || f.width != leader.width) {
          s.fault = "lanes " + std::to_string(lane) + " and " + std::to_string(other) + " of warp " +
                    std::to_string(first / kWarpSize) + " disagree: " + op_name(leader.op) + " mask " +
                    lanes_text(mask) + " vs " + op_name(f.op) + " mask " + lanes_text(f.mask);
          return false;
        }
      }
      handled |= mask;
      if (!complete) continue;
      if (leader.width != kWarpSize) {
        s.fault = std::string(op_name(leader.op)) + " with width " + std::to_string(leader.width) +
                  " (the emulator supports whole warps only)";
        return false;
      }
      unsigned ballot = 0;
      for (int other = 0; other < kWarpSize; ++other) {
        if ((mask >> other & 1u) && s.fibers[first + other].value != 0) ballot |= 1u << other;
      }
      for (int other = 0; other < kWarpSize; ++other) {
        if (!(mask >> other & 1u)) continue;
        Fiber& f = s.fibers[first + other];
        int source = other;
        if (f.op == WarpOp::kShuffle) source = f.lane_argument & (kWarpSize - 1);
        if (f.op == WarpOp::kShuffleXor) source = other ^ f.lane_argument;
        if (source < 0 || source >= kWarpSize || !(mask >> source & 1u)) {
          s.fault = std::string(op_name(f.op)) + " in warp " + std::to_string(first / kWarpSize) +
                    ": lane " + std::to_string(other) + " reads lane " + std::to_string(source) +
                    ", which is not in the mask " + lanes_text(mask);
          return false;
        }
        f.result = f.op == WarpOp::kBallot ? ballot : s.fibers[first + source].value;
        f.state = State::kRunnable;
      }
      released = true;
    }
  }
  return released;
}

std::string deadlock_text(const Scheduler& s) {
  int at_barrier = 0, at_warp = 0, done = 0;
  for (const Fiber& f : s.fibers) {
    at_barrier += f.state == State::kAtBarrier;
    at_warp += f.state == State::kAtWarp;
    done += f.state == State::kDone;
  }
  return "deadlock: " + std::to_string(at_barrier) + " threads wait at __syncthreads, " +
         std::to_string(at_warp) + " at a warp collective whose lanes never all arrive, " +
         std::to_string(done) + " have exited";
}

void run_block(Scheduler& s, uint3 block_idx) {
  const int count = static_cast<int>(s.block.x * s.block.y * s.block.z);
  s.fibers.assign(count, Fiber());
  unpoison(s.shared, sizeof(s.shared));
  std::memset(s.shared, 0xff, sizeof(s.shared));
  poison(s.shared, sizeof(s.shared));
  s.static_used = 0;
  s.slots.clear();
  for (int i = 0; i < count; ++i) {
    Fiber& f = s.fibers[i];
    f.builtins.thread_idx = uint3{i % s.block.x, (i / s.block.x) % s.block.y, i / (s.block.x * s.block.y)};
    f.builtins.block_idx = block_idx;
    f.builtins.block_dim = s.block;
    f.builtins.grid_dim = s.grid;
    f.state = State::kRunnable;
    f.stack = s.stacks.stack(i);
    // Frames of the previous block's fibers that never returned (faults, final parks) leave their
    // poison on the reused stack: clear it where frames live.
    unpoison(static_cast<char*>(f.stack) + kStackBytes - kStackInUse, kStackInUse);
    make_context(f.context, f.stack, kStackBytes, fiber_main);
  }
  s.order.resize(count);
  std::iota(s.order.begin(), s.order.end(), 0);
  if (s.schedule == 1) std::reverse(s.order.begin(), s.order.end());
  for (;;) {
    if (s.schedule == 2) std::shuffle(s.order.begin(), s.order.end(), s.random);
    for (int i : s.order) {
      Fiber& f = s.fibers[i];
      if (f.state != State::kRunnable) continue;
      resume(s, f);
      if (!s.fault.empty()) return;
    }
    if (std::all_of(s.fibers.begin(), s.fibers.end(), [](const Fiber& f) { return f.state == State::kDone; })) {
      return;
    }
    if (release_warp_collectives(s)) continue;
    if (!s.fault.empty()) return;
    const bool barrier = std::all_of(s.fibers.begin(), s.fibers.end(), [](const Fiber& f) {
      return f.state == State::kDone || f.state == State::kAtBarrier;
    });
    if (!barrier) {
      s.fault = deadlock_text(s);
      return;
    }
    for (Fiber& f : s.fibers) {
      if (f.state == State::kAtBarrier) f.state = State::kRunnable;
    }
  }
}

void set_error(Scheduler& s, cudaError_t error, const std::string& message) {
  s.last_error = error;
  s.error_message = message;
}

std::string dims_text(dim3 d) {
  return "(" + std::to_string(d.x) + "," + std::to_string(d.y) + "," + std::to_string(d.z) + ")";
}

}  // namespace

const ThreadContext& current_thread() { return running_fiber().builtins; }

void sync_block() {
  Fiber& self = running_fiber();
  self.state = State::kAtBarrier;
  park();
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int lane_argument, int width) {
  Fiber& self = running_fiber();
  const int lane = linear_index(self.builtins) % kWarpSize;
  if (!(mask >> lane & 1u)) {
    fail(std::string(op_name(op)) + " from lane " + std::to_string(lane) + " that is not in its mask " +
         lanes_text(mask));
  }
  self.op = op;
  self.mask = mask;
  self.value = value;
  self.lane_argument = lane_argument;
  self.width = width;
  self.state = State::kAtWarp;
  park();
  return self.result;
}

void* shared_slot(const void* tag, size_t bytes, size_t alignment) {
  Scheduler& s = scheduler();
  running_fiber();
  for (const SharedSlot& slot : s.slots) {
    if (slot.tag == tag) return s.shared + slot.offset;
  }
  const size_t offset = (s.static_used + alignment - 1) / alignment * alignment;
  const size_t used = offset + bytes - s.slots.size() * kSlotGap;  // what the GPU would allocate
  if (used + s.dynamic_bytes > kSharedBytesPerBlock) {
    fail("static (" + std::to_string(used) + " bytes) plus dynamic (" + std::to_string(s.dynamic_bytes) +
         " bytes) shared memory exceed the 48 KiB per block");
  }
  if (s.slots.size() == kMaxSlots) fail("more than 64 __shared__ declarations in one kernel");
  s.static_used = offset + bytes + kSlotGap;
  s.slots.push_back(SharedSlot{tag, offset});
  unpoison(s.shared + offset, bytes);
  return s.shared + offset;
}

void* dynamic_shared() {
  Scheduler& s = scheduler();
  running_fiber();
  // At the top of the block's shared memory, 128-byte aligned; static slots grow from the bottom.
  const size_t offset = (sizeof(s.shared) - s.dynamic_bytes) / 128 * 128;
  unpoison(s.shared + offset, s.dynamic_bytes);
  return s.shared + offset;
}

void check_launch_bounds(long long max_threads) {
  const Scheduler& s = scheduler();
  const long long threads = static_cast<long long>(s.block.x) * s.block.y * s.block.z;
  if (threads > max_threads) {
    fail("launched with " + std::to_string(threads) + " threads per block, above its __launch_bounds__(" +
         std::to_string(max_threads) + ")");
  }
}

void run_grid(const LaunchConfig& config, const std::function<void()>& body) {
  Scheduler& s = scheduler();
  const uint64_t threads = static_cast<uint64_t>(config.block.x) * config.block.y * config.block.z;
  const uint64_t blocks = static_cast<uint64_t>(config.grid.x) * config.grid.y * config.grid.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || config.block.z > 64 || blocks == 0 ||
      config.grid.x > 0x7fffffffu || config.grid.y > 65535 || config.grid.z > 65535) {
    set_error(s, cudaErrorInvalidConfiguration,
              "invalid launch configuration: grid " + dims_text(config.grid) + ", block " + dims_text(config.block));
    return;
  }
  if (config.shared_bytes > kSharedBytesPerBlock) {
    set_error(s, cudaErrorInvalidValue,
              "launch asks for " + std::to_string(config.shared_bytes) +
                  " bytes of dynamic shared memory, above the 48 KiB per block");
    return;
  }
  s.body = &body;
  s.grid = config.grid;
  s.block = config.block;
  s.dynamic_bytes = config.shared_bytes;
  s.fault.clear();
  s.random.seed(s.seed);
  ++s.launches;
  // Blocks follow the schedule too: a kernel that reads what another block of the same launch
  // writes (a race on the GPU, where blocks run in any order) gives schedule-dependent results.
  std::vector<uint64_t> block_order(blocks);
  std::iota(block_order.begin(), block_order.end(), uint64_t(0));
  if (s.schedule == 1) std::reverse(block_order.begin(), block_order.end());
  if (s.schedule == 2) std::shuffle(block_order.begin(), block_order.end(), s.random);
  for (const uint64_t linear : block_order) {
    const unsigned x = static_cast<unsigned>(linear % config.grid.x);
    const unsigned y = static_cast<unsigned>(linear / config.grid.x % config.grid.y);
    const unsigned z = static_cast<unsigned>(linear / (static_cast<uint64_t>(config.grid.x) * config.grid.y));
    run_block(s, uint3{x, y, z});
    if (!s.fault.empty()) break;
  }
  s.fibers.clear();
  s.body = nullptr;
  if (!s.fault.empty()) {
    set_error(s, cudaErrorLaunchFailure, "kernel fault: " + s.fault + " (grid " + dims_text(config.grid) +
                                             ", block " + dims_text(config.block) + ")");
  }
}

}  // namespace tusk_emu

using tusk_emu::scheduler;

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t error = scheduler().last_error;
  scheduler().last_error = cudaSuccess;
  return error;
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorLaunchFailure: return "unspecified launch failure";
  }
  return "unknown error";
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t bytes,
                                                                   cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (pointer == nullptr) return cudaErrorInvalidValue;
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

__attribute__((visibility("default"))) void tusk_emulation_set_schedule(int order, uint64_t seed) {
  scheduler().schedule = order;
  scheduler().seed = seed;
}

__attribute__((visibility("default"))) const char* tusk_emulation_error_message(void) {
  return scheduler().error_message.c_str();
}

__attribute__((visibility("default"))) void tusk_emulation_clear_error(void) {
  scheduler().error_message.clear();
  scheduler().last_error = cudaSuccess;
}

__attribute__((visibility("default"))) int64_t tusk_emulation_launches(void) { return scheduler().launches; }

}  // extern "C"
