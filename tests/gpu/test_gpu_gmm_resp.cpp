// The CUDA backend's GMM responsibilities of long rows (cuda/launch_policy.hpp's plan: one block
// per chain, or rows cut into slices whose partial quadratic forms a second kernel sums), in both
// modes of ALMC_GPU_GMM_RESP, against a double-precision reference computed here from the raw
// prior; each chain's result must not depend on the batch (bitwise), also past gridDim.y's 65535
// chains. The CPU half (the CPU backend against the same reference, and the reference's power to
// see a dropped slice) runs first, device or not. Not yet run on a device (none in the session that
// wrote it).
#include "cuda/launch_policy.hpp"
#include "host/backend/backend.hpp"
#include "host/core/error.hpp"
#include "tests/common/step_case.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

using namespace almc;

// A K-component prior whose components differ by +-2/sqrt(d) per coordinate, so that the
// quadratic forms of a chain differ by O(1) (responsibilities well inside (0, 1), where rounding
// and missing coordinates show) while each stays small (x within ~0.005 of its component).
struct Problem {
  int64_t n = 0, d = 0, K = 0;
  float t = 0.3f;
  std::vector<float> mu, var, log_w, x;
};

Problem make_problem(int64_t n, int64_t d, int64_t K, float x_noise, bool with_x) {
  Problem P;
  P.n = n;
  P.d = d;
  P.K = K;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal;
  std::uniform_real_distribution<float> unif(0.f, 1.f);
  std::vector<float> base(static_cast<size_t>(d));
  P.var.assign(static_cast<size_t>(K * d), 0.f);
  P.mu.assign(static_cast<size_t>(K * d), 0.f);
  const float step = 2.f / std::sqrt(static_cast<float>(d));
  for (int64_t j = 0; j < d; ++j) {
    base[j] = with_x ? normal(rng) : 0.f;
    const float v = 0.9f + 0.2f * unif(rng);  // around 1: log-determinants stay small (float softmax)
    for (int64_t k = 0; k < K; ++k) P.var[k * d + j] = v;
  }
  for (int64_t i = 0; i < K * d; ++i) P.mu[i] = base[i % d] + (unif(rng) < 0.5f ? step : -step);
  double z = 0;
  std::vector<double> w(static_cast<size_t>(K));
  for (auto& v : w) z += (v = 1.0 + unif(rng));
  for (int64_t k = 0; k < K; ++k) P.log_w.push_back(static_cast<float>(std::log(w[k] / z)));
  if (with_x) {
    // Chain c near component c % K at the level: x = e^{-t} mu_k + noise.
    const float a = std::exp(-P.t);
    P.x.resize(static_cast<size_t>(n * d));
    for (int64_t c = 0; c < n; ++c)
      for (int64_t j = 0; j < d; ++j) P.x[c * d + j] = a * P.mu[(c % K) * d + j] + x_noise * normal(rng);
  }
  return P;
}

// Responsibilities in double from the raw prior (ALGORITHMS.md T4): r_k proportional to
// w_k |S_k|^{-1/2} exp(-q_k / 2), q_k = sum_j (x_j - e^{-t} mu_kj)^2 / S_kj, over the first
// d_used coordinates of each row.
std::vector<double> reference(const Problem& P, const float* rows, int64_t n, int64_t d_used) {
  const double a = std::exp(-static_cast<double>(P.t)), e2 = a * a;
  std::vector<double> S(static_cast<size_t>(P.K * P.d)), logdet(static_cast<size_t>(P.K), 0.0);
  for (int64_t k = 0; k < P.K; ++k)
    for (int64_t j = 0; j < d_used; ++j) logdet[k] += std::log(S[k * P.d + j] = e2 * P.var[k * P.d + j] + 1 - e2);
  std::vector<double> out(static_cast<size_t>(n * P.K));
  for (int64_t c = 0; c < n; ++c) {
    std::vector<double> l(static_cast<size_t>(P.K));
    double mx = -INFINITY;
    for (int64_t k = 0; k < P.K; ++k) {
      double q = 0;
      for (int64_t j = 0; j < d_used; ++j) {
        const double e = rows[c * P.d + j] - a * P.mu[k * P.d + j];
        q += e * e / S[k * P.d + j];
      }
      l[k] = P.log_w[k] - 0.5 * (q + logdet[k]);
      mx = std::max(mx, l[k]);
    }
    double z = 0;
    for (double& v : l) z += (v = std::exp(v - mx));
    for (int64_t k = 0; k < P.K; ++k) out[c * P.K + k] = l[k] / z;
  }
  return out;
}

StepScalars level(float t) {
  StepScalars cur{};
  cur.t = t;
  cur.kind = kStepAnneal;
  cur.aux = -1;
  return cur;
}

// Floats of guard values after the responsibilities and the workspace, checked after the pass.
constexpr int64_t kGuard = 64;
constexpr float kGuardValue = -12345.f;

// The backend's responsibilities of `rows` rows of x (backend memory) with P's prior at P.t,
// with the workspace the backend asks for; both buffers are followed by guard values that must
// come back untouched.
std::vector<float> run_resp(Backend* be, const Problem& P, const float* x_dev, int64_t rows) {
  auto upload = [&](const std::vector<float>& v) {
    Buffer b(be, 4 * v.size());
    b.upload(v.data(), b.bytes());
    return b;
  };
  Buffer bmu = upload(P.mu), bvar = upload(P.var), blw = upload(P.log_w);
  const GmmPrior g{bmu.f(), bvar.f(), blw.f(), P.K};
  const PriorTableStorage tables(be, g, P.d);
  const StepScalars cur = level(P.t);
  Buffer bcur(be, sizeof cur);
  bcur.upload(&cur, sizeof cur);
  const int64_t nr = rows * P.K, nw = static_cast<int64_t>(be->gmm_resp_work_bytes(rows, P.d, P.K) / 4);
  Buffer resp = upload(std::vector<float>(static_cast<size_t>(nr + kGuard), kGuardValue));
  Buffer work = upload(std::vector<float>(static_cast<size_t>(nw + kGuard), kGuardValue));
  be->prior_tables(g, P.d, bcur.get<StepScalars>(), tables.view());
  be->gmm_responsibilities(tables.view(), x_dev, rows, P.d, bcur.get<StepScalars>(), resp.f(), nw ? work.f() : nullptr);
  be->check("gmm responsibilities");
  std::vector<float> out(static_cast<size_t>(nr + kGuard)), w(static_cast<size_t>(nw + kGuard));
  resp.download(out.data(), resp.bytes());
  work.download(w.data(), work.bytes());
  for (int64_t i = 0; i < kGuard; ++i) {
    EXPECT_EQ(out[nr + i], kGuardValue) << "written past the responsibilities, at " << i;
    EXPECT_EQ(w[nw + i], kGuardValue) << "written past the workspace, at " << i;
  }
  out.resize(static_cast<size_t>(nr));
  return out;
}

std::vector<float> run_resp_host_rows(Backend* be, const Problem& P, int64_t row0, int64_t rows) {
  Buffer bx(be, 4 * static_cast<size_t>(rows * P.d));
  bx.upload(P.x.data() + row0 * P.d, bx.bytes());
  return run_resp(be, P, bx.f(), rows);
}

double max_abs_diff(const std::vector<float>& got, const std::vector<double>& want) {
  double m = 0;
  for (size_t i = 0; i < want.size(); ++i) m = std::max(m, std::fabs(got[i] - want[i]));
  return m;
}

// The quadratic forms are ~7 (d 65869 x 0.005^2 / S plus O(1) between components) and the
// log-determinants ~10 (variances around 1), so float rounding moves a responsibility by ~1e-6 (the
// CPU backend: 1.0e-6 here); a row that misses its last 333 coordinates moves them by ~3e-3
// (asserted below, 2.9e-3 here), a missing slice by far more.
constexpr double kTol = 2e-5;

TEST(GpuGmmResp, FewChainsLongRowsBothModesMatchReferenceAndBatch) {
  const int64_t n = 16, d = 65869, K = 10;  // 33 slices of 2048 at K 10; two passes of 8 components
  const Problem P = make_problem(n, d, K, 0.005f, true);
  const std::vector<double> ref = reference(P, P.x.data(), n, d);
  // The reference sees a row that misses its tail.
  const std::vector<double> ref_short = reference(P, P.x.data(), n, d - 333);
  double tail = 0;
  for (size_t i = 0; i < ref.size(); ++i) tail = std::max(tail, std::fabs(ref[i] - ref_short[i]));
  ASSERT_GT(tail, 10 * kTol) << "the problem does not show a missing tail";
  // CPU half.
  auto cpu = make_cpu_backend(2);
  const std::vector<float> on_cpu = run_resp_host_rows(cpu.get(), P, 0, n);
  EXPECT_LT(max_abs_diff(on_cpu, ref), kTol) << "CPU backend";
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";

  std::vector<float> by_mode[2];
  for (const char* mode : {"split", "block"}) {
    SCOPED_TRACE(mode);
    const almc_test::EnvGuard env("ALMC_GPU_GMM_RESP", mode);
    auto gpu = make_cuda_backend(0, nullptr);
    EXPECT_NE(gpu->device_name().find(std::string("GMM responsibilities ") + mode), std::string::npos)
        << gpu->device_name();
    const bool split = std::strcmp(mode, "split") == 0;
    EXPECT_EQ(gpu->gmm_resp_work_bytes(n, d, K), split ? size_t(4) * n * 33 * K : size_t(0));
    const std::vector<float> all = run_resp_host_rows(gpu.get(), P, 0, n);
    EXPECT_LT(max_abs_diff(all, ref), kTol);
    // Rows 5..7 alone: bit for bit the rows of the 16-chain batch.
    const std::vector<float> few = run_resp_host_rows(gpu.get(), P, 5, 3);
    EXPECT_EQ(std::memcmp(few.data(), all.data() + 5 * K, few.size() * sizeof(float)), 0) << "batch-dependent";
    by_mode[split ? 0 : 1] = all;
  }
  // The two decompositions differ by rounding only.
  for (size_t i = 0; i < by_mode[0].size(); ++i) EXPECT_NEAR(by_mode[0][i], by_mode[1][i], 2 * kTol) << i;
}

TEST(GpuGmmResp, ManyComponentsShortRowsMatchReference) {
  // More components than a block keeps in shared memory (kRespBlockSoftmaxK): one slice per row,
  // the forms through the workspace, 626 passes of 8 components. Responsibilities are ~6e-5 .. 2e-3
  // here, so relative: float rounding is ~2e-6 of each (the CPU backend: 2.0e-6 here).
  const int64_t n = 3, d = 100, K = kRespBlockSoftmaxK + 904;
  const Problem P = make_problem(n, d, K, 0.005f, true);
  const std::vector<double> ref = reference(P, P.x.data(), n, d);
  auto near = [&](const std::vector<float>& got, const char* what) {
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(got[i], ref[i], 1e-4 * ref[i] + 1e-12) << what << " at " << i;
  };
  near(run_resp_host_rows(make_cpu_backend(2).get(), P, 0, n), "CPU backend");
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
  for (const char* mode : {"split", "block"}) {
    SCOPED_TRACE(mode);
    const almc_test::EnvGuard env("ALMC_GPU_GMM_RESP", mode);
    auto gpu = make_cuda_backend(0, nullptr);
    EXPECT_EQ(gpu->gmm_resp_work_bytes(n, d, K), size_t(4) * n * K);
    near(run_resp_host_rows(gpu.get(), P, 0, n), mode);
  }
}

TEST(GpuGmmResp, ManyChainsPastGridYAreEachComputedOnce) {
  // 65576 chains (gridDim.y is capped at 65535: the kernel strides over chains) of d 2100 at K 8:
  // two slices of 2048 and 52. x from the backend's own normals (550 MB on the device).
  const int64_t n = 65536 + 40, d = 2100, K = 8;
  const Problem P = make_problem(0, d, K, 0.f, false);
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device on this machine (or a build without the CUDA backend)";
  const std::vector<int64_t> picked = {0, 1, 65534, 65535, 65536, n - 1};
  const int64_t np = static_cast<int64_t>(picked.size());
  for (const char* mode : {"split", "block"}) {
    SCOPED_TRACE(mode);
    const almc_test::EnvGuard env("ALMC_GPU_GMM_RESP", mode);
    auto gpu = make_cuda_backend(0, nullptr);
    Buffer x(gpu.get(), 4 * static_cast<size_t>(n * d));
    gpu->fill_random(x.f(), n, d, 0, n, 99, 7, 0.05f, false);
    const std::vector<float> all = run_resp(gpu.get(), P, x.f(), n);
    Buffer idx(gpu.get(), sizeof(int64_t) * picked.size()), xp(gpu.get(), 4 * static_cast<size_t>(np * d));
    idx.upload(picked.data(), idx.bytes());
    gpu->gather_rows(x.f(), xp.f(), idx.get<int64_t>(), np, d);
    const std::vector<float> few = run_resp(gpu.get(), P, xp.f(), np);
    std::vector<float> rows(static_cast<size_t>(np * d));
    xp.download(rows.data(), xp.bytes());
    const std::vector<double> ref = reference(P, rows.data(), np, d);
    for (int64_t i = 0; i < np; ++i) {
      const int64_t c = picked[i];
      EXPECT_EQ(std::memcmp(few.data() + i * K, all.data() + c * K, K * sizeof(float)), 0) << "chain " << c;
      for (int64_t k = 0; k < K; ++k) EXPECT_NEAR(all[c * K + k], ref[i * K + k], kTol) << "chain " << c << " k " << k;
    }
  }
}

}  // namespace
