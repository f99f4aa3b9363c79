// Snapshots of a run on the command line: `almc sample --snapshot FILE --snapshot-every N` keeps
// the run's resumable state in FILE (every N steps, and on Ctrl-C), `--resume FILE` continues it.
// A snapshot file is one text line naming the format, one JSON line naming the run (the same
// identity as a slice record: every option and input digest that decides the samples), then the
// engine's state (almc_sampler_save_state) as raw bytes.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace almc::cli {

struct Snapshot {
  nlohmann::json record;  // format, run_id, run, step, total, state_bytes
  std::vector<unsigned char> state;
};

// Written atomically (a kill while writing leaves the previous snapshot). Throws CliError.
void write_snapshot(const std::string& path, const nlohmann::json& run, int64_t step, int64_t total, const void* state,
                    size_t bytes);
// Throws CliError (one line) when the file cannot be read or is not an almc snapshot.
Snapshot read_snapshot(const std::string& path);
// Throws CliError naming what differs when the snapshot is not of the run `run`.
void check_snapshot_run(const Snapshot& snap, const std::string& path, const nlohmann::json& run);

}  // namespace almc::cli
