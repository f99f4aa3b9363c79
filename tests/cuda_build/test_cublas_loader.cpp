// cuBLAS is loaded when the CUDA backend first needs it (cuda/cublas_loader.hpp), not when the
// program starts. Needs the CUDA build, not a device: every symbol almc calls is resolved here.
#include "cuda/cublas_loader.hpp"
#include "host/backend/backend.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

namespace {

bool mapped(const std::string& lib) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(lib) != std::string::npos) return true;
  return false;
}

TEST(CublasLoader, LoadsOnFirstUseOnly) {
  // With a device, an earlier test in this process may have made a CUDA backend already.
  if (almc::cuda_device_count() == 0) EXPECT_FALSE(mapped("libcublas")) << "cuBLAS was loaded at start";
  const almc::CublasApi& api = almc::cublas();  // an almc error if the library or a symbol is missing
  EXPECT_TRUE(api.create && api.destroy && api.set_stream && api.set_workspace && api.set_math_mode && api.sgemm &&
              api.sgemm_strided_batched && api.gemm_ex);
  EXPECT_TRUE(mapped("libcublas.so"));
  EXPECT_EQ(&api, &almc::cublas());
}

}  // namespace
