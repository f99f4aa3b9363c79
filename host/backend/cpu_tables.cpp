// Built with -ffast-math (CMakeLists.txt): glibc declares its vector log (libmvec) only then. The
// loop is a pure map of step.cuh's prior_logdet_term, one entry per iteration (nothing to
// reassociate); the sums happen in the caller, built without it.
#include "host/backend/cpu_tables.hpp"

// Clang reports the `omp simd` loops it does not vectorise (sanitizer builds at -O1); they are
// correct either way.
#if defined(__clang__)
#pragma clang diagnostic ignored "-Wpass-failed"
#endif

#include "cuda/langevin/step.cuh"
#include "host/backend/cpu_noise.hpp"  // ALMC_CPU_CLONES

namespace almc {

// x86-64-v3 rather than plain AVX2: ou_var calls fmaf, which needs FMA to vectorise.
ALMC_CPU_CLONES("avx512f", "arch=x86-64-v3", "default")
void cpu_prior_log_terms(const GmmPrior& g, const LevelConsts& l, int64_t i0, int64_t len, double* logs) {
#pragma omp simd
  for (int64_t i = 0; i < len; ++i) logs[i] = prior_logdet_term(g, l, i0 + i);
}

}  // namespace almc
