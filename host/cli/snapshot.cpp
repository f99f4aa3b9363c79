// `almc sample --snapshot / --resume`: the library's snapshot files (see snapshot.hpp).
#include "host/cli/snapshot.hpp"

#include <almc/almc.h>

#include <memory>
#include <string>

#include "host/cli/commands.hpp"

namespace almc::cli {

using json = nlohmann::json;

namespace {

using Handle = std::shared_ptr<almc_snapshot_s>;

Handle make_handle() {
  almc_snapshot_t h = nullptr;
  if (almc_snapshot_create(&h) != ALMC_OK) throw CliError("out of memory");
  return Handle(h, &almc_snapshot_destroy);
}

std::string text(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

void write_snapshot(const std::string& path, const json& run, const void* state, size_t bytes) {
  Handle h = make_handle();
  if (almc_snapshot_set(h.get(), state, bytes, text(run).c_str()) != ALMC_OK ||
      almc_snapshot_write(h.get(), path.c_str()) != ALMC_OK)
    throw CliError(std::string("--snapshot ") + almc_snapshot_last_error(h.get()));
}

Snapshot read_snapshot(const std::string& path) {
  Handle h = make_handle();
  Snapshot s;
  const void* state = nullptr;
  size_t bytes = 0;
  if (almc_snapshot_read(h.get(), path.c_str()) != ALMC_OK ||
      almc_snapshot_state(h.get(), &state, &bytes, &s.step, &s.total) != ALMC_OK)
    throw CliError(std::string("--resume ") + almc_snapshot_last_error(h.get()));
  const unsigned char* p = static_cast<const unsigned char*>(state);
  s.state.assign(p, p + bytes);
  s.handle = std::move(h);
  return s;
}

void check_snapshot_run(const Snapshot& snap, const std::string& path, const json& run) {
  // A bare state (almc_sampler_save_state's bytes, a snapshot callable's) has no record of its run,
  // so nothing tells whether this command's options and inputs are the ones it was run with.
  if (std::string(almc_snapshot_run(snap.handle.get())) == "null")
    throw CliError("--resume " + path +
                   " is a bare sampler state, without the record of the run that wrote it, so almc sample cannot "
                   "check that it belongs to this run: resume from the file that --snapshot wrote (or load the "
                   "bare state with the C API's almc_sampler_load_state or the Python package's run(resume=...))");
  // The Python package's record describes its run in its own terms: no options of this command
  // can match it, so say where it can be resumed rather than list every key.
  const json held = json::parse(almc_snapshot_run(snap.handle.get()), nullptr, false);
  if (held.is_object() && held.contains("written_by") && held["written_by"].is_string() &&
      held["written_by"].get<std::string>().rfind("almc Python package", 0) == 0 &&
      almc_snapshot_check_run(snap.handle.get(), text(run).c_str()) != ALMC_OK)
    throw CliError("--resume " + path + " was written by the Python package (" + held["written_by"].get<std::string>() +
                   "): resume it in Python with Sampler.run(resume=...); almc sample resumes the files its own "
                   "--snapshot writes");
  if (almc_snapshot_check_run(snap.handle.get(), text(run).c_str()) != ALMC_OK) {
    // "config" is a list of numbers: name the options behind the ones that differ.
    const std::string options = config_differences(held, run);
    throw CliError("--resume " + path + ": " + almc_snapshot_last_error(snap.handle.get()) +
                   (options.empty() ? "" : "; options set differently: " + options) +
                   ": resume with the options, inputs, seed and backend of the run that wrote it");
  }
}

}  // namespace almc::cli
