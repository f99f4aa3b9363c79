// Snapshots of a run on the command line: `almc sample --snapshot FILE --snapshot-every N` keeps
// the run's resumable state in FILE (every N steps, and on Ctrl-C), `--resume FILE` continues it.
// The file is the library's snapshot container (almc_snapshot_*, almc.h); the run it names is the
// same identity as a slice record (every option and input digest that decides the samples). This
// file only turns the library's refusals into the command's one-line errors.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct almc_snapshot_s;

namespace almc::cli {

struct Snapshot {
  std::shared_ptr<almc_snapshot_s> handle;  // the library's (almc_snapshot_t)
  int64_t step = 0, total = 0;              // steps done, of the run's total
  std::vector<unsigned char> state;
};

// Written atomically (a kill while writing leaves the previous snapshot). Throws CliError.
void write_snapshot(const std::string& path, const nlohmann::json& run, const void* state, size_t bytes);
// Throws CliError (one line) when the file cannot be read or is not an almc snapshot.
Snapshot read_snapshot(const std::string& path);
// The options whose settings differ between two run identities' "config" lists, comma-separated
// ("" when none, or when either has no such list). Defined beside run_identity (sample.cpp).
std::string config_differences(const nlohmann::json& held, const nlohmann::json& now);
// Throws CliError naming what differs when the snapshot is not of the run `run`.
void check_snapshot_run(const Snapshot& snap, const std::string& path, const nlohmann::json& run);

}  // namespace almc::cli
