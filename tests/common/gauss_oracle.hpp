// Test-side helpers around the closed-form oracles. The math itself lives in one place,
// host/cli/validate_oracles.hpp (shared with `almc validate`); this adds the problem builders,
// float conversions and the k-standard-error comparisons the tests use.
#pragma once

#include "host/cli/validate_oracles.hpp"
#include "tests/common/test_util.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <string>
#include <vector>

namespace almc_test {

using almc::oracle::Gauss;
using almc::oracle::LinearGaussian;
using almc::oracle::Mat;
using almc::oracle::Vec;

inline std::vector<float> to_float(const Vec& v) { return std::vector<float>(v.begin(), v.end()); }
inline std::vector<float> to_float(const Mat& m) { return std::vector<float>(m.a.begin(), m.a.end()); }

// A linear Gaussian problem whose numbers are exactly representable in float (so the engine and
// the oracle see the same problem): prior N(m0, diag s0) with s0 in [0.3, 2], dense A [m, d] with
// N(0, a_scale^2) entries, y = A x_true + noise.
inline LinearGaussian dense_problem(int d, int m, double sigma_y, double a_scale, uint64_t seed) {
  Lcg rng(seed);
  LinearGaussian p;
  auto f = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  for (int j = 0; j < d; ++j) {
    p.m0.push_back(f(rng.normal()));
    p.s0.push_back(f(0.3 + 1.7 * rng.uniform()));
  }
  p.A = Mat(m, d);
  for (double& a : p.A.a) a = f(a_scale * rng.normal());
  Vec xt(static_cast<size_t>(d));
  for (int j = 0; j < d; ++j) xt[j] = p.m0[j] + std::sqrt(p.s0[j]) * rng.normal();
  p.vy = f(sigma_y) * f(sigma_y);
  p.y = almc::oracle::mul(p.A, xt);
  for (double& v : p.y) v = f(v + std::sqrt(p.vy) * rng.normal());
  return p;
}

// Every entry of the empirical mean and covariance within k Monte Carlo standard errors of the
// law `truth` (plus `slack` in absolute terms, for a stated, known bias).
inline ::testing::AssertionResult moments_within(const Gauss& emp, const Gauss& truth, int64_t n, double k,
                                                 double slack = 0.0) {
  using namespace almc::oracle;
  const int d = static_cast<int>(truth.m.size());
  std::ostringstream bad;
  int n_bad = 0;
  double worst = 0;
  for (int i = 0; i < d; ++i) {
    const double z = std::fabs(emp.m[i] - truth.m[i]) / se_mean(truth, i, n);
    worst = std::max(worst, z);
    if (std::fabs(emp.m[i] - truth.m[i]) > k * se_mean(truth, i, n) + slack && n_bad++ < 6)
      bad << " mean[" << i << "] " << emp.m[i] << " vs " << truth.m[i] << " (" << z << " se);";
    for (int j = 0; j <= i; ++j) {
      const double se = se_cov(truth, i, j, n);
      const double zc = std::fabs(emp.C(i, j) - truth.C(i, j)) / se;
      worst = std::max(worst, zc);
      if (std::fabs(emp.C(i, j) - truth.C(i, j)) > k * se + slack && n_bad++ < 6)
        bad << " cov[" << i << "," << j << "] " << emp.C(i, j) << " vs " << truth.C(i, j) << " (" << zc << " se);";
    }
  }
  if (n_bad == 0) return ::testing::AssertionSuccess() << "largest deviation " << worst << " se";
  return ::testing::AssertionFailure() << n_bad << " moment(s) beyond " << k << " se (largest " << worst
                                       << " se):" << bad.str();
}

// Largest |a - b| over two equal-length float arrays.
inline double max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, static_cast<double>(std::fabs(a[i] - b[i])));
  return m;
}

}  // namespace almc_test
