// The log-determinant terms of the analytic prior's per-level tables on the CPU, vectorised:
// step.cuh's prior_logdet_term over a range of entries (the library's scalar log would otherwise
// run one double at a time: K x d calls per annealing step).
#pragma once

#include "cuda/langevin/params.cuh"

#include <cstdint>

namespace almc {

struct LevelConsts;

// logs[i] = prior_logdet_term(g, l, i0 + i) for i < len; the caller sums them in its own order.
void cpu_prior_log_terms(const GmmPrior& g, const LevelConsts& l, int64_t i0, int64_t len, double* logs);

}  // namespace almc
