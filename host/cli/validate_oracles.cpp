// The fixed closed-form problems of `almc validate` (the math is in validate_oracles.hpp).
#include "host/cli/validate_oracles.hpp"

#include <cstdint>

namespace almc::oracle {
namespace {

using Gen = Lcg;
// Rounded to float so the engine sees exactly the oracle's problem.
double f32(double v) { return static_cast<double>(static_cast<float>(v)); }

}  // namespace

LinearGaussian validate_gauss_problem() {
  const int d = 8, m = 6;
  Gen g(2024);
  LinearGaussian p;
  for (int j = 0; j < d; ++j) {
    p.m0.push_back(f32(g.normal()));
    p.s0.push_back(f32(0.3 + 1.7 * g.uniform()));
  }
  p.A = Mat(m, d);
  for (double& a : p.A.a) a = f32(0.35 * g.normal());
  Vec xt(static_cast<size_t>(d));
  for (int j = 0; j < d; ++j) xt[j] = p.m0[j] + std::sqrt(p.s0[j]) * g.normal();
  p.vy = 0.25;
  p.y = mul(p.A, xt);
  for (double& v : p.y) v = f32(v + 0.5 * g.normal());
  return p;
}

GmmProblem validate_gmm_problem() {
  // Two modes 12 std apart in x1 that differ in x2, y observes x2: the mode weights change along
  // t after the modes have parted, the hard case of ALGORITHMS.md T4.
  GmmProblem q;
  q.name = "gmm";
  q.g.K = 2;
  q.g.d = 2;
  q.g.w = {0.5, 0.5};
  q.g.mu = {-2.0, -0.5, 2.0, 0.5};
  q.g.var = {0.1, 0.5, 0.1, 0.5};
  q.A = Mat(2, 2);
  q.A(1, 1) = 1;
  q.mask = {0.f, 1.f};
  q.y = {0.0, 0.6};
  q.vy = 0.2;
  return q;
}

GmmProblem validate_bars_problem() {
  // ALGORITHMS.md T5: vertical bars S_k = diag(0.05^2, 1) at horizontal offsets, y observes x2.
  GmmProblem q;
  q.name = "bars";
  q.g.K = 3;
  q.g.d = 2;
  q.g.w = {0.2, 0.5, 0.3};
  q.g.mu = {-1.0, -0.4, 0.0, 0.0, 1.0, 0.5};
  q.g.var = {0.0025, 1.0, 0.0025, 1.0, 0.0025, 1.0};
  q.A = Mat(2, 2);
  q.A(1, 1) = 1;
  q.mask = {0.f, 1.f};
  q.y = {0.0, 0.9};
  q.vy = 0.1;
  return q;
}

}  // namespace almc::oracle
