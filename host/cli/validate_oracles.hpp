// Closed-form oracles of ALGORITHMS.md Sec. 6, in double precision, written independently of the
// engine: the exact targets mu_t (T1, T4), the exact law of each method's discretised chain on a
// Gaussian prior (T2, T6), Gaussian KL and Fisher divergence (T3), empirical moments.
//
// Header-only on purpose: `almc validate` (validate.cpp) and the tests (tests/common/gauss_oracle.hpp)
// include this one copy of the math. Small dense linear algebra only (d of a few tens).
//
// The chain recursions are derived from the method definitions of ALGORITHMS.md Sec. 3-4, not from
// the engine's schedule: NCSN/ALD run here in VE coordinates with the VE score of the noised
// prior (the engine runs them in OU coordinates), XGP tracks the auxiliary measurement noise as
// part of a joint Gaussian state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace almc::oracle {

// ------------------------------------------------------------------ dense matrices

// A small deterministic generator for problem and test inputs: it must not depend on the
// engine's own noise.
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
  }
  double normal() {
    const double u = uniform() + 1e-300, v = uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  std::vector<float> normals(size_t n, double scale = 1) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(scale * normal());
    return v;
  }
};

struct Mat {
  int r = 0, c = 0;
  std::vector<double> a;
  Mat() = default;
  Mat(int rows, int cols, double v = 0.0) : r(rows), c(cols), a(static_cast<size_t>(rows) * cols, v) {}
  double& operator()(int i, int j) { return a[static_cast<size_t>(i) * c + j]; }
  double operator()(int i, int j) const { return a[static_cast<size_t>(i) * c + j]; }
};
using Vec = std::vector<double>;

inline Mat eye(int n) {
  Mat m(n, n);
  for (int i = 0; i < n; ++i) m(i, i) = 1.0;
  return m;
}
inline Mat diag(const Vec& v) {
  Mat m(static_cast<int>(v.size()), static_cast<int>(v.size()));
  for (size_t i = 0; i < v.size(); ++i) m(static_cast<int>(i), static_cast<int>(i)) = v[i];
  return m;
}
inline Mat transpose(const Mat& A) {
  Mat T(A.c, A.r);
  for (int i = 0; i < A.r; ++i)
    for (int j = 0; j < A.c; ++j) T(j, i) = A(i, j);
  return T;
}
inline Mat mul(const Mat& A, const Mat& B) {
  if (A.c != B.r) throw std::invalid_argument("oracle::mul: shapes");
  Mat C(A.r, B.c);
  for (int i = 0; i < A.r; ++i)
    for (int k = 0; k < A.c; ++k) {
      const double v = A(i, k);
      if (v == 0.0) continue;
      for (int j = 0; j < B.c; ++j) C(i, j) += v * B(k, j);
    }
  return C;
}
inline Vec mul(const Mat& A, const Vec& x) {
  Vec y(static_cast<size_t>(A.r), 0.0);
  for (int i = 0; i < A.r; ++i)
    for (int j = 0; j < A.c; ++j) y[i] += A(i, j) * x[j];
  return y;
}
// alpha A + beta B
inline Mat axpby(double alpha, const Mat& A, double beta, const Mat& B) {
  Mat C(A.r, A.c);
  for (size_t i = 0; i < A.a.size(); ++i) C.a[i] = alpha * A.a[i] + beta * B.a[i];
  return C;
}
inline Vec axpby(double alpha, const Vec& a, double beta, const Vec& b) {
  Vec c(a.size());
  for (size_t i = 0; i < a.size(); ++i) c[i] = alpha * a[i] + beta * b[i];
  return c;
}
inline double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}
inline double trace(const Mat& A) {
  double s = 0;
  for (int i = 0; i < A.r; ++i) s += A(i, i);
  return s;
}

// Cholesky factor L (lower) of a symmetric positive definite matrix; throws if not SPD.
inline Mat cholesky(const Mat& S) {
  const int n = S.r;
  Mat L(n, n);
  for (int j = 0; j < n; ++j) {
    double s = S(j, j);
    for (int k = 0; k < j; ++k) s -= L(j, k) * L(j, k);
    if (!(s > 0)) throw std::domain_error("oracle::cholesky: matrix not positive definite");
    L(j, j) = std::sqrt(s);
    for (int i = j + 1; i < n; ++i) {
      double t = S(i, j);
      for (int k = 0; k < j; ++k) t -= L(i, k) * L(j, k);
      L(i, j) = t / L(j, j);
    }
  }
  return L;
}
inline double logdet_spd(const Mat& S) {
  const Mat L = cholesky(S);
  double s = 0;
  for (int i = 0; i < L.r; ++i) s += 2 * std::log(L(i, i));
  return s;
}
// S^{-1} B for SPD S.
inline Mat solve_spd(const Mat& S, const Mat& B) {
  const Mat L = cholesky(S);
  const int n = S.r;
  Mat X = B;
  for (int col = 0; col < B.c; ++col) {
    for (int i = 0; i < n; ++i) {  // L z = b
      double t = X(i, col);
      for (int k = 0; k < i; ++k) t -= L(i, k) * X(k, col);
      X(i, col) = t / L(i, i);
    }
    for (int i = n - 1; i >= 0; --i) {  // L^T x = z
      double t = X(i, col);
      for (int k = i + 1; k < n; ++k) t -= L(k, i) * X(k, col);
      X(i, col) = t / L(i, i);
    }
  }
  return X;
}
inline Vec solve_spd(const Mat& S, const Vec& b) {
  Mat B(static_cast<int>(b.size()), 1);
  B.a = b;
  return solve_spd(S, B).a;
}
inline Mat inverse_spd(const Mat& S) { return solve_spd(S, eye(S.r)); }
inline Mat symmetrize(const Mat& S) {
  Mat T = S;
  for (int i = 0; i < S.r; ++i)
    for (int j = 0; j < S.c; ++j) T(i, j) = 0.5 * (S(i, j) + S(j, i));
  return T;
}

// ------------------------------------------------------------------ Gaussians

struct Gauss {
  Vec m;
  Mat C;
};

inline Gauss standard_normal(int d, double std = 1.0) { return {Vec(static_cast<size_t>(d), 0.0), axpby(std * std, eye(d), 0, eye(d))}; }

// KL(N1 || N2) (ALGORITHMS.md T3).
inline double kl(const Gauss& p, const Gauss& q) {
  const int d = static_cast<int>(p.m.size());
  const Mat Q = solve_spd(q.C, p.C);
  const Vec dm = axpby(1, q.m, -1, p.m);
  return 0.5 * (trace(Q) + dot(dm, solve_spd(q.C, dm)) - d + logdet_spd(q.C) - logdet_spd(p.C));
}
// FI(N1 || N2) = E_1 ||grad log p1 - grad log p2||^2 = tr(D C1 D) + ||C2^{-1}(m1 - m2)||^2,
// D = C2^{-1} - C1^{-1} (ALGORITHMS.md T3).
inline double fisher(const Gauss& p, const Gauss& q) {
  const Mat D = axpby(1, inverse_spd(q.C), -1, inverse_spd(p.C));
  const Vec v = solve_spd(q.C, axpby(1, p.m, -1, q.m));
  return trace(mul(mul(D, p.C), D)) + dot(v, v);
}

// Empirical mean and covariance (1/(n-1)) of float samples x[n, d], accumulated in double.
inline Gauss empirical(const float* x, int64_t n, int d) {
  Gauss g{Vec(static_cast<size_t>(d), 0.0), Mat(d, d)};
  for (int64_t c = 0; c < n; ++c)
    for (int j = 0; j < d; ++j) g.m[j] += x[c * d + j];
  for (auto& v : g.m) v /= static_cast<double>(n);
  for (int64_t c = 0; c < n; ++c)
    for (int i = 0; i < d; ++i) {
      const double ei = x[c * d + i] - g.m[i];
      for (int j = 0; j <= i; ++j) g.C(i, j) += ei * (x[c * d + j] - g.m[j]);
    }
  for (int i = 0; i < d; ++i)
    for (int j = 0; j <= i; ++j) g.C(j, i) = g.C(i, j) = g.C(i, j) / static_cast<double>(n - 1);
  return g;
}
// Monte Carlo standard errors of the sample mean and sample covariance of n draws of N(m, C):
// Var(mean_i) = C_ii / n, Var(cov_ij) ~ (C_ii C_jj + C_ij^2) / n.
inline double se_mean(const Gauss& truth, int i, int64_t n) { return std::sqrt(truth.C(i, i) / static_cast<double>(n)); }
inline double se_cov(const Gauss& truth, int i, int j, int64_t n) {
  return std::sqrt((truth.C(i, i) * truth.C(j, j) + truth.C(i, j) * truth.C(i, j)) / static_cast<double>(n));
}

// ------------------------------------------------------------------ the linear Gaussian problem (T1)

// Prior N(m0, diag(s0)), measurement y = A x + N(0, vy I), likelihood weight w (1: the posterior).
// A with zero rows (m = 0) or w = 0 means no likelihood.
struct LinearGaussian {
  Vec m0, s0;
  Mat A;  // [m, d]
  Vec y;
  double vy = 1.0;
  double w = 1.0;
  int d() const { return static_cast<int>(m0.size()); }
  // w A^T A / vy and w A^T y / vy.
  Mat lik_prec() const {
    if (A.r == 0 || w == 0) return Mat(d(), d());
    return axpby(w / vy, mul(transpose(A), A), 0, eye(d()));
  }
  Vec lik_rhs() const {
    if (A.r == 0 || w == 0) return Vec(static_cast<size_t>(d()), 0.0);
    const Vec Aty = mul(transpose(A), y);
    return axpby(w / vy, Aty, 0, Aty);
  }
};

inline double e2(double t) { return std::exp(-2 * t); }
// OU-noised prior variance e^{-2t} s0 + 1 - e^{-2t} (diagonal).
inline Vec ou_var(const Vec& s0, double t) {
  Vec v(s0.size());
  for (size_t i = 0; i < s0.size(); ++i) v[i] = e2(t) * s0[i] + 1 - e2(t);
  return v;
}
inline Gauss ou_prior(const LinearGaussian& p, double t) {
  Vec m(p.m0.size());
  for (size_t i = 0; i < m.size(); ++i) m[i] = std::exp(-t) * p.m0[i];
  return {m, diag(ou_var(p.s0, t))};
}
// The drift of every Langevin step on a Gaussian-times-linear target is -(P x) + r: precision
// P = diag(1/v) + lik and r = diag(1/v) mean + lik rhs for a prior N(mean, diag v).
struct Drift {
  Mat P;
  Vec r;
};
inline Drift drift(const Vec& mean, const Vec& var, const Mat& lik_prec, const Vec& lik_rhs) {
  Drift D{lik_prec, lik_rhs};
  for (size_t i = 0; i < var.size(); ++i) {
    D.P(static_cast<int>(i), static_cast<int>(i)) += 1 / var[i];
    D.r[i] += mean[i] / var[i];
  }
  return D;
}
inline Gauss gauss_of(const Drift& D) {
  Gauss g;
  g.C = inverse_spd(D.P);
  g.m = mul(g.C, D.r);
  return g;
}
// mu_t = N(M_t, C_t) of T1 (likelihood never tempered; only the prior is noised).
inline Drift target_drift(const LinearGaussian& p, double t) {
  const Gauss pr = ou_prior(p, t);
  return drift(pr.m, ou_var(p.s0, t), p.lik_prec(), p.lik_rhs());
}
inline Gauss target(const LinearGaussian& p, double t) { return gauss_of(target_drift(p, t)); }
// mu_inf = N(0, I) exp(-R).
inline Drift inf_drift(const LinearGaussian& p) {
  return drift(Vec(static_cast<size_t>(p.d()), 0.0), Vec(static_cast<size_t>(p.d()), 1.0), p.lik_prec(), p.lik_rhs());
}
inline Gauss target_inf(const LinearGaussian& p) { return gauss_of(inf_drift(p)); }

// One exact step of the law: x' = x + h (r - P x) + sqrt(2h) xi  =>  m <- F m + h r,
// C <- F C F^T + 2h I with F = I - h P (T2).
inline void step(Gauss& g, const Drift& D, double h) {
  const int d = static_cast<int>(g.m.size());
  const Mat F = axpby(1, eye(d), -h, D.P);
  g.m = axpby(1, mul(F, g.m), h, D.r);
  g.C = mul(mul(F, g.C), transpose(F));
  for (int i = 0; i < d; ++i) g.C(i, i) += 2 * h;
}

// ------------------------------------------------------------------ the methods' exact chain laws (T2, T6)

struct AlmcParams {
  double kappa = 10, delta = 1e-3, t_start = 5, t_stop = 0.01;
  int64_t warm_steps = 0;
  double warm_step = 0;
  double init_std = 1;
  // The likelihood variant of ALGORITHMS.md Sec. 7: < 0 the paper's; otherwise the proxy g of
  // V(s) = vy + (e^{2s} - 1) g (||A||^2 for noised-lik, vy for scaled-y).
  double variant_g = -1;
  // Sec. 8: n = round(kappa (T_ws - tau) / delta) levels whose VE sigma = sqrt(e^{2t} - 1) is
  // geometric from sigma(T_ws) down to sigma(tau), both included, instead of uniform in t.
  bool geometric = false;
};
inline Vec geometric(double hi, double lo, int64_t n);
// Annealing levels of ALGORITHMS.md Sec. 3: t_i = i delta / kappa, i = N .. M+1 (or Sec. 8's).
inline Vec almc_levels(const AlmcParams& a) {
  Vec ts;
  if (a.geometric) {
    const int64_t n = std::max<int64_t>(1, std::llround(a.kappa * (a.t_start - a.t_stop) / a.delta));
    for (double s : geometric(std::sqrt(std::expm1(2 * a.t_start)), std::sqrt(std::expm1(2 * a.t_stop)), n))
      ts.push_back(0.5 * std::log1p(s * s));
    return ts;
  }
  const int64_t N = std::llround(a.kappa * a.t_start / a.delta), M = std::llround(a.kappa * a.t_stop / a.delta);
  for (int64_t i = N; i > M; --i) ts.push_back(static_cast<double>(i) * a.delta / a.kappa);
  return ts;
}
// Sec. 7: the variant's likelihood at OU time t is the Gaussian y ~ N(e^s A x, V I) with
// s = t - t_last, V = vy + (e^{2s} - 1) g: the same problem with A -> e^s A and vy -> V.
// g < 0: the paper's likelihood (p itself).
inline LinearGaussian variant_at(const LinearGaussian& p, double t, double t_last, double g) {
  if (g < 0) return p;
  LinearGaussian q = p;
  const double s = std::max(0.0, t - t_last);
  for (double& v : q.A.a) v *= std::exp(s);
  q.vy = p.vy + std::expm1(2 * s) * g;
  return q;
}
// Law of the ALMC output (last iterate): N(0, init_std^2 I), warm start on mu_inf (N(0, I) times
// the first level's likelihood), annealing. start: optional law after the warm start (e.g.
// exactly mu_inf); null: run the warm start.
inline Gauss almc_chain(const LinearGaussian& p, const AlmcParams& a, const Gauss* start = nullptr) {
  Gauss g = start ? *start : standard_normal(p.d(), a.init_std);
  const Vec ts = almc_levels(a);
  const double t_last = ts.empty() ? a.t_stop : ts.back();
  if (!start) {
    const Drift W = inf_drift(variant_at(p, a.t_start, t_last, a.variant_g));
    for (int64_t k = 0; k < a.warm_steps; ++k) step(g, W, a.warm_step);
  }
  for (double t : ts) step(g, target_drift(variant_at(p, t, t_last, a.variant_g), t), a.delta);
  return g;
}

// Plain Langevin over given OU levels, `steps` steps each with step h, from `init`.
inline Gauss langevin_chain(const LinearGaussian& p, const Vec& levels, int64_t steps, double h, Gauss init) {
  for (double t : levels) {
    const Drift D = target_drift(p, t);
    for (int64_t r = 0; r < steps; ++r) step(init, D, h);
  }
  return init;
}

inline Vec geometric(double hi, double lo, int64_t n) {
  Vec v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[i] = n == 1 ? hi : hi * std::pow(lo / hi, static_cast<double>(i) / static_cast<double>(n - 1));
  return v;
}

struct VeParams {
  double sigma_max = 50, sigma_min = 0.01;
  int64_t n_levels = 100, steps = 5;
  double eps = 2e-5;
  double init_std = 1;
};
// NCSN (ald = false) and ALD of Jalal et al. (ald = true), in VE coordinates, as the papers state
// them: at level sigma the prior is N(m0, diag(s0) + sigma^2 I), the step is
// h = eps sigma^2 / sigma_L^2, ALD's likelihood term A^T (y - A x) / (vy + sigma^2).
// Init N(0, init_std^2 I) in data (VE) coordinates; the output is the VE iterate at sigma_L.
inline Gauss ve_chain(const LinearGaussian& p, bool ald, const VeParams& v) {
  const int d = p.d();
  Gauss g = standard_normal(d, v.init_std);
  const Vec sig = geometric(v.sigma_max, v.sigma_min, v.n_levels);
  const double sL2 = v.sigma_min * v.sigma_min;
  const Mat AtA = p.A.r ? mul(transpose(p.A), p.A) : Mat(d, d);
  const Vec Aty = p.A.r ? mul(transpose(p.A), p.y) : Vec(static_cast<size_t>(d), 0.0);
  for (double s : sig) {
    const double s2 = s * s;
    const double lw = ald && p.A.r ? p.w / (p.vy + s2) : 0.0;
    Vec var(p.s0);
    for (double& x : var) x += s2;
    const Drift D = drift(p.m0, var, axpby(lw, AtA, 0, AtA), axpby(lw, Aty, 0, Aty));
    for (int64_t r = 0; r < v.steps; ++r) step(g, D, v.eps * s2 / sL2);
  }
  return g;
}
// The per-level target of the last VE level: prior N(m0, s0 + sigma_L^2) times the likelihood at
// variance vy + sigma_L^2 for ALD (NCSN: the noised prior alone).
inline Gauss ve_last_target(const LinearGaussian& p, bool ald, double sigma_min) {
  const double s2 = sigma_min * sigma_min;
  Vec var(p.s0);
  for (double& x : var) x += s2;
  const int d = p.d();
  Mat L(d, d);
  Vec r(static_cast<size_t>(d), 0.0);
  if (ald && p.A.r && p.w > 0) {
    L = axpby(p.w / (p.vy + s2), mul(transpose(p.A), p.A), 0, L);
    r = axpby(p.w / (p.vy + s2), mul(transpose(p.A), p.y), 0, r);
  }
  return gauss_of(drift(p.m0, var, L, r));
}

struct XgpParams {
  double eta_max = 1;  // eta_1 (raised to sigma_y if smaller)
  int64_t n_levels = 100, steps = 5;
  double h = 1e-3;
  double t_prior = 0.01;  // the prior score's OU level
  double init_std = 1;
  bool aux_noise = true;  // false: y_k = y for every k (what the chain law would be without them)
};
// Xun-Gupta-Price: eta_1 > ... > eta_N = sigma_y geometric; at stage k the chain runs Langevin
// with the prior score at t_prior and the likelihood A^T (y_k - A x) / eta_k^2, where the
// per-chain auxiliary measurement is y_k = y + u_k, u_k = sum_{j >= k} sqrt(eta_j^2 - eta_{j+1}^2) xi_j
// (so y_N = y, and u_k ~ N(0, (eta_k^2 - sigma_y^2) I), drawn once per chain).
// u is random per chain and correlated with x, so the law is tracked for z = (x, u) jointly.
// Passing from stage k to k+1 removes xi_k from u: given u_k, xi_k = (s_k / V_k) u_k + e with e
// independent of the past, so u_{k+1} = (V_{k+1} / V_k) u_k + sqrt(s_k^2 V_{k+1} / V_k) e',
// V_k = eta_k^2 - sigma_y^2, s_k^2 = eta_k^2 - eta_{k+1}^2.
inline Gauss xgp_chain(const LinearGaussian& p, const XgpParams& x, Gauss* joint_out = nullptr) {
  const int d = p.d(), m = p.A.r, n = d + m;
  const double sy2 = p.vy;
  const Vec eta = geometric(std::max(x.eta_max, std::sqrt(sy2)), std::sqrt(sy2), x.n_levels);
  Gauss z{Vec(static_cast<size_t>(n), 0.0), Mat(n, n)};
  for (int i = 0; i < d; ++i) z.C(i, i) = x.init_std * x.init_std;
  auto V = [&](size_t k) { return x.aux_noise ? std::max(0.0, eta[k] * eta[k] - sy2) : 0.0; };
  for (int i = d; i < n; ++i) z.C(i, i) = V(0);
  const Gauss pr = ou_prior(p, x.t_prior);
  const Vec pv = ou_var(p.s0, x.t_prior);
  const Mat At = transpose(p.A), AtA = mul(At, p.A);
  const Vec Aty = mul(At, p.y);
  for (size_t k = 0; k < eta.size(); ++k) {
    if (k > 0) {
      const double Vp = V(k - 1), Vk = V(k), s2 = eta[k - 1] * eta[k - 1] - eta[k] * eta[k];
      const double a = Vp > 0 ? Vk / Vp : 0.0, q = Vp > 0 ? s2 * Vk / Vp : 0.0;
      Mat G = eye(n);
      for (int i = d; i < n; ++i) G(i, i) = a;
      z.m = mul(G, z.m);
      z.C = mul(mul(G, z.C), G);
      for (int i = d; i < n; ++i) z.C(i, i) += q;
    }
    const double lw = p.w / (eta[k] * eta[k]);
    const Drift D = drift(pr.m, pv, axpby(lw, AtA, 0, AtA), axpby(lw, Aty, 0, Aty));
    // z' = G z + c + noise: x' = (I - hP) x + h lw A^T u + h r, u' = u.
    Mat G = eye(n);
    for (int i = 0; i < d; ++i) {
      for (int j = 0; j < d; ++j) G(i, j) -= x.h * D.P(i, j);
      for (int j = 0; j < m; ++j) G(i, d + j) = x.h * lw * At(i, j);
    }
    const Mat Gt = transpose(G);
    for (int64_t r = 0; r < x.steps; ++r) {
      Vec mz = mul(G, z.m);
      for (int i = 0; i < d; ++i) mz[i] += x.h * D.r[i];
      z.m = mz;
      z.C = mul(mul(G, z.C), Gt);
      for (int i = 0; i < d; ++i) z.C(i, i) += 2 * x.h;
    }
  }
  if (joint_out) *joint_out = z;
  Gauss g{Vec(z.m.begin(), z.m.begin() + d), Mat(d, d)};
  for (int i = 0; i < d; ++i)
    for (int j = 0; j < d; ++j) g.C(i, j) = z.C(i, j);
  return g;
}

// ------------------------------------------------------------------ Gaussian mixtures (T4, T5)

// Prior sum_k w_k N(mu_k, diag(var_k)); mu, var are [K, d] row-major.
struct Gmm {
  int K = 0, d = 0;
  Vec w, mu, var;
};
struct Mixture {
  Vec w;                    // normalised
  std::vector<Gauss> comp;  // full covariances
};
inline double log_normal_pdf(const Vec& x, const Gauss& g) {
  const Vec dx = axpby(1, x, -1, g.m);
  const double two_pi = 6.283185307179586;
  return -0.5 * (dot(dx, solve_spd(g.C, dx)) + logdet_spd(g.C) + static_cast<double>(x.size()) * std::log(two_pi));
}
// mu_t of T4: components C_k = (S_kt^{-1} + A^T A / vy)^{-1}, M_k = C_k (S_kt^{-1} e^{-t} mu_k + A^T y / vy),
// w'_k ∝ w_k N(y; A e^{-t} mu_k, vy I + A S_kt A^T). A with 0 rows or w_lik = 0: the noised prior.
inline Mixture gmm_target(const Gmm& g, const Mat& A, const Vec& y, double vy, double t, double w_lik = 1.0) {
  Mixture out;
  const bool lik = A.r > 0 && w_lik > 0;
  LinearGaussian p;
  p.A = A;
  p.y = y;
  p.vy = vy;
  p.w = w_lik;
  Vec lw(static_cast<size_t>(g.K));
  double wsum = 0;
  for (double v : g.w) wsum += v;
  for (int k = 0; k < g.K; ++k) {
    p.m0.assign(g.mu.begin() + k * g.d, g.mu.begin() + (k + 1) * g.d);
    p.s0.assign(g.var.begin() + k * g.d, g.var.begin() + (k + 1) * g.d);
    out.comp.push_back(target(p, t));
    lw[k] = std::log(g.w[k] / wsum);
    if (lik) {
      const Gauss pr = ou_prior(p, t);
      Gauss ev{mul(A, pr.m), mul(mul(A, pr.C), transpose(A))};
      for (int i = 0; i < A.r; ++i) ev.C(i, i) += vy / w_lik;
      lw[k] += log_normal_pdf(y, ev);
    }
  }
  const double mx = *std::max_element(lw.begin(), lw.end());
  double s = 0;
  for (double& v : lw) s += (v = std::exp(v - mx));
  for (double& v : lw) v /= s;
  out.w = lw;
  return out;
}
// Responsibilities r_k(x) of a mixture (log-sum-exp).
inline Vec responsibilities(const Mixture& mix, const Vec& x) {
  Vec l(mix.w.size());
  for (size_t k = 0; k < l.size(); ++k) l[k] = std::log(mix.w[k]) + log_normal_pdf(x, mix.comp[k]);
  const double mx = *std::max_element(l.begin(), l.end());
  double s = 0;
  for (double& v : l) s += (v = std::exp(v - mx));
  for (double& v : l) v /= s;
  return l;
}
// Mean responsibility of each component over samples x[n, d]. Under exact draws of `mix` its
// expectation is exactly w_k, with variance at most w_k (1 - w_k) / n (r_k lies in [0, 1]).
inline Vec mean_responsibility(const Mixture& mix, const float* x, int64_t n, int d) {
  Vec acc(mix.w.size(), 0.0), xv(static_cast<size_t>(d));
  for (int64_t c = 0; c < n; ++c) {
    for (int j = 0; j < d; ++j) xv[j] = x[c * d + j];
    const Vec r = responsibilities(mix, xv);
    for (size_t k = 0; k < r.size(); ++k) acc[k] += r[k];
  }
  for (double& v : acc) v /= static_cast<double>(n);
  return acc;
}
// Index of the component with the largest responsibility (for separated modes).
inline int nearest_component(const Mixture& mix, const float* x, int d) {
  Vec xv(x, x + d);
  const Vec r = responsibilities(mix, xv);
  return static_cast<int>(std::max_element(r.begin(), r.end()) - r.begin());
}

}  // namespace almc::oracle

namespace almc::oracle {

// ------------------------------------------------------------------ the problems of `almc validate`

// A GMM prior with a mask likelihood (A as a dense matrix for the oracle, mask for the engine).
struct GmmProblem {
  const char* name = "";
  Gmm g;
  Mat A;
  std::vector<float> mask;
  Vec y;
  double vy = 1;
};
// A random mixture with a dense operator (the higher-dimensional problems of `almc validate
// --sweep`, also used by the tests): K components with means N(0, spread^2 I), diagonal variances
// in [0.2, 0.6], weights proportional to 1..K (reversed); A [m, d] with N(0, 1/d) entries; y from
// a draw of component `truth` with noise sigma_y. Every number is rounded to float, so the engine
// (matrix operator, mask empty) and the oracle see the same problem.
inline GmmProblem random_mixture_problem(const char* name, int d, int K, int m, double spread, double sigma_y,
                                         int truth, uint64_t seed) {
  Lcg g(seed);
  auto f = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  GmmProblem q;
  q.name = name;
  q.g.K = K;
  q.g.d = d;
  double wsum = 0;
  for (int k = 0; k < K; ++k) wsum += K - k;
  for (int k = 0; k < K; ++k) q.g.w.push_back(f((K - k) / wsum));
  for (int i = 0; i < K * d; ++i) q.g.mu.push_back(f(spread * g.normal()));
  for (int i = 0; i < K * d; ++i) q.g.var.push_back(f(0.2 + 0.4 * g.uniform()));
  q.A = Mat(m, d);
  for (double& a : q.A.a) a = f(g.normal() / std::sqrt(static_cast<double>(d)));
  Vec x(static_cast<size_t>(d));
  for (int j = 0; j < d; ++j) x[j] = q.g.mu[truth * d + j] + std::sqrt(q.g.var[truth * d + j]) * g.normal();
  q.vy = f(sigma_y) * f(sigma_y);
  q.y = mul(q.A, x);
  for (double& v : q.y) v = f(v + f(sigma_y) * g.normal());
  return q;
}

// d = 8, dense 6 x 8 A, sigma_y = 0.5 (validate_oracles.cpp).
LinearGaussian validate_gauss_problem();
GmmProblem validate_gmm_problem();
GmmProblem validate_bars_problem();

}  // namespace almc::oracle
