// Switching between the emulator's fibers: an execution context per fiber, made on a given stack.
//
// On x86-64 a hand-written switch saves and restores only what the System V ABI asks a callee
// to preserve (rbx, rbp, r12-r15, the stack pointer, the SSE and x87 control words): about 20
// instructions, where ucontext's swapcontext also makes a system call to save the signal mask,
// which dominated the emulator's run time. Elsewhere the portable ucontext functions are used.
#pragma once

#include <cstddef>
#include <cstdint>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace tusk_emu {

#if defined(__x86_64__)

struct Context {
  void* stack_pointer = nullptr;
};

extern "C" void tusk_emulation_switch_context(void** save_stack_pointer, void* load_stack_pointer);

// rdi = where to save the current stack pointer, rsi = the stack pointer to resume.
asm(R"(
  .text
  .p2align 4
  .type tusk_emulation_switch_context, @function
tusk_emulation_switch_context:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size tusk_emulation_switch_context, .-tusk_emulation_switch_context
)");

// Prepares `context` to start running `entry` (which must never return) on the stack
// [stack, stack + size): the frame tusk_emulation_switch_context pops, returning into `entry`.
inline void make_context(Context& context, void* stack, size_t size, void (*entry)()) {
  auto top = reinterpret_cast<uintptr_t>(static_cast<char*>(stack) + size) & ~uintptr_t(15);
  auto* slot = reinterpret_cast<uint64_t*>(top);
  *--slot = 0;                                    // entry's (never used) return address
  *--slot = reinterpret_cast<uint64_t>(entry);    // popped by `ret`: rsp is 8 mod 16 in entry
  for (int i = 0; i < 6; ++i) *--slot = 0;        // rbp, rbx, r12-r15
  *--slot = (uint64_t(0x037f) << 32) | 0x1f80u;  // x87 control word : MXCSR, their defaults
  context.stack_pointer = slot;
}

inline void switch_context(Context& from, Context& to) {
  tusk_emulation_switch_context(&from.stack_pointer, to.stack_pointer);
}

#else

struct Context {
  ucontext_t context;
};

inline void make_context(Context& context, void* stack, size_t size, void (*entry)()) {
  getcontext(&context.context);
  context.context.uc_stack.ss_sp = stack;
  context.context.uc_stack.ss_size = size;
  context.context.uc_link = nullptr;
  makecontext(&context.context, entry, 0);
}

inline void switch_context(Context& from, Context& to) { swapcontext(&from.context, &to.context); }

#endif

}  // namespace tusk_emu
