// See cublas_loader.hpp. Host code only.
#include "cuda/cublas_loader.hpp"

#include "host/core/error.hpp"

#include <dlfcn.h>

#include <string>

namespace almc {
namespace {

template <class F>
void resolve(void* lib, const char* name, const std::string& file, F* out) {
  void* sym = dlsym(lib, name);
  if (!sym) fail(ALMC_ERR_CUDA, file, " has no ", name, " (a cuBLAS older than the headers almc was built with?)");
  *out = reinterpret_cast<F>(sym);
}

CublasApi load() {
  const std::string soname = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* lib = dlopen(soname.c_str(), RTLD_NOW | RTLD_LOCAL);
  std::string why = lib ? "" : dlerror();
  std::string file = soname;
#ifdef ALMC_CUDA_LIBDIR
  if (!lib) {
    file = std::string(ALMC_CUDA_LIBDIR) + "/" + soname;
    lib = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) why += std::string("; ") + dlerror();
  }
#endif
  if (!lib) fail(ALMC_ERR_CUDA, "cuBLAS could not be loaded (", why, ")");
  // Never closed: cuBLAS handles may live until the process ends.
  CublasApi api{};
  resolve(lib, "cublasCreate_v2", file, &api.create);
  resolve(lib, "cublasDestroy_v2", file, &api.destroy);
  resolve(lib, "cublasSetStream_v2", file, &api.set_stream);
  resolve(lib, "cublasSetWorkspace_v2", file, &api.set_workspace);
  resolve(lib, "cublasSetMathMode", file, &api.set_math_mode);
  resolve(lib, "cublasSgemm_v2", file, &api.sgemm);
  resolve(lib, "cublasSgemmStridedBatched", file, &api.sgemm_strided_batched);
  resolve(lib, "cublasGemmEx", file, &api.gemm_ex);
  return api;
}

}  // namespace

const CublasApi& cublas() {
  static const CublasApi api = load();  // thread-safe; a failed load is retried on the next call
  return api;
}

}  // namespace almc
