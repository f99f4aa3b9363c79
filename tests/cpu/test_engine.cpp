// Engine core on the CPU backend: batch invariance, the fused step's stationary law, operator
// adjoints, analytic scores against finite differences.
#include "tests/common/test_util.hpp"
#include "tests/common/sanitized.hpp"
#include "cuda/langevin/step.cuh"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <numeric>
#include <string>
#include <tuple>

using almc_test::Lcg;

namespace {

almc::Context cpu() { return almc::Context(ALMC_BACKEND_CPU); }

// Chain `chain`'s final state after a short ALMC run with n chains.
std::vector<float> chain_state(const almc::Context& ctx, const almc::Score& prior, const almc::Operator* op,
                               const std::vector<float>& y, int64_t n, int64_t chain) {
  almc_sampler_config c = almc_test::quick_almc(n, 99, 0.3);
  almc::Sampler s(ctx, prior, op, c);
  if (op) s.set_measurement(y);
  s.run();
  const std::vector<float> x = s.samples();
  const int64_t d = prior.dim();
  return std::vector<float>(x.begin() + chain * d, x.begin() + (chain + 1) * d);
}

struct InvarianceCase {
  const char* name;
  bool gmm;
  int op;  // 0 identity, 1 mask, 2 downsample, 3 dense, 4 blur
};

class BatchInvariance : public ::testing::TestWithParam<InvarianceCase> {};

TEST_P(BatchInvariance, Chain17DoesNotDependOnChainCount) {
  const InvarianceCase cs = GetParam();
  auto ctx = cpu();
  const int64_t d = 64;  // 1 x 8 x 8 images for downsampling
  Lcg rng(5);
  std::vector<float> mu = rng.normals(3 * d), var(3 * d, 0.5f), w = {0.2f, 0.3f, 0.5f};
  almc::Score prior = cs.gmm ? almc::Score::gmm(ctx, 3, d, w, mu, var)
                             : almc::Score::gaussian(ctx, std::vector<float>(mu.begin(), mu.begin() + d),
                                                     std::vector<float>(d, 0.7f));
  std::vector<float> mask(d);
  for (int64_t j = 0; j < d; ++j) mask[j] = (j * 7) % 3 ? 1.f : 0.f;
  std::vector<float> A = rng.normals(16 * d, 0.2);
  const std::vector<float> kernel = {0.1f, 0.2f, 0.1f, 0.2f, 0.4f, 0.2f, 0.1f, 0.2f, 0.1f};  // 3 x 3
  almc::Operator op = cs.op == 0   ? almc::Operator::identity(ctx, d)
                      : cs.op == 1 ? almc::Operator::mask(ctx, mask)
                      : cs.op == 2 ? almc::Operator::downsample(ctx, 1, 8, 8, 2)
                      : cs.op == 4 ? almc::Operator::blur(ctx, 1, 8, 8, 3, 3, kernel)
                                   : almc::Operator::matrix(ctx, 16, d, 1, A);
  const std::vector<float> y = rng.normals(static_cast<size_t>(op.dims().first));
  const auto a = chain_state(ctx, prior, &op, y, 20, 17);
  const auto b = chain_state(ctx, prior, &op, y, 64, 17);
  const auto c = chain_state(ctx, prior, &op, y, 1000, 17);
  // Bitwise for every operator, dense A included (its GEMMs run in fixed row blocks).
  EXPECT_EQ(0, std::memcmp(a.data(), b.data(), sizeof(float) * d));
  EXPECT_EQ(0, std::memcmp(a.data(), c.data(), sizeof(float) * d));
  // And the chain moved (a test that would pass on an untouched state proves nothing).
  EXPECT_GT(std::fabs(a[0]) + std::fabs(a[1]), 0.f);
}

INSTANTIATE_TEST_SUITE_P(Engine, BatchInvariance,
                         ::testing::Values(InvarianceCase{"gauss_identity", false, 0},
                                           InvarianceCase{"gmm_identity", true, 0}, InvarianceCase{"gmm_mask", true, 1},
                                           InvarianceCase{"gauss_downsample", false, 2},
                                           InvarianceCase{"gmm_downsample", true, 2},
                                           InvarianceCase{"gmm_dense", true, 3},
                                           InvarianceCase{"gmm_blur", true, 4}),
                         [](const auto& info) { return std::string(info.param.name); });

// Chain j of measurement q is keyed by (q, j): with several measurements, a chain's samples do
// not change when the number of chains per measurement does (dense A per measurement included).
TEST(Engine, MeasurementChainsDoNotDependOnChainsPerMeasurement) {
  auto ctx = cpu();
  const int64_t d = 32, m = 12, n_meas = 3;
  Lcg rng(21);
  const auto mu = rng.normals(2 * d);
  std::vector<float> var(2 * d, 0.6f), w = {0.3f, 0.7f};
  auto prior = almc::Score::gmm(ctx, 2, d, w, mu, var);
  for (int64_t n_mats : {int64_t(1), n_meas}) {
    auto op = almc::Operator::matrix(ctx, m, d, n_mats, rng.normals(static_cast<size_t>(n_mats * m * d), 0.3));
    const auto y = rng.normals(static_cast<size_t>(n_meas * m));
    std::vector<std::vector<float>> rows;
    for (int64_t cpm : {5, 40}) {
      almc_sampler_config c = almc_test::quick_almc(cpm, 4, 0.4);
      c.n_meas = n_meas;
      almc::Sampler s(ctx, prior, &op, c);
      s.set_measurement(y);
      s.run();
      const auto x = s.samples();
      // Chain 3 of measurement 2.
      rows.emplace_back(x.begin() + (2 * cpm + 3) * d, x.begin() + (2 * cpm + 4) * d);
    }
    EXPECT_EQ(0, std::memcmp(rows[0].data(), rows[1].data(), sizeof(float) * d)) << "n_mats " << n_mats;
    EXPECT_GT(std::fabs(rows[0][0]) + std::fabs(rows[0][1]), 0.f);
  }
}

// Bitwise-equality runs need only a few steps to compare the thread splits; under a sanitizer
// (several times slower per step) the next two tests run 25 steps instead of 95.
almc_sampler_config sanitized_steps(almc_sampler_config c) {
#ifdef ALMC_TEST_SANITIZED
  c.t_start = 0.3;
#endif
  return c;
}

TEST(Engine, ThreadCountDoesNotChangeResults) {
  const int64_t d = 64;
  Lcg rng(8);
  const auto mu = rng.normals(2 * d);
  const auto A = rng.normals(24 * d, 0.2);
  std::vector<float> var(2 * d, 0.4f), w = {0.5f, 0.5f};
  const std::vector<float> kernel = {0.05f, 0.1f, 0.05f, 0.1f, 0.4f, 0.1f, 0.05f, 0.1f, 0.05f};
  // Identity (fused step), dense A (GEMMs in row blocks), blur (the gradient-buffer path).
  for (const char* kind : {"identity", "dense", "blur"}) {
    const std::string k = kind;
    std::vector<std::vector<float>> out;
    for (int threads : {1, 2}) {
      almc_context_config cc = almc_context_config_default();
      cc.backend = ALMC_BACKEND_CPU;
      cc.n_threads = threads;
      almc::Context ctx(cc);
      auto prior = almc::Score::gmm(ctx, 2, d, w, mu, var);
      auto op = k == "dense"  ? almc::Operator::matrix(ctx, 24, d, 1, A)
                : k == "blur" ? almc::Operator::blur(ctx, 1, 8, 8, 3, 3, kernel)
                              : almc::Operator::identity(ctx, d);
      // Enough chains that both threads get work (small passes run on one thread).
      almc::Sampler s(ctx, prior, &op, sanitized_steps(almc_test::quick_almc(1200, 3, 0.5)));
      s.set_measurement(std::vector<float>(static_cast<size_t>(op.dims().first), 0.25f));
      s.run();
      out.push_back(s.samples());
    }
    EXPECT_EQ(0, std::memcmp(out[0].data(), out[1].data(), sizeof(float) * out[0].size())) << kind;
  }
}

// Rows longer than one step tile (1024 coordinates) and than one chunk of the per-level tables
// (2048 entries per component, partial last tile and chunk): chain 2 is the same bits with one
// thread or two, with 3, 5 or 40 chains (40: each thread sweeps its own range of chains; 3 and 5:
// the work is split along d, responsibilities by component and the update by tile) and with 3
// chains on 4 threads; chain 0 the same alone (one chain on two threads) as among 5 and as one of
// 2 chains on 3 threads (fewer chains than threads: split along d).
TEST(Engine, LongRowsDoNotDependOnThreadsOrChainCount) {
  const int64_t C = 2, H = 64, W = 72, d = C * H * W;  // 9216: 9 tiles, 4.5 table chunks
  Lcg rng(31);
  // Components close together (means 0.02 apart per coordinate, equal variances), so the
  // responsibilities are not 0 or 1 and every bit of the quadratic forms counts.
  const auto base = rng.normals(static_cast<size_t>(d)), jitter = rng.normals(static_cast<size_t>(3 * d), 0.02);
  std::vector<float> mu(static_cast<size_t>(3 * d)), var(static_cast<size_t>(3 * d)), w = {0.25f, 0.35f, 0.4f};
  for (size_t i = 0; i < mu.size(); ++i) {
    mu[i] = base[i % static_cast<size_t>(d)] + jitter[i];
    var[i] = 0.2f + 0.6f * static_cast<float>(i % static_cast<size_t>(d) % 7) / 7.f;
  }
  std::vector<float> mask(static_cast<size_t>(d));
  for (int64_t j = 0; j < d; ++j) mask[j] = (j * 5) % 3 ? 1.f : 0.f;
  for (const char* kind : {"mask", "downsample", "gaussian"}) {
    const std::string k = kind;
    std::vector<std::vector<float>> rows;
    for (auto [threads, n, chain] : std::vector<std::tuple<int, int64_t, int64_t>>{
             {1, 3, 2}, {2, 5, 2}, {2, 40, 2}, {2, 1, 0}, {2, 5, 0}, {4, 3, 2}, {3, 2, 0}}) {
      almc_context_config cc = almc_context_config_default();
      cc.backend = ALMC_BACKEND_CPU;
      cc.n_threads = threads;
      almc::Context ctx(cc);
      auto prior = k == "gaussian" ? almc::Score::gaussian(ctx, std::vector<float>(mu.begin(), mu.begin() + d),
                                                           std::vector<float>(var.begin(), var.begin() + d))
                                   : almc::Score::gmm(ctx, 3, d, w, mu, var);
      auto op = k == "downsample" ? almc::Operator::downsample(ctx, C, H, W, 2) : almc::Operator::mask(ctx, mask);
      almc::Sampler s(ctx, prior, &op, sanitized_steps(almc_test::quick_almc(n, 7, 0.3)));
      s.set_measurement(std::vector<float>(static_cast<size_t>(op.dims().first), 0.3f));
      s.run();
      const auto x = s.samples();
      rows.emplace_back(x.begin() + chain * d, x.begin() + (chain + 1) * d);
    }
    for (size_t i : {size_t(1), size_t(2), size_t(5)})
      EXPECT_EQ(0, std::memcmp(rows[0].data(), rows[i].data(), sizeof(float) * d)) << kind << " run " << i;
    for (size_t i : {size_t(4), size_t(6)})
      EXPECT_EQ(0, std::memcmp(rows[3].data(), rows[i].data(), sizeof(float) * d)) << kind << " chain 0, run " << i;
    EXPECT_GT(std::fabs(rows[0][0]) + std::fabs(rows[0][d - 1]), 0.f) << kind;
  }
}

// ULA on a Gaussian target of precision lam = 1/S_t + 1/sigma_y^2 per coordinate: stationary
// mean M (unbiased) and variance 1 / (lam (1 - h lam / 2)) (ALGORITHMS.md Sec. 3).
TEST(Engine, FusedStepReachesUlaStationaryLaw) {
  auto ctx = cpu();
  const int64_t d = 8, n = 4000;
  std::vector<float> m0(d), s0(d), y(d);
  for (int64_t j = 0; j < d; ++j) {
    m0[j] = 0.5f * static_cast<float>(j) - 1.f;
    s0[j] = 0.2f + 0.1f * static_cast<float>(j);
    y[j] = 1.f - 0.2f * static_cast<float>(j);
  }
  auto prior = almc::Score::gaussian(ctx, m0, s0);
  auto op = almc::Operator::identity(ctx, d);
  const double t = 0.3, sy = 0.6, h = 0.05;
  almc_sampler_config c = almc_sampler_config_default();
  c.method = ALMC_METHOD_LANGEVIN;
  c.schedule = ALMC_SCHEDULE_LIST;
  const double lv[1] = {t};
  c.levels = lv;
  c.n_levels_list = 1;
  c.steps_per_level = 400;
  c.delta = h;
  c.noise_std = sy;
  c.chains_per_meas = n;
  c.seed = 2024;
  almc::Sampler s(ctx, prior, &op, c);
  s.set_measurement(y);
  s.run();
  const auto x = s.samples();
  for (int64_t j = 0; j < d; ++j) {
    const double St = std::exp(-2 * t) * s0[j] + 1 - std::exp(-2 * t);
    const double lam = 1 / St + 1 / (sy * sy);
    const double M = (std::exp(-t) * m0[j] / St + y[j] / (sy * sy)) / lam;
    const double V = 1 / (lam * (1 - h * lam / 2));
    double mean = 0, var = 0;
    for (int64_t c2 = 0; c2 < n; ++c2) mean += x[c2 * d + j];
    mean /= n;
    for (int64_t c2 = 0; c2 < n; ++c2) var += (x[c2 * d + j] - mean) * (x[c2 * d + j] - mean);
    var /= (n - 1);
    // 4 sigma / sqrt(n) for the mean; the sample variance has sd V sqrt(2 / (n - 1)).
    EXPECT_NEAR(mean, M, 4 * std::sqrt(V / n)) << "coordinate " << j;
    EXPECT_NEAR(var, V, 4 * V * std::sqrt(2.0 / (n - 1))) << "coordinate " << j;
  }
}

// <A x, v> = <x, A^T v> for every operator, on random inputs.
TEST(Engine, AdjointIdentityForEveryOperator) {
  auto ctx = cpu();
  Lcg rng(11);
  const int64_t C = 2, H = 8, W = 12, d = C * H * W, n = 3;
  std::vector<float> mask(d);
  for (auto& v : mask) v = rng.uniform() < 0.5 ? 0.f : 1.f;
  std::vector<almc::Operator> ops;
  ops.push_back(almc::Operator::identity(ctx, d));
  ops.push_back(almc::Operator::mask(ctx, mask));
  ops.push_back(almc::Operator::downsample(ctx, C, H, W, 2));
  ops.push_back(almc::Operator::downsample(ctx, C, H, W, 4));
  ops.push_back(almc::Operator::blur(ctx, C, H, W, 3, 5, rng.normals(15)));
  ops.push_back(almc::Operator::matrix(ctx, 40, d, 1, rng.normals(40 * d)));
  ops.push_back(almc::Operator::matrix(ctx, 40, d, 2, rng.normals(2 * 40 * d)));
  for (const auto& op : ops) {
    const auto [m, dd] = op.dims();
    ASSERT_EQ(dd, d);
    for (int64_t meas = 0; meas < 2; ++meas) {
      const auto x = rng.normals(static_cast<size_t>(n * d));
      const auto v = rng.normals(static_cast<size_t>(n * m));
      const auto Ax = op.forward(x, n, meas);
      const auto Atv = op.adjoint(v, n, meas);
      double lhs = 0, rhs = 0, scale = 0;
      for (size_t i = 0; i < Ax.size(); ++i) {
        lhs += double(Ax[i]) * v[i];
        scale += std::fabs(double(Ax[i]) * v[i]);
      }
      for (size_t j = 0; j < Atv.size(); ++j) rhs += double(x[j]) * Atv[j];
      EXPECT_NEAR(lhs, rhs, 1e-5 * scale + 1e-6) << "operator " << &op - &ops[0] << " meas " << meas;
      EXPECT_GT(scale, 0);
    }
  }
}

TEST(Engine, OperatorNorms) {
  auto ctx = cpu();
  EXPECT_DOUBLE_EQ(almc::Operator::identity(ctx, 5).norm(), 1.0);
  EXPECT_DOUBLE_EQ(almc::Operator::downsample(ctx, 1, 4, 4, 2).norm(), 0.5);
  EXPECT_DOUBLE_EQ(almc::Operator::mask(ctx, {0, 0.5f, 2}).norm(), 2.0);
  // diag(3, 1) embedded in a 2 x 3 matrix: norm 3.
  EXPECT_NEAR(almc::Operator::matrix(ctx, 2, 3, 1, {3, 0, 0, 0, 1, 0}).norm(), 3.0, 1e-3);
  // A normalised 3 x 3 box blur on a large image: norm close to 1 (below it: zero boundary).
  const double nb = almc::Operator::blur(ctx, 1, 32, 32, 3, 3, std::vector<float>(9, 1.f / 9)).norm();
  EXPECT_GT(nb, 0.95);
  EXPECT_LE(nb, 1.0 + 1e-6);
}

// log p_t of a diagonal GMM in double, independently of the engine.
double log_pt(const std::vector<double>& w, const std::vector<float>& mu, const std::vector<float>& var, int64_t d,
              const std::vector<double>& x, double t) {
  const double a = std::exp(-t), e2 = std::exp(-2 * t);
  std::vector<double> l(w.size());
  double mx = -1e300;
  for (size_t k = 0; k < w.size(); ++k) {
    double s = std::log(w[k]);
    for (int64_t j = 0; j < d; ++j) {
      const double S = e2 * var[k * d + j] + 1 - e2, r = x[j] - a * mu[k * d + j];
      s -= 0.5 * (r * r / S + std::log(2 * M_PI * S));
    }
    l[k] = s;
    mx = std::max(mx, s);
  }
  double z = 0;
  for (double v : l) z += std::exp(v - mx);
  return mx + std::log(z);
}

TEST(Engine, AnalyticScoresMatchFiniteDifferences) {
  auto ctx = cpu();
  Lcg rng(21);
  const int64_t d = 5, K = 3;
  const auto mu = rng.normals(K * d, 1.5);
  std::vector<float> var(K * d);
  for (auto& v : var) v = static_cast<float>(0.1 + rng.uniform());
  const std::vector<float> wf = {0.2f, 0.5f, 0.3f};
  const std::vector<double> w = {0.2, 0.5, 0.3};
  auto gmm = almc::Score::gmm(ctx, K, d, wf, mu, var);
  auto gauss = almc::Score::gaussian(ctx, std::vector<float>(mu.begin(), mu.begin() + d),
                                     std::vector<float>(var.begin(), var.begin() + d));
  for (double t : {0.01, 0.1, 0.5, 2.0}) {
    const auto x = rng.normals(d);
    const auto sg = gmm.evaluate(x, t);
    const auto sn = gauss.evaluate(x, t);
    for (int64_t j = 0; j < d; ++j) {
      std::vector<double> xp(x.begin(), x.end()), xm = xp;
      const double h = 1e-5;
      xp[j] += h;
      xm[j] -= h;
      const double fd = (log_pt(w, mu, var, d, xp, t) - log_pt(w, mu, var, d, xm, t)) / (2 * h);
      EXPECT_NEAR(sg[j], fd, 2e-4 * (1 + std::fabs(fd))) << "GMM t=" << t << " j=" << j;
      const double fdg = (log_pt({1.0}, mu, var, d, xp, t) - log_pt({1.0}, mu, var, d, xm, t)) / (2 * h);
      EXPECT_NEAR(sn[j], fdg, 2e-4 * (1 + std::fabs(fdg))) << "Gaussian t=" << t << " j=" << j;
    }
  }
}

}  // namespace

// The forward maps of the image operators against values worked out by hand (issue 10): an
// asymmetric blur kernel, so a correlation/convolution flip or a transposed kernel fails.
TEST(Operators, BlurForwardMatchesHandComputedCorrelation) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  // k[0][0] = 2, k[1][2] = 1: out[r][c] = 2 x[r-1][c-1] + x[r][c+1], zero outside the 4 x 5 image.
  const std::vector<float> k = {2, 0, 0, 0, 0, 1, 0, 0, 0};
  auto op = almc::Operator::blur(ctx, 1, 4, 5, 3, 3, k);
  std::vector<float> x(20);
  for (int i = 0; i < 20; ++i) x[i] = static_cast<float>(i);  // x[r][c] = 5 r + c
  const auto y = op.forward(x, 1);
  ASSERT_EQ(y.size(), 20u);
  EXPECT_FLOAT_EQ(y[0 * 5 + 0], 1.f);   // x[0][1]
  EXPECT_FLOAT_EQ(y[1 * 5 + 1], 7.f);   // 2 x[0][0] + x[1][2]
  EXPECT_FLOAT_EQ(y[2 * 5 + 4], 16.f);  // 2 x[1][3] + 0
  EXPECT_FLOAT_EQ(y[3 * 5 + 2], 40.f);  // 2 x[2][1] + x[3][3]
  EXPECT_FLOAT_EQ(y[0 * 5 + 4], 0.f);   // both taps outside
}

// The CPU backend's blur and its adjoint run image row by image row, with unrolled 3 x 3 and 5 x 5
// kernels and the inner pixels without bounds tests. Against a direct double-precision correlation
// written here (relative 1e-5: float sums of at most 49 terms of size ~1), and bit for bit against
// step.cuh's per-element local_forward / local_adjoint, which the CUDA kernels call: odd and
// non-square kernels, kernels wider or taller than the image (no inner pixel), two channels.
TEST(Operators, BlurRowsMatchDirectCorrelationAndThePerElementPath) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  Lcg rng(77);
  const int64_t C = 2, n = 3;
  for (auto [H, W, kh, kw] : std::vector<std::tuple<int64_t, int64_t, int64_t, int64_t>>{
           {5, 7, 3, 3}, {8, 9, 5, 5}, {6, 11, 3, 5}, {4, 6, 1, 3}, {7, 5, 5, 1}, {3, 4, 5, 5}, {2, 9, 5, 3}, {9, 9, 7, 7}}) {
    SCOPED_TRACE(std::to_string(H) + "x" + std::to_string(W) + " kernel " + std::to_string(kh) + "x" + std::to_string(kw));
    const int64_t d = C * H * W;
    const auto k = rng.normals(size_t(kh * kw)), x = rng.normals(size_t(n * d));
    auto op = almc::Operator::blur(ctx, C, H, W, kh, kw, k);
    const auto fwd = op.forward(x, n), adj = op.adjoint(x, n);
    almc::LocalOp lo{};
    lo.kind = almc::kOpBlur;
    lo.C = C, lo.H = H, lo.W = W, lo.kernel = k.data(), lo.kh = kh, lo.kw = kw;
    for (int64_t c = 0; c < n; ++c)
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t r = 0; r < H; ++r)
          for (int64_t q = 0; q < W; ++q) {
            const int64_t i = c * d + (ch * H + r) * W + q;
            double f = 0, a = 0, mag = 0;
            for (int64_t u = 0; u < kh; ++u)
              for (int64_t v = 0; v < kw; ++v) {
                const double kv = k[size_t(u * kw + v)];
                const int64_t fr = r + u - kh / 2, fc = q + v - kw / 2;  // correlation
                if (fr >= 0 && fr < H && fc >= 0 && fc < W) f += kv * x[size_t(c * d + (ch * H + fr) * W + fc)];
                const int64_t ar = r - u + kh / 2, ac = q - v + kw / 2;  // its transpose
                if (ar >= 0 && ar < H && ac >= 0 && ac < W) a += kv * x[size_t(c * d + (ch * H + ar) * W + ac)];
                mag += std::fabs(kv) * 3;
              }
            EXPECT_NEAR(fwd[size_t(i)], f, 1e-5 * mag) << i;
            EXPECT_NEAR(adj[size_t(i)], a, 1e-5 * mag) << i;
            const float pf = almc::local_forward(lo, x.data() + c * d, i - c * d);
            const float pa = almc::local_adjoint(lo, x.data() + c * d, i - c * d);
            EXPECT_EQ(0, std::memcmp(&pf, &fwd[size_t(i)], sizeof pf)) << i;
            EXPECT_EQ(0, std::memcmp(&pa, &adj[size_t(i)], sizeof pa)) << i;
          }
  }
}

TEST(Operators, DownsampleForwardMatchesHandComputedMeans) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  auto op = almc::Operator::downsample(ctx, 2, 4, 4, 2);
  std::vector<float> x(32);
  for (int i = 0; i < 32; ++i) x[i] = static_cast<float>(i);
  const auto y = op.forward(x, 1);
  const std::vector<float> want = {2.5f, 4.5f, 10.5f, 12.5f, 18.5f, 20.5f, 26.5f, 28.5f};
  ASSERT_EQ(y.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_FLOAT_EQ(y[i], want[i]) << i;
}

// TF32 for dense operators is an opt-in flag checked like every argument; the CPU backend
// computes in fp32 whatever it says.
TEST(Operators, Tf32FlagIsValidatedAndLeavesCpuResultsUnchanged) {
  almc::Context ctx(ALMC_BACKEND_CPU);
  Lcg rng(12);
  const int64_t m = 5, d = 9;
  const auto A = rng.normals(m * d);
  auto op = almc::Operator::matrix(ctx, m, d, 1, A);
  const auto x = rng.normals(3 * d);
  const auto before = op.forward(x, 3);
  EXPECT_EQ(ALMC_ERR_NULL_POINTER, almc_operator_set_tf32(nullptr, 1));
  EXPECT_EQ(ALMC_ERR_INVALID_ARGUMENT, almc_operator_set_tf32(op.get(), 2));
  EXPECT_NE(std::string(almc_operator_last_error(op.get())).find("enable"), std::string::npos);
  ASSERT_EQ(ALMC_OK, almc_operator_set_tf32(op.get(), 1));
  const auto after = op.forward(x, 3);
  EXPECT_EQ(0, std::memcmp(before.data(), after.data(), sizeof(float) * before.size()));
}
