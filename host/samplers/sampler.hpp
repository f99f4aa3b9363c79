// The sampler behind almc_sampler_t: workspace, the step loop (eager or captured into CUDA
// graphs), diagnostics and outputs. One loop serves every method; methods differ only in their
// schedule (host/samplers/schedule.cpp).
#pragma once

#include <almc/almc.h>

#include "host/backend/backend.hpp"
#include "host/core/objects.hpp"
#include "host/samplers/schedule.hpp"

#include <map>
#include <string>
#include <vector>

struct almc_sampler_s {
  almc_context_t ctx = nullptr;
  almc_score_t score = nullptr;
  almc_operator_t op = nullptr;
  almc_sampler_config cfg{};
  std::vector<double> levels;
  almc::Schedule sched;
  std::string last_error;

  int64_t n = 0, d = 0, m = 0, cpm = 0, n_meas = 0;
  int64_t chain0 = 0;  // global index of row 0 (the slice's first chain)
  bool has_lik = false;
  bool y_set = false, state_set = false, ran = false;
  uint64_t y_digest = 0;  // of the measurement as set (resumable states), taken in set_measurement

  almc::Buffer x, x0, sbuf, gbuf, rbuf, tmp, resp, resp_work, y, ych, pick, out_pick, table, cur, counter, norms, flags;
  // Sequential Monte Carlo (ALMC_VARIANT_SMC, ALGORITHMS.md Sec. 9): per-chain log weights [n]
  // (double), ancestor rows [n] and a gather target [n, d] in backend memory, the weights' host copy.
  bool smc = false;
  almc::Buffer smc_logw, smc_anc, smc_x;
  std::vector<double> smc_logw_h;
  std::vector<int64_t> smc_anc_h;
  std::vector<double> smc_w_h;  // one measurement's weights, scratch of smc_reweight
  almc::PriorTableStorage tables;  // analytic priors: their tables at the current level
  float tables_t = -1.f;            // the level they hold (host view; -1: none yet)
  std::vector<float> final_norms;
  std::vector<float> snapshots;
  std::vector<int64_t> snapshot_steps;
  almc_run_info info{};
  std::map<std::pair<int, int64_t>, almc::GraphHandle*> graphs;

  ~almc_sampler_s();
  void create();                         // validate, build the schedule, allocate
  void run();
  void mean_std(float* mean, float* std);
  size_t workspace_bytes() const;

  // Resumable state (host/samplers/state.cpp).
  int64_t stopped_at = -1;   // steps done when the last run was cancelled (-1: nothing to resume)
  int64_t resume_from = -1;  // set by load_state: the next run continues after this many steps
  uint64_t resume_y = 0;     // the loaded state's measurement digest, checked when that run starts
  std::vector<unsigned char> state_buf;  // what the checkpoint callback receives
  size_t state_bytes() const;
  void save_state(void* out, size_t bytes, int64_t step) const;  // the state after `step` steps
  void load_state(const void* in, size_t bytes);
  uint64_t measurement_digest() const;

 private:
  enum Segment { kWarm = 0, kAnneal = 1, kPick = 2 };
  void step_body(Segment seg, int64_t host_step);
  void check_chains(int64_t steps_done, bool final);
  almc::FusedStepParams fused_params() const;
  void eval_score_into(float* out, const almc_level& level);
  void update_tables(float t);
  void smc_reweight(int64_t host_step, bool last);
  void likelihood_into_g();
  void residuals_into_r(const almc::StepScalars* cur);
  void release_graphs() noexcept;
  template <class F>
  void for_callback_rows(F&& call) const;
};
