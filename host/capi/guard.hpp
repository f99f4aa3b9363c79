// Turns exceptions into statuses at the C boundary, keeping the message as a handle's last error.
#pragma once

#include <almc/almc.h>

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

inline void require(const void* p, const char* name) {
  if (!p) fail(ALMC_ERR_NULL_POINTER, name, " is NULL");
}

template <class T>
void require_struct(const T* cfg, const char* name) {
  require(cfg, name);
  if (cfg->struct_size != sizeof(T))
    fail(ALMC_ERR_STRUCT_SIZE, name, "->struct_size is ", cfg->struct_size, " but this library expects ", sizeof(T),
         " (initialise it with the matching *_default() function)");
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
