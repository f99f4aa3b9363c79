// Macros shared by the CUDA kernels and the CPU backend, which compiles the same functors as host
// code. Only this header decides how __host__ __device__ code is spelled.
#pragma once

#include <cuda_runtime_api.h>  // __host__ / __device__ for host compilers too

#include <cstdint>

#if defined(__CUDACC__)
// In CUDA translation units the shared functors run only inside kernels, and cuRAND's Philox
// functions are device-only there; host code compiles the same functors with the host compiler.
#define ALMC_HD __device__ __forceinline__
#define ALMC_HD_INLINE __device__ __forceinline__
#else
#define ALMC_HD inline
// Always inlined on the host too: for loops that must vectorise inside the CPU backend's
// per-instruction-set clones (a call out of a clone runs the baseline code).
#define ALMC_HD_INLINE inline __attribute__((always_inline))
#endif
