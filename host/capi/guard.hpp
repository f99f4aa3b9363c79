// Turns exceptions into statuses at the C boundary, keeping the message as a handle's last error.
#pragma once

#include <almc/almc.h>

#include "host/capi/struct_sizes.hpp"
#include "host/core/error.hpp"

#include <cmath>
#include <new>
#include <string>

namespace almc {

template <class F>
almc_status guarded(std::string* last_error, F&& body) noexcept {
  try {
    body();
    return ALMC_OK;
  } catch (const Error& e) {
    if (last_error) *last_error = e.what();
    return e.status();
  } catch (const std::bad_alloc&) {
    if (last_error) *last_error = "out of host memory";
    return ALMC_ERR_OUT_OF_MEMORY;
  } catch (const std::exception& e) {
    if (last_error) *last_error = std::string("internal error: ") + e.what();
    return ALMC_ERR_INTERNAL;
  } catch (...) {
    if (last_error) *last_error = "internal error: unknown exception";
    return ALMC_ERR_INTERNAL;
  }
}

// The message of the last failure, on the calling thread, of a call that has no handle to keep it
// (almc_context_create, almc_chain_mean_std, almc_chain_block, almc_cuda_device_count,
// almc_snapshot_create): almc_context_last_error(NULL) returns it.
std::string* unbound_last_error();

inline void require(const void* p, const char* name) {
  if (!p) fail(ALMC_ERR_NULL_POINTER, name, " is NULL");
}

// A versioned input struct (struct_size, see almc.h) in this library's layout: the fields the
// caller's older layout lacks take their values from `defaults`.
template <class T>
T read_struct(const T* cfg, const T& defaults, const char* name) {
  require(cfg, name);
  const std::string why = struct_size_problem<T>(cfg->struct_size, name);
  if (!why.empty()) fail(ALMC_ERR_STRUCT_SIZE, why);
  return widen_struct(cfg, defaults);
}

// A versioned output struct: filled up to the caller's struct_size.
template <class T>
void write_struct(T* out, const T& value, const char* name) {
  require(out, name);
  const std::string why = struct_size_problem<T>(out->struct_size, name);
  if (!why.empty()) fail(ALMC_ERR_STRUCT_SIZE, why);
  narrow_struct(out, value);
}

// A file path: not NULL, not empty (an empty one failed as "<nothing>: cannot open: ...").
inline void require_path(const char* path, const char* name) {
  require(path, name);
  if (!*path) fail(ALMC_ERR_IO, name, " is empty: give the file's path");
}

inline void require_positive(int64_t v, const char* name) {
  if (v <= 0) fail(ALMC_ERR_INVALID_ARGUMENT, name, " = ", v, " must be positive");
}

inline void require_finite(const float* a, int64_t n, const char* name) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(a[i])) fail(ALMC_ERR_INVALID_ARGUMENT, name, "[", i, "] is not finite (", a[i], ")");
}

// Largest element count accepted for one array (2^40 floats: 4 TiB), far above any real run but
// low enough that byte counts never overflow.
constexpr int64_t kMaxElements = int64_t(1) << 40;

inline int64_t elements(int64_t a, int64_t b, const char* what) {
  const int64_t n = checked_mul(a, b, what);
  if (n > kMaxElements) fail(ALMC_ERR_INVALID_ARGUMENT, what, ": ", a, " x ", b, " elements is too large");
  return n;
}

}  // namespace almc
