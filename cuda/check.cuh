// How CUDA and cuBLAS failures become almc errors: one mapping for the engine's backend and the
// ONNX kernels it launches (an allocation failure is ALMC_ERR_OUT_OF_MEMORY, anything else
// ALMC_ERR_CUDA), so every caller sees the same status codes.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "host/core/error.hpp"

namespace almc {

inline almc_status cuda_status(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? ALMC_ERR_OUT_OF_MEMORY : ALMC_ERR_CUDA;
}

// Throws the almc error for e (what: the call or kernel that failed).
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail(cuda_status(e), what, ": ", cudaGetErrorString(e));
}
inline void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(ALMC_ERR_CUDA, what, ": cuBLAS status ", static_cast<int>(s));
}

}  // namespace almc

#define ALMC_CUDA_TRY(expr)                                                                              \
  do {                                                                                                   \
    const cudaError_t err_ = (expr);                                                                     \
    if (err_ != cudaSuccess)                                                                             \
      ::almc::fail(::almc::cuda_status(err_), __FILE__, ":", __LINE__, ": ", #expr, ": ", cudaGetErrorString(err_)); \
  } while (0)

#define ALMC_CUBLAS_TRY(expr)                                                                            \
  do {                                                                                                   \
    const cublasStatus_t st_ = (expr);                                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
      ::almc::fail(ALMC_ERR_CUDA, __FILE__, ":", __LINE__, ": ", #expr, ": cuBLAS status ", static_cast<int>(st_)); \
  } while (0)
