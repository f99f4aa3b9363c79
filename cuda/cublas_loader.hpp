// cuBLAS, loaded when the CUDA backend first needs it (dlopen) instead of linked into every
// program: loading libcublas and libcublasLt costs ~0.3 s and ~200 MiB of resident memory (the
// relocations of their kernel images), which each almc process, test and Python import paid at
// start, on machines without a GPU too. The CUDA code calls cuBLAS through this table only.
#pragma once

#include <cublas_v2.h>

namespace almc {

struct CublasApi {
  decltype(&cublasCreate_v2) create;
  decltype(&cublasDestroy_v2) destroy;
  decltype(&cublasSetStream_v2) set_stream;
  decltype(&cublasSetWorkspace_v2) set_workspace;
  decltype(&cublasSetMathMode) set_math_mode;
  decltype(&cublasSgemm_v2) sgemm;
  decltype(&cublasSgemmStridedBatched) sgemm_strided_batched;
  // The exported cublasGemmEx (the header adds a C++ overload taking the compute type as a
  // cudaDataType; almc passes a cublasComputeType_t).
  cublasStatus_t (*gemm_ex)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int, const void*,
                            const void*, cudaDataType, int, const void*, cudaDataType, int, const void*, void*,
                            cudaDataType, int, cublasComputeType_t, cublasGemmAlgo_t);
};

// The table, loaded on the first call: libcublas.so.<major of the headers> from the library search
// path, else from the toolkit's library folder found at build time. Throws an almc error
// (ALMC_ERR_CUDA) naming the library and dlerror()'s reason when it cannot be loaded.
const CublasApi& cublas();

}  // namespace almc
