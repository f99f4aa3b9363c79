// The CUDA side of the ONNX executor as plain C++ (implemented in cuda/onnx/kernels.cu, compiled
// only with ALMC_HAVE_CUDA). Every function enqueues on `stream` and throws almc::onnx::Error.
#pragma once
#include <cstddef>
#include <cstdint>

#include "host/onnx/plan.hpp"

namespace almc::onnx::cuda {

// A cuBLAS handle with its own workspace (so calls are capturable), created at load.
void* blas_create();
void blas_destroy(void* blas);

void* device_alloc(size_t bytes);  // throws ALMC_ERR_OUT_OF_MEMORY
void device_free(void* p);
void copy_to_device(void* dst, const void* src, size_t bytes);    // synchronous
void copy_to_host(void* dst, const void* src, size_t bytes);      // synchronous
void memset_device(void* dst, size_t bytes);                      // synchronous
void synchronize(void* stream);
bool stream_capturing(void* stream);

// Streams and graphs for tests and benchmarks (the engine captures its own graphs).
void* stream_create();
void stream_destroy(void* stream);
void capture_begin(void* stream);
void* capture_end(void* stream);  // an instantiated graph
void graph_launch(void* graph, void* stream);
void graph_destroy(void* graph);

// One bound plan step.
void run_step(const Step& s, void* blas, bool allow_tf32, void* stream);

// x_net[i] = cx x[i] for i < count, and the level tensor (level_count values); level_dev may be
// null when the adapter is raw.
void adapter_in(const AdapterParams& a, const float* x, float* x_net, int64_t count, float* level, int64_t level_count,
                const almc_level_device* level_dev, void* stream);
// out[i] = c1 net[i] + c2 x[i].
void adapter_out(const AdapterParams& a, const float* net, const float* x, float* out, int64_t count,
                 const almc_level_device* level_dev, void* stream);

}  // namespace almc::onnx::cuda
