// The CUDA backend's device rule (cuda/check.cuh, DeviceGuard): a context works from a thread
// other than its creator's, contexts on different GPUs work in turn from one thread, and creating
// a context leaves the caller's current device as it was. Skips, saying why, without a device
// (or, for the two-device cases, with one).
#include "host/backend/backend.hpp"
#include "tests/common/test_util.hpp"

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

// Weak: a build without the CUDA backend does not link the CUDA runtime (these tests skip there
// before calling them); with it, the runtime comes in with the library and defines both.
#pragma weak cudaGetDevice
#pragma weak cudaSetDevice

namespace {

int devices() { return almc::cuda_device_count(); }

#define REQUIRE_DEVICES(k) \
  if (devices() < (k)) GTEST_SKIP() << "needs " << (k) << " CUDA device(s), this machine has " << devices()

almc::Context cuda_context(int device) {
  almc_context_config c = almc_context_config_default();
  c.backend = ALMC_BACKEND_CUDA;
  c.device = device;
  return almc::Context(c);
}

// A tiny run (Gaussian prior, mask operator, graphs on) of a sampler made on ctx by the caller;
// run() is what the other thread calls.
struct Tiny {
  static constexpr int64_t d = 64;
  almc::Score prior;
  almc::Operator op;
  almc::Sampler s;
  explicit Tiny(const almc::Context& ctx) : prior(make_prior(ctx)), op(make_op(ctx)), s(ctx, prior, &op, config()) {
    almc_test::Lcg rng(5);
    s.set_measurement(rng.normals(static_cast<size_t>(d)));
  }
  std::vector<float> run() {
    s.run();
    return s.samples();
  }
  static almc::Score make_prior(const almc::Context& ctx) {
    almc_test::Lcg rng(3);
    return almc::Score::gaussian(ctx, rng.normals(d), std::vector<float>(d, 0.5f));
  }
  static almc::Operator make_op(const almc::Context& ctx) {
    std::vector<float> mask(d);
    for (int64_t j = 0; j < d; ++j) mask[j] = j % 3 ? 1.f : 0.f;
    return almc::Operator::mask(ctx, mask);
  }
  static almc_sampler_config config() {
    almc_sampler_config c = almc_test::quick_almc(16, 11, 0.3);
    c.use_graphs = 1;
    return c;
  }
};

// Everything on the calling thread, right after the context is made.
std::vector<float> reference(int device) {
  const auto ctx = cuda_context(device);
  return Tiny(ctx).run();
}

void expect_same(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  ASSERT_FALSE(a.empty());
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), a.size() * sizeof(float)));
}

// Made on this thread, run on another (which starts on device 0: with two devices, the context on
// device 1 is the case that needs the guard).
TEST(GpuDevices, ContextUsedFromAnotherThread) {
  REQUIRE_DEVICES(1);
  for (int dev = 0; dev < std::min(devices(), 2); ++dev) {
    const auto want = reference(dev);
    const auto ctx = cuda_context(dev);
    Tiny t(ctx);
    std::vector<float> first, second;
    std::string error;
    std::thread th([&] {
      try {
        first = t.run();
        second = t.run();  // replays the graphs the first run captured
      } catch (const std::exception& e) {
        error = e.what();
      }
    });
    th.join();
    ASSERT_EQ("", error) << "device " << dev;
    expect_same(want, first);
    expect_same(want, second);
  }
}

TEST(GpuDevices, TwoDevicesInTurnFromOneThread) {
  REQUIRE_DEVICES(2);
  const auto want0 = reference(0), want1 = reference(1);
  const auto c0 = cuda_context(0), c1 = cuda_context(1);
  Tiny t0(c0), t1(c1);
  for (int i = 0; i < 2; ++i) {
    expect_same(want1, t1.run());
    expect_same(want0, t0.run());
  }
}

TEST(GpuDevices, CreationLeavesTheCallersDevice) {
  REQUIRE_DEVICES(2);
  ASSERT_EQ(cudaSuccess, cudaSetDevice(0));
  {
    const auto ctx = cuda_context(1);
    int cur = -1;
    ASSERT_EQ(cudaSuccess, cudaGetDevice(&cur));
    EXPECT_EQ(0, cur);
    Tiny(ctx).run();
    ASSERT_EQ(cudaSuccess, cudaGetDevice(&cur));
    EXPECT_EQ(0, cur);  // the calls of a run leave it too
  }
  int cur = -1;
  ASSERT_EQ(cudaSuccess, cudaGetDevice(&cur));
  EXPECT_EQ(0, cur);  // and so does destruction
}

}  // namespace
