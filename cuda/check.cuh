// How CUDA and cuBLAS failures become almc errors: one mapping for the engine's backend and the
// ONNX kernels it launches (an allocation failure is ALMC_ERR_OUT_OF_MEMORY, anything else
// ALMC_ERR_CUDA), so every caller sees the same status codes.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "host/core/error.hpp"

#include <new>  // std::nothrow_t

namespace almc {

inline almc_status cuda_status(cudaError_t e) {
  return e == cudaErrorMemoryAllocation ? ALMC_ERR_OUT_OF_MEMORY : ALMC_ERR_CUDA;
}

// Throws the almc error for e (what: the call or kernel that failed). The runtime keeps the last
// error until it is read: it is read here, so that the next unrelated launch check does not
// report it as its own (a sticky error, a fault inside a kernel, stays whatever is done).
inline void cuda_check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();
    fail(cuda_status(e), what, ": ", cudaGetErrorString(e));
  }
}
inline void cublas_check(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) fail(ALMC_ERR_CUDA, what, ": cuBLAS status ", static_cast<int>(s));
}

// After a kernel launch: a refused launch (a bad configuration, no kernel image for the device, a
// stream of a device that is not current) fails here, named, instead of at some later check.
// cudaGetLastError is legal during stream capture.
inline void check_launch(const char* what) { cuda_check(cudaGetLastError(), what); }

// The device rule. CUDA's current device belongs to the calling host thread, and a backend's
// stream, memory, cuBLAS handle and graphs belong to the backend's device: every entry point that
// touches that device (each CudaBackend method that makes a CUDA or cuBLAS call, the ONNX op
// kernels' run_step / adapter_in / adapter_out, the backend's constructor and destructor) first
// takes a DeviceGuard on it. The device is made current only when it is not already (otherwise
// the guard costs one cudaGetDevice) and the caller's device is restored when the call returns or
// throws, so a context can be used from any thread, contexts on different GPUs can be used in
// turn from one thread, and the caller's own CUDA code never finds its device switched. Guards
// nest (an inner one finds the device current). cudaGetDevice and cudaSetDevice are legal while a
// stream is being captured, so code that runs during a graph capture may take guards too.
class DeviceGuard {
 public:
  // Throws the almc error when the device cannot be made current.
  explicit DeviceGuard(int device) {
    cudaError_t e = cudaGetDevice(&prev_);
    if (e == cudaSuccess && prev_ != device) {
      e = cudaSetDevice(device);
      switched_ = e == cudaSuccess;
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      fail(cuda_status(e), "making CUDA device ", device, " current: ", cudaGetErrorString(e));
    }
  }
  // For paths that must not throw (freeing, destruction): a failure is ignored and the call then
  // runs on whatever device is current.
  DeviceGuard(int device, std::nothrow_t) noexcept {
    if (cudaGetDevice(&prev_) != cudaSuccess || (prev_ != device && cudaSetDevice(device) != cudaSuccess)) {
      cudaGetLastError();
      return;
    }
    switched_ = prev_ != device;
  }
  // Restores the caller's device; errors are ignored here (cleared, so that they are not
  // reported later as the failure of some unrelated call).
  ~DeviceGuard() {
    if (switched_ && cudaSetDevice(prev_) != cudaSuccess) cudaGetLastError();
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = 0;
  bool switched_ = false;
};

}  // namespace almc

#define ALMC_CUDA_TRY(expr)                                                                              \
  do {                                                                                                   \
    const cudaError_t err_ = (expr);                                                                     \
    if (err_ != cudaSuccess) {                                                                           \
      cudaGetLastError(); /* read, as cuda_check does */                                                 \
      ::almc::fail(::almc::cuda_status(err_), __FILE__, ":", __LINE__, ": ", #expr, ": ", cudaGetErrorString(err_)); \
    }                                                                                                    \
  } while (0)

#define ALMC_CUBLAS_TRY(expr)                                                                            \
  do {                                                                                                   \
    const cublasStatus_t st_ = (expr);                                                                   \
    if (st_ != CUBLAS_STATUS_SUCCESS)                                                                    \
      ::almc::fail(ALMC_ERR_CUDA, __FILE__, ":", __LINE__, ": ", #expr, ": cuBLAS status ", static_cast<int>(st_)); \
  } while (0)
