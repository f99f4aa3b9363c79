// The processes one `almc sample` runs on: this process alone, or every rank of an MPI launch
// (mpirun, srun --mpi=...) when almc is built with MPI (ALMC_MPI). Under MPI each rank runs a
// contiguous block of the run's chains (a slice, see slices.hpp) on its node-local GPU or the
// CPU, rank 0 gathers the blocks in rank order (= chain order) and writes every output, and a
// failure on any rank stops all of them with one error line (printed by rank 0) and no output.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "host/cli/commands.hpp"

namespace almc::cli {

// What this process's environment says about an MPI launch: the launcher's variables (Open MPI's
// OMPI_COMM_WORLD_*, PMI_* of MPICH, Intel MPI and Slurm's PMI2, PMIX_RANK of PMIx).
struct Launch {
  bool mpi = false;  // started by an MPI launcher
  int rank = 0;      // this process's rank (0 when unknown)
  int size = 1;      // ranks in the launch (1 when unknown)
};
Launch detect_launch();

class Team {
 public:
  // Joins MPI when started by an MPI launcher. A build without MPI started as several ranks is
  // refused (each rank would run, and write, the whole run): CliError.
  explicit Team(const std::string& command);
  ~Team();
  Team(const Team&) = delete;
  Team& operator=(const Team&) = delete;

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }
  bool mpi() const { return mpi_; }
  // This rank's CUDA device (node-local rank modulo the node's devices; 0 without MPI).
  int device() const { return device_; }

  // Runs global chains start .. start + count - 1 of the run `request` describes: alone, all of
  // them; under MPI this rank's block of them, gathered on rank 0 (whose result then holds all
  // `count` chains, and for a whole run its mean and std computed as a single run computes them).
  // Collective: every rank calls it once; a failure on any rank throws on all of them.
  RunResult run(const RunRequest& request, int64_t start, int64_t count);

  // Runs body on the team: alone, as is; under MPI a failure anywhere ends every rank with the
  // lowest failing rank's error, printed once ("rank R: ..." by rank 0; the others stay silent).
  static void run_body(const std::string& command, const std::function<void(Team&)>& body);

 private:
  struct Failure;
  void agree(int code, const std::string& message);  // throws when any rank failed
  int rank_ = 0, size_ = 1, device_ = 0;
  bool mpi_ = false, agreed_failure_ = false;
  [[maybe_unused]] bool stopped_for_peer_ = false;  // read only in MPI builds
  std::unique_ptr<Failure> failure_;
  friend int team_stop_poll(void*);
};

// A rank that fails along with the others but leaves the report to rank 0: main() exits with
// its code and prints nothing.
class SilentError : public CliError {
 public:
  explicit SilentError(int exit_code) : CliError("", exit_code) {}
};

// False on the ranks of an MPI launch other than 0: they leave error messages that every rank
// would print alike (a bad option) to rank 0.
bool prints_errors();

// The exit status of a rank that leaves an error to rank 0. A rank in MPI keeps its code: its
// exit waits for every rank (MPI ends at exit, after rank 0 has printed). A rank that failed
// before joining MPI (a bad option, alike on every rank) exits 0: launchers kill the whole job as
// soon as one process exits non-zero, which could stop rank 0 before it prints; rank 0's status
// is the launch's.
int quiet_rank_exit_code(int code);

}  // namespace almc::cli
