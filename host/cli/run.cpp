// Running a sampler for the CLI: progress on a terminal, Ctrl-C, results back to the host.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "host/cli/commands.hpp"
#include "host/cli/snapshot.hpp"
#include "host/samplers/schedule.hpp"

namespace almc::cli {
namespace {

// The signal that asked the command to stop (SIGINT: Ctrl-C; SIGTERM: kill, a batch system's time
// limit), 0 when none came.
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_sigint(int sig) { g_interrupted = sig; }

// How a stop by `sig` is reported: its word and the shell's exit code 128 + sig.
const char* stop_word(int sig) { return sig == SIGTERM ? "terminated (SIGTERM)" : "interrupted"; }
int stop_code(int sig) { return 128 + (sig == SIGTERM ? SIGTERM : SIGINT); }

struct Progress {
  bool show = false;
  std::string label;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now(), last{};
  bool printed = false;
  RateMeter meter;
  int (*stop)(void*) = nullptr;
  void* stop_data = nullptr;
};

std::string format_seconds(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  if (s < 60)
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  else if (s < 3600)
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  else
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) / 60) % 60);
  return buf;
}

int progress_cb(const almc_progress* p, void* user) {
  auto* st = static_cast<Progress*>(user);
  if (st->show && p) {
    const auto now = std::chrono::steady_clock::now();
    st->meter.add(std::chrono::duration<double>(now - st->start).count(), p->step);
    // At most ~8 updates a second, and always the last one.
    if (p->step >= p->total || now - st->last > std::chrono::milliseconds(120)) {
      st->last = now;
      const double pct = p->total > 0 ? 100.0 * double(p->step) / double(p->total) : 0.0;
      const double rate = st->meter.rate(), eta = st->meter.eta(p->total);
      char res[32] = "";
      if (std::isfinite(p->mean_residual)) std::snprintf(res, sizeof res, "  residual %.4g", p->mean_residual);
      std::fprintf(stderr, "\r%s: step %lld/%lld (%.0f%%)  %.0f steps/s  ETA %s%s   ", st->label.c_str(),
                   static_cast<long long>(p->step), static_cast<long long>(p->total), pct, std::isfinite(rate) ? rate : 0.0,
                   format_seconds(eta).c_str(), res);
      std::fflush(stderr);
      st->printed = true;
    }
  }
  if (st->stop && st->stop(st->stop_data)) return 1;
  return g_interrupted ? 1 : 0;
}

// The checkpoint callback of --snapshot-every: the state goes to the snapshot file. A failure to
// write it stops the run (ALMC_ERR_CALLBACK) and is reported with the writer's message.
struct SnapshotWriter {
  const RunRequest* rq = nullptr;
  int64_t total = -1;
  std::string error;
};

int snapshot_cb(const void* state, size_t bytes, int64_t /*step: in the state*/, void* user) {
  auto* w = static_cast<SnapshotWriter*>(user);
  try {
    write_snapshot(w->rq->snapshot, w->rq->run_identity, state, bytes);
    return 0;
  } catch (const std::exception& e) {
    w->error = e.what();
    return 1;
  }
}

// SIGINT and SIGTERM stop the run at its next progress poll (instead of killing the process);
// the previous handlers come back when the run ends, however it ends.
struct SigintGuard {
  void (*previous)(int);
  void (*previous_term)(int);
  SigintGuard() {
    g_interrupted = 0;
    previous = std::signal(SIGINT, on_sigint);
    previous_term = std::signal(SIGTERM, on_sigint);
  }
  ~SigintGuard() {
    std::signal(SIGINT, previous == SIG_ERR ? SIG_DFL : previous);
    std::signal(SIGTERM, previous_term == SIG_ERR ? SIG_DFL : previous_term);
  }
};

// The files written inside the current OutputPhase (none when no phase is active).
bool g_output_phase = false;
std::vector<std::string> g_written;
void (*g_phase_previous)(int) = SIG_DFL;
void (*g_phase_previous_term)(int) = SIG_DFL;

void stop_if_interrupted() {
  const int sig = g_interrupted;
  if (!sig) return;
  g_interrupted = 0;
  // The first few by name (--png-each writes one file per sample).
  std::string done;
  const size_t named = std::min<size_t>(g_written.size(), 6);
  for (size_t k = 0; k < named; ++k) done += (k ? ", " : "") + g_written[k];
  if (g_written.size() > named) done += " and " + std::to_string(g_written.size() - named) + " more";
  throw CliError(std::string(stop_word(sig)) + " while writing the outputs; " +
                     (done.empty() ? std::string("none was written")
                                   : "written in full: " + done + "; the others were not written"),
                 stop_code(sig));
}

// A step the stability guard refused. The engine's message, in the command's terms, opens with
// the option at fault (--delta, --eps or --warm-step): the advice names that one.
CliError unstable_error(const std::string& msg) {
  const std::string option = msg.rfind("--", 0) == 0 ? msg.substr(0, msg.find(' ')) : "--delta";
  return CliError("sampler refused: " + msg + " (lower " + option + ", or pass --force to run anyway)");
}

}  // namespace

OutputPhase::OutputPhase() {
  g_interrupted = 0;
  g_written.clear();
  g_output_phase = true;
  g_phase_previous = std::signal(SIGINT, on_sigint);
  g_phase_previous_term = std::signal(SIGTERM, on_sigint);
}

OutputPhase::~OutputPhase() {
  std::signal(SIGINT, g_phase_previous == SIG_ERR ? SIG_DFL : g_phase_previous);
  std::signal(SIGTERM, g_phase_previous_term == SIG_ERR ? SIG_DFL : g_phase_previous_term);
  g_output_phase = false;
}

void OutputPhase::finish() const { stop_if_interrupted(); }

void output_written(const std::string& path) {
  if (!g_output_phase) return;
  g_written.push_back(path);
  stop_if_interrupted();
}

void RateMeter::add(double seconds, int64_t step) {
  if (!samples_.empty() && samples_.back().second < phase_step_ && step >= phase_step_) samples_.clear();
  samples_.emplace_back(seconds, step);
  // Keep the window, but always two samples to measure with.
  size_t drop = 0;
  while (samples_.size() - drop > 2 && seconds - samples_[drop + 1].first >= window_) ++drop;
  samples_.erase(samples_.begin(), samples_.begin() + static_cast<std::ptrdiff_t>(drop));
}

double RateMeter::rate() const {
  if (samples_.size() < 2) return NAN;
  const double dt = samples_.back().first - samples_.front().first;
  const double ds = double(samples_.back().second - samples_.front().second);
  return dt > 0 && ds > 0 ? ds / dt : NAN;
}

double RateMeter::eta(int64_t total) const {
  const double r = rate();
  if (!std::isfinite(r) || samples_.empty()) return NAN;
  return double(total - samples_.back().second) / r;
}

bool plan_run(const almc_sampler_config& cfg, almc_operator_t op, RunPlan* plan) {
  try {
    almc::ScheduleInputs in;
    in.cfg = almc::resolve_defaults(cfg);
    if (cfg.schedule == ALMC_SCHEDULE_LIST && cfg.levels) in.levels.assign(cfg.levels, cfg.levels + cfg.n_levels_list);
    in.has_likelihood = op != nullptr && cfg.likelihood_weight != 0;
    double norm = -1;
    if (op && almc_operator_norm(op, &norm) == ALMC_OK) in.op_norm = norm;
    const almc::Schedule s = almc::build_schedule(in);
    plan->steps = static_cast<int64_t>(s.steps.size());
    plan->warm_steps = s.warm_steps;
    plan->score_evals = plan->steps - s.warm_steps + (s.tweedie ? 1 : 0);
    return true;
  } catch (const std::exception&) {
    return false;  // the sampler's creation reports what is wrong
  }
}

RunResult run_sampler(const RunRequest& rq) {
  // Ctrl-C is caught from here on, not only while the sampler runs: a signal during the planning
  // and the sampler's creation (which plans an ONNX network) used to kill the process outright
  // (no exit status 130, no message); now the run stops at its first progress poll.
  SigintGuard guard;
  Progress prog;
  prog.show = progress_enabled(rq.quiet);
  prog.label = rq.label;
  prog.stop = rq.stop;
  prog.stop_data = rq.stop_data;
  RunPlan plan;
  if (plan_run(rq.cfg, rq.op, &plan)) {
    prog.meter = RateMeter(plan.warm_steps);
    if (!rq.quiet)
      std::fprintf(stderr, "%s: planned %lld steps (%lld warm-start), %lld score evaluations on %lld chains\n",
                   rq.label.c_str(), static_cast<long long>(plan.steps), static_cast<long long>(plan.warm_steps),
                   static_cast<long long>(plan.score_evals),
                   static_cast<long long>(rq.cfg.n_meas * rq.cfg.chains_per_meas));
  }
  almc_sampler_config cfg = rq.cfg;
  cfg.progress = &progress_cb;
  cfg.progress_user_data = &prog;
  SnapshotWriter writer{&rq, plan.steps > 0 ? plan.steps : -1, {}};
  if (!rq.snapshot.empty() && rq.snapshot_every > 0) {
    cfg.checkpoint_every = rq.snapshot_every;
    cfg.checkpoint = &snapshot_cb;
    cfg.checkpoint_user_data = &writer;
  }

  // The host copies of the results are allocated (and touched) before the sampler: a run whose
  // results cannot fit beside it is refused now, not after hours of sampling.
  RunResult r;
  // A slice (chain_count > 0) returns its own chains; its mean and std come from merging.
  const bool slice = cfg.chain_count > 0;
  const int64_t n = slice ? cfg.chain_count : cfg.n_meas * cfg.chains_per_meas;
  const double result_bytes = 4.0 * (double(n) * double(rq.d) + double(n) + (slice ? 0.0 : 2.0 * double(cfg.n_meas) * double(rq.d)));
  try {
    r.samples.resize(static_cast<size_t>(n * rq.d));
    r.residuals.resize(static_cast<size_t>(n));
    if (!slice) {
      r.mean.resize(static_cast<size_t>(cfg.n_meas * rq.d));
      r.std.resize(r.mean.size());
    }
  } catch (const std::bad_alloc&) {
    char mib[32];
    std::snprintf(mib, sizeof mib, "%.0f", result_bytes / 1048576.0);
    throw CliError(std::string("out of memory: the samples (") + std::to_string(n) + " chains x d = " + std::to_string(rq.d) +
                   ") need " + mib + " MiB of host memory; use fewer chains (or --chain-range slices)");
  }

  almc_sampler_t raw = nullptr;
  almc_status st = almc_sampler_create(rq.ctx, rq.score, rq.op, &cfg, &raw);
  Sampler s(raw);
  if (st == ALMC_ERR_UNSTABLE) {
    const char* why = almc_context_last_error(rq.ctx);
    throw unstable_error(why && *why ? sampler_terms(why) : almc_status_string(st));
  }
  if (st != ALMC_OK) {
    const char* why = almc_context_last_error(rq.ctx);
    std::string msg = why && *why ? sampler_terms(why) : almc_status_string(st);
    // A value the library refuses that it names by an option's field ("t_start = 50 is too large",
    // now "--t-start 50 ...") is a usage error, exit 2, as the command's own checks of its options.
    const bool names_option = st == ALMC_ERR_INVALID_ARGUMENT && why && msg != why;
    std::replace(msg.begin(), msg.end(), '\n', ' ');
    if (st == ALMC_ERR_OUT_OF_MEMORY && msg.find("use fewer chains") == std::string::npos) {
      char mib[32];
      std::snprintf(mib, sizeof mib, "%.0f", result_bytes / 1048576.0);
      msg += std::string(" (beside the ") + mib + " MiB the command holds for the results): use fewer chains (or --chain-range slices)";
    }
    throw CliError("cannot create the sampler: " + msg, names_option ? 2 : 1);
  }
  if (rq.op && rq.y) check(almc_sampler_set_measurement(s.get(), rq.y), "measurement", s.get());
  if (rq.resume_state)
    check(almc_sampler_load_state(s.get(), rq.resume_state->data(), rq.resume_state->size()), "--resume", s.get());

  const auto t0 = std::chrono::steady_clock::now();
  st = almc_sampler_run(s.get());
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (prog.printed) std::fprintf(stderr, "\n");
  if (st == ALMC_ERR_CANCELLED) {
    // Nothing partial is written, except the state when snapshots were asked for.
    const int sig = g_interrupted;
    if (rq.snapshot.empty()) throw CliError(stop_word(sig), stop_code(sig));
    size_t bytes = 0;
    check(almc_sampler_state_size(s.get(), &bytes), "snapshot", s.get());
    std::vector<unsigned char> state(bytes);
    int64_t step = 0;
    check(almc_sampler_save_state(s.get(), state.data(), bytes, &step), "snapshot", s.get());
    write_snapshot(rq.snapshot, rq.run_identity, state.data(), bytes);
    throw CliError(std::string(stop_word(sig)) + " at step " + std::to_string(step) + " of " +
                       std::to_string(writer.total) + "; the state is saved in " + rq.snapshot +
                       ": continue with the same options and --resume " + rq.snapshot,
                   stop_code(sig));
  }
  if (st == ALMC_ERR_CALLBACK && !writer.error.empty()) throw CliError(writer.error);
  if (st == ALMC_ERR_UNSTABLE)
    throw unstable_error(sampler_terms(almc_sampler_last_error(s.get())));
  check(st, "sampling failed", s.get());

  check(almc_sampler_get_samples(s.get(), r.samples.data()), "samples", s.get());
  if (!slice) {
    check(almc_sampler_get_mean_std(s.get(), r.mean.data(), r.std.data()), "mean/std", s.get());
  }
  if (rq.op && almc_sampler_get_residuals(s.get(), r.residuals.data()) != ALMC_OK)
    std::fill(r.residuals.begin(), r.residuals.end(), NAN);
  if (!rq.op) std::fill(r.residuals.begin(), r.residuals.end(), NAN);
  r.info.struct_size = sizeof(almc_run_info);
  check(almc_sampler_run_info(s.get(), &r.info), "run info", s.get());
  almc_sampler_workspace_bytes(s.get(), &r.workspace_bytes);
  almc_backend b = ALMC_BACKEND_CPU;
  almc_context_backend(rq.ctx, &b);
  r.backend = b == ALMC_BACKEND_CUDA ? "cuda" : "cpu";
  const char* dev = almc_context_device_name(rq.ctx);
  r.device = dev ? dev : "";
  r.wall_seconds = wall;
  return r;
}

}  // namespace almc::cli
