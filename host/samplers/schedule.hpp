// Lowering a sampler configuration to the per-step scalars of a run (ALGORITHMS.md Sec. 3-4).
// Every method becomes one list of StepScalars; the step loop itself is the same for all.
#pragma once

#include <almc/almc.h>

#include "cuda/langevin/params.cuh"

#include <string>
#include <vector>

namespace almc {

struct ScheduleInputs {
  almc_sampler_config cfg;     // defaults already resolved
  std::vector<double> levels;  // the user's list (OU times), for ALMC_SCHEDULE_LIST
  bool has_likelihood = false; // an operator is present and likelihood_weight != 0
  bool neg_grad = false;       // the operator is a nonlinear -grad R callback
  double op_norm = -1;         // ||A|| (-1 unknown)
  // An analytic prior's smallest component variance (over coordinates and components of
  // non-zero weight), or -1 for a score known only through a network or callback, whose
  // curvature the stability checks take to be at most 1 (a standardised prior).
  double prior_min_var = -1;
};

// A bound on the curvature of -log p_t (the largest eigenvalue of minus the score's Jacobian) at
// OU time t: 1 / S_t for the smallest variance S_t = e^{-2t} v + 1 - e^{-2t} of an analytic
// prior's components (a mixture's is at most its components' largest precision), 1 otherwise.
double prior_curvature(const ScheduleInputs& in, double t);

struct Schedule {
  std::vector<StepScalars> steps;
  int64_t warm_steps = 0;
  double warm_step = 0;
  float init_scale = 1.f;     // the initial draw is scaled by this (init_scale x coord_factor)
  float coord_factor = 1.f;   // data coordinates -> the first level's coordinates (VE methods)
  bool init_uniform = false;
  bool tweedie = false;       // final Tweedie denoise at tweedie_t
  double tweedie_t = 0;
  int64_t average_last = 0;   // W > 1: output a random iterate among the last W steps
  bool xgp = false;           // per-chain auxiliary measurements
  std::vector<float> xgp_scales;  // sqrt(eta_k^2 - eta_{k+1}^2), k = 0 .. N-2
  double max_stable_delta = -1;   // ALMC: 2 / (L + 1); -1 unknown
  std::string unstable;           // non-empty: why the schedule violates the stability bound
  std::vector<std::string> notes; // things worth logging
};


// Fills the documented defaults into a copy of cfg (non-positive values mean "default").
// ALMC_VARIANT_BEST (method ALMC) becomes the paper's likelihood with, unless a schedule is set,
// levels geometric in sigma: what `almc validate --sweep` measured best (ALGORITHMS.md Sec. 8).
almc_sampler_config resolve_defaults(const almc_sampler_config& cfg);
// Throws Error(ALMC_ERR_INVALID_ARGUMENT) naming a parameter out of range.
void validate_config(const almc_sampler_config& cfg, bool has_operator);
// Every step count is computed and bounded in double before conversion (at most 2^25 steps a run;
// Error(ALMC_ERR_INVALID_ARGUMENT) naming the option otherwise), and the stability check runs
// before the table is built: an unstable schedule without cfg.force_unstable comes back with
// `unstable` set and no steps.
Schedule build_schedule(const ScheduleInputs& in);
// Whether build_schedule reads a step-size or level field of the config for this method and
// schedule: 1 yes, 0 never, -1 not one of those fields or an unknown method or schedule
// (almc_method_reads_field; the enums as ints, as a C caller may pass any value).
int method_reads_field(int method, int schedule, const char* field);

}  // namespace almc
