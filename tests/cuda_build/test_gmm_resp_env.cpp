// ALMC_GPU_GMM_RESP (cuda/launch_policy.hpp) is read when a CUDA backend is made, before anything
// else: a value that is not a mode is refused with one line naming it, device or not.
#include "host/backend/backend.hpp"
#include "host/core/error.hpp"
#include "tests/common/step_case.hpp"

#include <gtest/gtest.h>

#include <string>

namespace {

TEST(GmmRespEnv, UnknownModeIsRefused) {
  const almc_test::EnvGuard env("ALMC_GPU_GMM_RESP", "blocks");
  try {
    almc::make_cuda_backend(0, nullptr);
    ADD_FAILURE() << "a CUDA backend was made with ALMC_GPU_GMM_RESP=blocks";
  } catch (const almc::Error& e) {
    EXPECT_EQ(e.status(), ALMC_ERR_INVALID_ARGUMENT) << e.what();
    EXPECT_NE(std::string(e.what()).find("ALMC_GPU_GMM_RESP=blocks"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line";
  }
}

}  // namespace
