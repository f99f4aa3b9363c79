// `almc sample --snapshot / --resume`: the snapshot file (see snapshot.hpp).
#include "host/cli/snapshot.hpp"

#include <algorithm>
#include <cstring>

#include "host/cli/commands.hpp"
#include "host/cli/slices.hpp"
#include "host/io/file.hpp"

namespace almc::cli {

using json = nlohmann::json;

namespace {

const std::string kFormat = "almc-snapshot-1";
// A state is x and at most two more buffers of the run's size: the .npy cap is ample.
constexpr uint64_t kMaxSnapshotBytes = almc::io::kMaxArrayFileBytes * 3;

std::string run_id(const json& run) { return text_digest(run.dump(-1, ' ', false, json::error_handler_t::replace)); }

}  // namespace

void write_snapshot(const std::string& path, const json& run, int64_t step, int64_t total, const void* state,
                    size_t bytes) {
  const json rec = {{"format", kFormat}, {"run_id", run_id(run)}, {"run", run},
                    {"step", step},      {"total", total},        {"state_bytes", bytes}};
  const std::string head = kFormat + "\n" + rec.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::vector<unsigned char> all(head.size() + bytes);
  std::memcpy(all.data(), head.data(), head.size());
  if (bytes) std::memcpy(all.data() + head.size(), state, bytes);
  try {
    almc::io::write_file_atomic(path, all.data(), all.size());
  } catch (const almc::io::IoError& e) {
    throw CliError(std::string("--snapshot ") + e.what());
  }
}

Snapshot read_snapshot(const std::string& path) {
  std::vector<unsigned char> bytes;
  try {
    bytes = almc::io::read_regular_file(path, kMaxSnapshotBytes);
  } catch (const almc::io::IoError& e) {
    throw CliError(std::string("--resume ") + e.what());
  }
  const auto bad = [&](const std::string& why) { return CliError("--resume " + path + ": " + why); };
  const std::string first = kFormat + "\n";
  if (bytes.size() < first.size() || std::memcmp(bytes.data(), first.data(), first.size()) != 0)
    throw bad("not an almc snapshot (written by almc sample --snapshot)");
  const auto line_end = std::find(bytes.begin() + static_cast<std::ptrdiff_t>(first.size()), bytes.end(), '\n');
  if (line_end == bytes.end()) throw bad("the snapshot's record is cut off");
  Snapshot s;
  try {
    s.record = json::parse(bytes.begin() + static_cast<std::ptrdiff_t>(first.size()), line_end);
  } catch (const std::exception&) {
    throw bad("the snapshot's record is not valid JSON");
  }
  for (const char* key : {"run_id", "run", "step", "total", "state_bytes"})
    if (!s.record.is_object() || !s.record.contains(key)) throw bad(std::string("the snapshot's record has no '") + key + "'");
  if (!s.record["state_bytes"].is_number_unsigned() || !s.record["step"].is_number_integer() ||
      !s.record["total"].is_number_integer())
    throw bad("the snapshot's record is malformed");
  const size_t have = static_cast<size_t>(bytes.end() - line_end - 1);
  if (have != s.record["state_bytes"].get<uint64_t>())
    throw bad("the snapshot is truncated or padded (" + std::to_string(have) + " state bytes, its record says " +
              std::to_string(s.record["state_bytes"].get<uint64_t>()) + ")");
  s.state.assign(line_end + 1, bytes.end());
  return s;
}

void check_snapshot_run(const Snapshot& snap, const std::string& path, const json& run) {
  if (snap.record["run"] == run && snap.record["run_id"] == run_id(run)) return;
  std::string diff;
  const json& old = snap.record["run"];
  if (old.is_object())
    for (const auto& [key, value] : run.items())
      if (!old.contains(key) || old[key] != value) diff += (diff.empty() ? "" : ", ") + key;
  if (diff.empty()) diff = "its record";
  throw CliError("--resume " + path + " is a snapshot of another run (" + diff +
                 " differ): resume with the options, inputs, seed and backend of the run that wrote it");
}

}  // namespace almc::cli
