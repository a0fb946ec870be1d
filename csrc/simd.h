// Function multi-versioning for the memory-bound, auto-vectorised CPU loops.
//
// The extension is compiled for the baseline x86-64 ISA (SSE2, 4 floats per vector) so that one
// wheel runs everywhere. TUSK_SIMD_CLONES additionally compiles a function for x86-64-v3
// (AVX2+FMA) and x86-64-v4 (AVX-512) and picks the best version once, at load time (GCC
// target_clones, an ifunc). Apply it to functions whose loops run over contiguous pixels; the
// inline helpers they call are compiled into each clone.
#pragma once

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && __GNUC__ >= 11
#define TUSK_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TUSK_SIMD_CLONES
#endif

// For helpers called from a TUSK_SIMD_CLONES function: a helper that is not inlined is compiled
// once, for the baseline ISA, and its loops lose the clone's wider vectors.
#if defined(__GNUC__)
#define TUSK_INLINE_IN_CLONES inline __attribute__((always_inline))
#else
#define TUSK_INLINE_IN_CLONES inline
#endif
