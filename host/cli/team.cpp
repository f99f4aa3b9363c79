// `almc sample` on one process or on the ranks of an MPI launch (team.hpp). The MPI parts use the
// helper library (include/almc/almc_mpi.h) and are compiled only when almc is built with MPI.
#include "host/cli/team.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <new>

#ifdef ALMC_CLI_MPI
#include <almc/almc_mpi.h>
#endif

namespace almc::cli {

namespace {

bool env_int(const char* name, int* out) {
  const char* v = std::getenv(name);
  if (!v || !*v) return false;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (*end || x < 0 || x > (1 << 30)) return false;
  *out = static_cast<int>(x);
  return true;
}

}  // namespace

Launch detect_launch() {
  Launch l;
  // (size variable, rank variable) of the launchers we know, first match wins.
  const char* pairs[][2] = {{"OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"},
                            {"PMI_SIZE", "PMI_RANK"},
                            {"MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_RANK"}};
  for (const auto& p : pairs) {
    int size = 0;
    if (!env_int(p[0], &size)) continue;
    l.mpi = true;
    l.size = std::max(size, 1);
    env_int(p[1], &l.rank);
    return l;
  }
  int rank = 0;
  if (env_int("PMIX_RANK", &rank)) {  // PMIx (srun --mpi=pmix) names no size: Slurm's task count
    l.mpi = true;
    l.rank = rank;
    int n = 0;
    l.size = env_int("SLURM_NTASKS", &n) && n > 0 ? n : rank + 1;
  }
  return l;
}

bool prints_errors() { return detect_launch().rank == 0; }

namespace {
bool g_joined_mpi = false;  // MPI_Init done here, MPI_Finalize held for the exit
}  // namespace

int quiet_rank_exit_code(int code) { return g_joined_mpi ? code : 0; }

#ifdef ALMC_CLI_MPI
namespace {
void require_ok(almc_status st, const char* what) {
  if (st != ALMC_OK) throw CliError(std::string(what) + ": " + almc_status_string(st));
}

// Runs f: 0, or the exit code of what it threw (its message in *why), as main() would report it.
int outcome(const std::function<void()>& f, std::string* why) {
  try {
    f();
    return 0;
  } catch (const CliError& e) {
    *why = e.what();
    return e.exit_code();
  } catch (const std::bad_alloc&) {
    *why = "out of memory";
    return 1;
  } catch (const std::exception& e) {
    *why = e.what();
    return 1;
  }
}
}  // namespace
#endif

struct Team::Failure {
  int rank = -1, code = 0;
  std::string message;
};

int team_stop_poll(void* data) {
#ifdef ALMC_CLI_MPI
  auto* t = static_cast<Team*>(data);
  if (!t->stopped_for_peer_ && almc_mpi_peer_failed(MPI_COMM_WORLD)) t->stopped_for_peer_ = true;
  return t->stopped_for_peer_ ? 1 : 0;
#else
  return 0;
#endif
}

#ifdef ALMC_CLI_MPI
namespace {
// MPI ends when the process exits, after main() has printed the run's error, never before: the
// ranks meet first, so no rank leaves (and no launcher, seeing a non-zero exit, kills the job)
// until rank 0 has written its one error line.
void finalize_mpi_at_exit() {
  int initialized = 0, finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  if (!initialized || finalized) return;
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Barrier(MPI_COMM_WORLD);
  MPI_Finalize();
}
}  // namespace
#endif

Team::Team(const std::string& command) {
  const Launch l = detect_launch();
  if (!l.mpi) return;
#ifdef ALMC_CLI_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
    std::atexit(finalize_mpi_at_exit);
    g_joined_mpi = true;
  }
  mpi_ = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
  // Collective, so done here while every rank is sure to be present.
  almc_mpi_local_device(MPI_COMM_WORLD, &device_);
#else
  rank_ = l.rank;
  size_ = l.size;
  if (l.size > 1) {
    if (l.rank != 0) throw SilentError(2);
    throw CliError("started as " + std::to_string(l.size) + " MPI ranks, but this almc is built without MPI (ALMC_MPI=OFF or " +
                       "no MPI found): every rank would run the whole run; rebuild with MPI (libopenmpi-dev), or run " +
                       "slices with --chain-range and join them with almc merge",
                   2);
  }
#endif
  (void)command;
}

// MPI stays up until the process exits (finalize_mpi_at_exit).
Team::~Team() = default;

void Team::agree(int code, const std::string& message) {
#ifdef ALMC_CLI_MPI
  almc_mpi_failure f;
  if (almc_mpi_agree(MPI_COMM_WORLD, code, message.c_str(), &f) == 0) return;
  agreed_failure_ = true;
  failure_ = std::make_unique<Failure>();
  failure_->rank = f.rank;
  failure_->code = f.code;
  failure_->message = f.message;
  throw SilentError(f.code);  // run_body turns it into the report
#else
  (void)code;
  (void)message;
#endif
}

RunResult Team::run(const RunRequest& request, int64_t start, int64_t count) {
  if (!mpi_) return run_sampler(request);
#ifdef ALMC_CLI_MPI
  // Every rank has its inputs and engine objects: any that failed stops all before sampling.
  agree(0, "");
  int64_t block_start = 0, block_count = 0;
  require_ok(almc_chain_block(start, count, size_, rank_, &block_start, &block_count), "chain block");
  const int64_t d = request.d;
  RunResult mine, all;
  std::string why;
  int code = outcome(
      [&] {
        if (block_count > 0) {
          RunRequest rq = request;
          rq.cfg.chain_start = block_start;
          rq.cfg.chain_count = block_count;
          rq.quiet = request.quiet || !root();
          rq.stop = &team_stop_poll;
          rq.stop_data = this;
          mine = run_sampler(rq);
        }
        if (root()) {
          all.samples.resize(static_cast<size_t>(count * d));
          all.residuals.resize(static_cast<size_t>(count));
        }
      },
      &why);
  // Stopped because a peer failed (as an interrupt): the peer's error is the one to report.
  if (stopped_for_peer_ && code == 130) code = 0;
  agree(code, why);

  const int64_t n_mine = static_cast<int64_t>(mine.residuals.size());
  require_ok(almc_mpi_gather_rows(MPI_COMM_WORLD, 0, mine.samples.data(), n_mine, d, all.samples.data()),
             "gathering the samples");
  require_ok(almc_mpi_gather_rows(MPI_COMM_WORLD, 0, mine.residuals.data(), n_mine, 1, all.residuals.data()),
             "gathering the residuals");
  // The run took as long as its slowest rank.
  double secs[2] = {mine.info.seconds, mine.wall_seconds}, slowest[2] = {0, 0};
  MPI_Allreduce(secs, slowest, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (!root()) return all;
  all.info = mine.info;
  all.info.seconds = slowest[0];
  all.wall_seconds = slowest[1];
  all.backend = mine.backend;
  all.device = mine.device;
  all.workspace_bytes = mine.workspace_bytes;
  double sum = 0;
  for (float r : all.residuals) sum += r;
  all.info.mean_residual = count > 0 ? sum / double(count) : 0.0;
  const almc_sampler_config& cfg = request.cfg;
  if (start == 0 && count == cfg.n_meas * cfg.chains_per_meas) {
    all.mean.resize(static_cast<size_t>(cfg.n_meas * d));
    all.std.resize(all.mean.size());
    const almc_status st =
        almc_chain_mean_std(all.samples.data(), cfg.n_meas, cfg.chains_per_meas, d, all.mean.data(), all.std.data());
    if (st != ALMC_OK) throw CliError(std::string("mean/std: ") + almc_status_string(st));
  }
  return all;
#else
  (void)start;
  (void)count;
  return run_sampler(request);
#endif
}

void Team::run_body(const std::string& command, const std::function<void(Team&)>& body) {
  Team team(command);
  if (!team.mpi()) {
    body(team);
    return;
  }
#ifdef ALMC_CLI_MPI
  std::string why;
  const int code = outcome([&] { body(team); }, &why);
#else
  const int code = 0;
  const std::string why;
#endif
  // The last agreement: the body's outcome everywhere (rank 0's writing included).
  if (!team.agreed_failure_) {
    try {
      team.agree(code, why);
    } catch (const SilentError&) {
    }
  }
  if (!team.failure_) return;
  const Failure& f = *team.failure_;
  if (!team.root()) throw SilentError(f.code);
  throw CliError(team.size() > 1 ? "rank " + std::to_string(f.rank) + ": " + f.message : f.message, f.code);
}

}  // namespace almc::cli
