// Internal hooks of the C API for parts of the library that build on the public score callback
// (the ONNX executor) and need a little more than the public header gives. Not installed.
#pragma once
#include <almc/almc.h>

#include <string>

extern "C" {
// Like almc_score_create_callback, but the score owns user_data: destroy(user_data) runs when the
// score is destroyed (also when creation fails after this call took ownership).
almc_status almc_score_create_callback_owned(almc_context_t ctx, int64_t d, almc_score_fn fn, void* user_data,
                                             unsigned flags, void (*destroy)(void*), const char* description,
                                             almc_score_t* out);
}

namespace almc {
// Record a failure as the context's last error; returns status for `return set_context_error(...)`.
almc_status set_context_error(almc_context_t ctx, almc_status status, const std::string& message);
// The backend a context runs on (CPU or CUDA, never AUTO); CPU for a null context.
almc_backend context_backend(almc_context_t ctx);
// The context's CUDA stream (cudaStream_t) or nullptr on the CPU backend.
void* context_stream(almc_context_t ctx);
// Log through the context's callback, if any.
void context_log(almc_context_t ctx, almc_log_level level, const std::string& message);
}  // namespace almc
