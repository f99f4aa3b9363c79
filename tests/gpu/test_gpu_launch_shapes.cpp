// Launch shapes of the CUDA backend that the other GPU tests do not reach, each against the CPU
// backend: the fused step's 2-D grid and the pooling step past gridDim.y's 65535 chains (the
// kernels stride over chains), the per-chain step at the edge of its shared-memory tables, and
// the dense operator's per-measurement GEMMs for every kind of chain range (one matrix, one
// strided-batched GEMM, one GEMM per measurement's run of rows). The CPU half runs first, device
// or not, so a broken setup fails everywhere. Not yet run on a device (none in the session that
// wrote it).
#include "cuda/launch_policy.hpp"
#include "host/backend/backend.hpp"
#include "tests/common/step_case.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

namespace {

using namespace almc;

// As tests/gpu/test_gpu_chain_step.cpp: one step apart, the backends differ by rounding only.
constexpr float kTolX = 2e-4f, kTolResp = 2e-3f;

void expect_same_step(const almc_test::StepCase& k, int64_t n) {
  SCOPED_TRACE(k.name() + " K " + std::to_string(k.K) + " n " + std::to_string(n));
  auto cpu = make_cpu_backend(2);
  const auto ref = almc_test::run_step(cpu.get(), k, n, 31);
  ASSERT_EQ(ref.x.size(), static_cast<size_t>(n * k.d));
  if (cuda_device_count() == 0) return;
  auto gpu = make_cuda_backend(0, nullptr);
  const auto out = almc_test::run_step(gpu.get(), k, n, 31);
  for (size_t i = 0; i < ref.x.size(); ++i)
    ASSERT_NEAR(ref.x[i], out.x[i], kTolX * (1 + std::fabs(ref.x[i]))) << "chain " << i / k.d << " coordinate " << i % k.d;
  for (size_t i = 0; i < ref.resp.size(); ++i)
    ASSERT_NEAR(ref.resp[i], out.resp[i], kTolResp) << "chain " << i / k.K << " responsibility " << i % k.K;
}

// 65576 chains: blockIdx.y strides over chains 65535 and up. Rows of 256 (float4 path) and 257
// (scalar path, rows not 16-byte aligned) take the 2-D launch; the GMM's responsibilities of rows
// of 256 are one block per chain, also striding along y; a 16 x 16 image pooled by 2 is 64 blocks
// per chain along x. 17M coordinates per case: only with a device (the CPU half alone takes ~8 s
// of one core, most of it making the inputs).
TEST(GpuLaunchShapes, StepsPastGridYTakeEveryChainOnce) {
  const int64_t n = kMaxGridY + 41;
  ASSERT_FALSE(fused_step_grid(n, 256, 256).flat);
  ASSERT_FALSE(fused_step_grid(n, 257, 256).flat);
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
  expect_same_step({kPriorGmm, kOpMask, false, 256}, n);
  expect_same_step({kPriorBuffer, kOpBlur, false, 257}, n);
  expect_same_step(almc_test::pool_case(kPriorGaussian, false, 1, 16, 16, 2), n);
}

// The per-chain step (rows up to 32) computes the level's tables in each block's shared memory
// when they fit 16 KiB (2 K d + K floats): K 63 at d 32 is 16380 bytes, the largest that does;
// K 64 (16640 bytes) goes through prior_tables first. Both against the CPU.
TEST(GpuLaunchShapes, ChainStepTablesAtTheSharedMemoryLimit) {
  for (int64_t K : {63, 64}) {
    almc_test::StepCase k{kPriorGmm, kOpIdentity, false, 32};
    k.K = K;
    expect_same_step(k, 300);
    k.op = kOpMask;
    k.d = 31;
    expect_same_step(k, 300);
  }
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
}

// op_forward / op_adjoint of a dense operator with one matrix per measurement (7 chains each)
// over chain ranges that start and end anywhere: whole measurements (one strided-batched GEMM),
// ranges that start or end inside a measurement (one GEMM per run of rows), a range inside one
// measurement, and a shared matrix.
TEST(GpuLaunchShapes, DenseOperatorOverAnyChainRange) {
  const int64_t m = 16, d = 40, cpm = 7, n_mats = 5;
  almc_test::Lcg rng(17);
  const std::vector<float> A = rng.normals(static_cast<size_t>(n_mats * m * d), 0.3);
  struct Range {
    int64_t chain0, n, mats;
  };
  const std::vector<Range> ranges = {{0, 21, n_mats}, {7, 14, n_mats}, {5, 20, n_mats}, {3, 2, n_mats},
                                     {9, 26, n_mats}, {4, 30, 1}};
  auto run = [&](Backend* be, const Range& r, const std::vector<float>& x, const std::vector<float>& v,
                 std::vector<float>& fwd, std::vector<float>& adj) {
    Buffer bA(be, 4 * A.size()), bx(be, 4 * x.size()), bv(be, 4 * v.size()), bf(be, 4 * r.n * m), ba(be, 4 * r.n * d);
    bA.upload(A.data(), bA.bytes());
    bx.upload(x.data(), bx.bytes());
    bv.upload(v.data(), bv.bytes());
    MatrixOp mat{bA.f(), m, d, r.mats};
    LocalOp op{};
    op.kind = kOpMatrix;
    be->op_forward(op, mat, bx.f(), bf.f(), r.n, d, m, r.chain0, cpm);
    be->op_adjoint(op, mat, bv.f(), ba.f(), r.n, d, m, r.chain0, cpm);
    be->check("dense operator");
    fwd.resize(static_cast<size_t>(r.n * m));
    adj.resize(static_cast<size_t>(r.n * d));
    bf.download(fwd.data(), bf.bytes());
    ba.download(adj.data(), ba.bytes());
  };
  auto cpu = make_cpu_backend(2);
  std::unique_ptr<Backend> gpu;
  for (const Range& r : ranges) {
    SCOPED_TRACE("chains " + std::to_string(r.chain0) + " + " + std::to_string(r.n) + ", " + std::to_string(r.mats) +
                 " matrices");
    const std::vector<float> x = rng.normals(static_cast<size_t>(r.n * d)), v = rng.normals(static_cast<size_t>(r.n * m));
    std::vector<float> f_cpu, a_cpu, f_gpu, a_gpu;
    run(cpu.get(), r, x, v, f_cpu, a_cpu);
    if (cuda_device_count() == 0) continue;
    if (!gpu) gpu = make_cuda_backend(0, nullptr);
    run(gpu.get(), r, x, v, f_gpu, a_gpu);
    // Sums of 40 or 16 products of O(0.3) terms: float rounding ~1e-6; a wrong matrix or row is O(1).
    for (size_t i = 0; i < f_cpu.size(); ++i) ASSERT_NEAR(f_cpu[i], f_gpu[i], 1e-4f) << "A x at " << i;
    for (size_t i = 0; i < a_cpu.size(); ++i) ASSERT_NEAR(a_cpu[i], a_gpu[i], 1e-4f) << "A^T v at " << i;
  }
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
}

}  // namespace
