// Macros shared by the CUDA kernels and the CPU backend, which compiles the same functors as host
// code. Only this header decides how __host__ __device__ code is spelled.
#pragma once

#include <cuda_runtime_api.h>  // __host__ / __device__ for host compilers too

#include <cstdint>

#if defined(__CUDACC__)
#define ALMC_HD __host__ __device__ __forceinline__
#else
#define ALMC_HD inline
#endif
