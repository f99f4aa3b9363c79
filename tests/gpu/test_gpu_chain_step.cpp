// The CUDA backend's one-thread-per-chain step of short rows (chain_step_kernel, rows up to 32
// coordinates) and its multi-pass step of longer rows against the CPU backend, one step from the
// same inputs, every prior, operator, warm and annealing steps. The CPU half runs first, with or
// without a device, so a broken setup fails everywhere. Not yet run on a device.
#include "host/backend/backend.hpp"
#include "tests/common/step_case.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {

// One step apart: the GPU contracts multiplies and adds into FMAs and its expf differs from
// glibc's by an ulp or two, so x may differ by rounding (relative 1e-6 .. 1e-5 after one step,
// quadratic forms up to ~1e3 in the log weights); a wrong normal, stream, score or likelihood
// term moves x by h * O(1) = 1e-2 or by the noise, sqrt(2 h) * O(1) = 0.16.
constexpr float kTolX = 2e-4f, kTolResp = 2e-3f;

TEST(GpuChainStep, OneStepMatchesCpu) {
  auto cpu = almc::make_cpu_backend(2);
  std::unique_ptr<almc::Backend> gpu;
  int compared = 0;
  for (const almc_test::StepCase& k : almc_test::step_cases()) {
    const int64_t n = 300;
    const auto ref = almc_test::run_step(cpu.get(), k, n, 23);
    ASSERT_EQ(ref.x.size(), static_cast<size_t>(n * k.d));
    if (almc::cuda_device_count() == 0) continue;
    if (!gpu) gpu = almc::make_cuda_backend(0, nullptr);
    const auto out = almc_test::run_step(gpu.get(), k, n, 23);
    for (size_t i = 0; i < ref.x.size(); ++i)
      ASSERT_NEAR(ref.x[i], out.x[i], kTolX * (1 + std::fabs(ref.x[i]))) << k.name() << " at " << i;
    for (size_t i = 0; i < ref.resp.size(); ++i)
      ASSERT_NEAR(ref.resp[i], out.resp[i], kTolResp) << k.name() << " responsibility " << i;
    ++compared;
  }
  if (compared == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
}

}  // namespace
