// Spectral norm of a linear map by power iteration on A^T A (host, a fixed start vector).
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace almc {

// forward(x[d], y[m]) and adjoint(y[m], x[d]). Returns an estimate of ||A||_2 from below after
// `iters` iterations: within about 1e-3 relative for most operators, but it converges slowly when
// the top singular values are close (0.57% low for a 3 x 5 blur of a 6 x 4 image), so a step
// chosen within ~1% of the stability bound it sets may still be unstable.
template <class Fwd, class Adj>
double power_iteration_norm(int64_t m, int64_t d, Fwd&& forward, Adj&& adjoint, int iters = 100) {
  std::vector<float> x(static_cast<size_t>(d)), y(static_cast<size_t>(m));
  // A deterministic, non-symmetric start so that no eigenvector is missed by symmetry.
  for (int64_t j = 0; j < d; ++j) x[j] = 1.0f + 0.37f * static_cast<float>(std::sin(1.7 * static_cast<double>(j) + 0.3));
  double lambda = 0;
  for (int it = 0; it < iters; ++it) {
    double nx = 0;
    for (float v : x) nx += static_cast<double>(v) * v;
    nx = std::sqrt(nx);
    if (nx == 0) return 0;
    for (float& v : x) v = static_cast<float>(v / nx);
    forward(x.data(), y.data());
    adjoint(y.data(), x.data());
    double dot = 0;
    for (float v : x) dot += static_cast<double>(v) * v;
    lambda = std::sqrt(dot);  // ||A^T A x|| for unit x -> largest eigenvalue of A^T A
  }
  return std::sqrt(lambda);
}

}  // namespace almc
