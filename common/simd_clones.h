// PS_SIMD_CLONES: the function it marks is built twice, for any x86-64 CPU and for
// x86-64-v4 (AVX-512), and the dynamic loader binds the clone the CPU can run (GCC's
// target_clones, through an ifunc). For the data path's elementwise loops, which GCC
// vectorises either way: 64-bit multiplies and 512-bit lanes make the second several
// times faster where the data is in cache. The two clones must compute the same
// results: mark only integer work, or float work built with -ffp-contract=off.
//
// Empty under TSan, whose instrumentation of the ifunc resolver runs before TSan is set
// up and crashes, and with clang (the fuzz build), and off x86-64.
#ifndef PS_COMMON_SIMD_CLONES_H_
#define PS_COMMON_SIMD_CLONES_H_

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    !defined(__SANITIZE_THREAD__)
#define PS_SIMD_CLONES __attribute__((target_clones("default", "arch=x86-64-v4")))
#else
#define PS_SIMD_CLONES
#endif

#endif  // PS_COMMON_SIMD_CLONES_H_
