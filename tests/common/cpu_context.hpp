// A CPU context through the C API for tests (its creation checked), destroyed at scope end.
#pragma once

#include <almc/almc.h>
#include <gtest/gtest.h>

#include <string>

namespace almc_test {

struct CpuContext {
  almc_context_t h = nullptr;
  CpuContext() {
    almc_context_config c = almc_context_config_default();
    c.backend = ALMC_BACKEND_CPU;
    EXPECT_EQ(almc_context_create(&c, &h), ALMC_OK);
  }
  ~CpuContext() { almc_context_destroy(h); }
  CpuContext(const CpuContext&) = delete;
  CpuContext& operator=(const CpuContext&) = delete;
  std::string err() const { return almc_context_last_error(h); }
};

}  // namespace almc_test
