// Stand-ins used when the library is built without the CUDA backend (ALMC_CUDA=OFF or no nvcc).
#include "host/backend/backend.hpp"
#include "host/core/error.hpp"

#ifndef ALMC_HAVE_CUDA
namespace almc {
std::unique_ptr<Backend> make_cuda_backend(int, void*) {
  fail(ALMC_ERR_NO_DEVICE, "this build of almc has no CUDA backend (configured with ALMC_CUDA=OFF or without nvcc)");
}
int cuda_device_count() { return 0; }
}  // namespace almc
#endif
