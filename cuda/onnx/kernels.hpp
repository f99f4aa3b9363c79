// The CUDA backend's ONNX operators (op_kernels.hpp), implemented in cuda/onnx/kernels.cu and
// compiled only with ALMC_HAVE_CUDA. The CUDA backend makes one and owns it.
#pragma once
#include <memory>

#include "host/onnx/op_kernels.hpp"

namespace almc::onnx {

// Operators issued on `stream` (a cudaStream_t); GEMMs through `blas` (a cublasHandle_t already
// bound to that stream, with a fixed workspace so that nothing allocates during a capture). The
// result borrows both: the backend that owns them outlives it.
std::unique_ptr<OpKernels> make_cuda_op_kernels(void* stream, void* blas);

}  // namespace almc::onnx
