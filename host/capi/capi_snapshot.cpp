// C API: snapshot files, the one container of a resumable state with its run's description (see
// almc.h). `almc sample --snapshot/--resume` and the Python package both go through here.
#include <almc/almc.h>

#include "host/capi/guard.hpp"
#include "host/core/digest.hpp"
#include "host/io/file.hpp"
#include "host/io/json.hpp"
#include "host/samplers/state.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

using json = nlohmann::json;
using namespace almc;

struct almc_snapshot_s {
  std::vector<unsigned char> file;  // the container as written or read: format line, record line, state
  size_t state_offset = 0;          // where the state starts in `file`
  bool held = false;
  StateHead head;
  json run;                         // the run's description (null when none)
  std::string run_text = "null";    // run, compact
  std::string last_error;
};

namespace {

const std::string kFormat = "almc-snapshot-1";
// A state is x and at most two more buffers of the run's size: three times the .npy cap.
constexpr uint64_t kMaxSnapshotBytes = io::kMaxArrayFileBytes * 3;

std::string compact(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// Digest.hpp's FNV-1a of `n` bytes as 16 hex digits: the record's run_id (of the run's compact
// text; the CLI's slice records use the same, so the two kinds of record name a run alike) and its
// state_fnv1a (of the state's bytes: a flipped bit in the chains is refused on reading instead of
// resuming into other samples; files written before it have none).
std::string digest_hex(const void* data, size_t n) {
  Fnv1a h;
  if (n) h.add(data, n);
  return h.hex();
}

json parse_run(const char* text, const char* what) {
  if (!text) return nullptr;
  const std::string_view view(text);
  try {
    return io::parse_json_limited(view.begin(), view.end());
  } catch (const io::JsonTooDeep& e) {
    fail(ALMC_ERR_INVALID_ARGUMENT, what, ": ", e.what());
  } catch (const std::exception&) {
    fail(ALMC_ERR_INVALID_ARGUMENT, what, " is not valid JSON");
  }
}

bool starts_with(const unsigned char* p, size_t n, const std::string& prefix) {
  return n >= prefix.size() && std::memcmp(p, prefix.data(), prefix.size()) == 0;
}

// Everything a snapshot holds, built before it replaces the handle's content (a failure keeps it).
struct Parsed {
  std::vector<unsigned char> file;
  size_t state_offset = 0;
  StateHead head;
  json run;
};

Parsed build(const unsigned char* state, size_t bytes, json run) {
  Parsed p;
  p.head = read_state_head(state, bytes);
  const std::string text = compact(run);
  const json rec = {{"format", kFormat},
                    {"run_id", digest_hex(text.data(), text.size())},
                    {"run", run},
                    {"step", p.head.step},
                    {"total", p.head.total},
                    {"state_bytes", bytes},
                    {"state_fnv1a", digest_hex(state, bytes)}};
  const std::string head = kFormat + "\n" + compact(rec) + "\n";
  p.file.resize(head.size() + bytes);
  std::memcpy(p.file.data(), head.data(), head.size());
  if (bytes) std::memcpy(p.file.data() + head.size(), state, bytes);
  p.state_offset = head.size();
  p.run = std::move(run);
  return p;
}

// A container, or else the bytes of a state (only when they begin like one: any other bytes are
// "not an almc snapshot", from a file or from memory alike). `where` prefixes every message.
Parsed parse(std::vector<unsigned char> data, const std::string& where) {
  const auto bad = [&](almc_status st, const std::string& why) { fail(st, where, why); };
  const std::string first = kFormat + "\n";
  if (!starts_with(data.data(), data.size(), first)) {
    if (!has_state_magic(data.data(), data.size()))
      bad(ALMC_ERR_PARSE, "not an almc snapshot (written by almc sample --snapshot or the Python package) nor a "
                          "sampler state");
    try {
      return build(data.data(), data.size(), nullptr);
    } catch (const Error& e) {
      bad(e.status(), e.what());
    }
  }
  const auto begin = data.begin() + static_cast<std::ptrdiff_t>(first.size());
  const auto line_end = std::find(begin, data.end(), '\n');
  if (line_end == data.end()) bad(ALMC_ERR_PARSE, "the snapshot's record is cut off");
  json rec;
  try {
    rec = io::parse_json_limited(begin, line_end);
  } catch (const io::JsonTooDeep& e) {
    bad(ALMC_ERR_PARSE, std::string("the snapshot's record: ") + e.what());
  } catch (const std::exception&) {
    bad(ALMC_ERR_PARSE, "the snapshot's record is not valid JSON");
  }
  if (!rec.is_object() || !rec.contains("state_bytes") || !rec["state_bytes"].is_number_unsigned())
    bad(ALMC_ERR_PARSE, "the snapshot's record is malformed");
  Parsed p;
  p.state_offset = static_cast<size_t>(line_end - data.begin()) + 1;
  const size_t have = data.size() - p.state_offset;
  const uint64_t said = rec["state_bytes"].get<uint64_t>();
  if (have != said)
    bad(ALMC_ERR_PARSE, "the snapshot is truncated or padded (" + std::to_string(have) + " state bytes, its record says " +
                            std::to_string(said) + ")");
  if (rec.contains("state_fnv1a") &&
      (!rec["state_fnv1a"].is_string() ||
       rec["state_fnv1a"].get<std::string>() != digest_hex(data.data() + p.state_offset, have)))
    bad(ALMC_ERR_PARSE, "the snapshot's state does not match the digest in its record (the file is damaged)");
  try {
    p.head = read_state_head(data.data() + p.state_offset, have);
  } catch (const Error& e) {
    bad(e.status(), std::string("the snapshot's state: ") + e.what());
  }
  for (const auto& [key, value] : {std::pair<const char*, int64_t>{"step", p.head.step}, {"total", p.head.total}})
    if (rec.contains(key) && (!rec[key].is_number_integer() || rec[key].get<int64_t>() != value))
      bad(ALMC_ERR_PARSE, std::string("the snapshot's record and its state disagree on the ") + key);
  p.run = rec.contains("run") ? rec["run"] : json(nullptr);
  p.file = std::move(data);
  return p;
}

void hold(almc_snapshot_t snap, Parsed&& p) {
  snap->file = std::move(p.file);
  snap->state_offset = p.state_offset;
  snap->head = p.head;
  snap->run = std::move(p.run);
  snap->run_text = compact(snap->run);
  snap->held = true;
}

template <class F>
almc_status snapshot_guarded(almc_snapshot_t snap, F&& body) {
  if (!snap) return ALMC_ERR_NULL_POINTER;
  return guarded(&snap->last_error, body);
}

}  // namespace

extern "C" {

almc_status almc_snapshot_create(almc_snapshot_t* out) {
  return guarded(unbound_last_error(), [&] {
    require(out, "out");
    *out = new almc_snapshot_s();
  });
}

void almc_snapshot_destroy(almc_snapshot_t snap) { delete snap; }

const char* almc_snapshot_last_error(almc_snapshot_t snap) { return snap ? snap->last_error.c_str() : "snapshot is NULL"; }

almc_status almc_snapshot_set(almc_snapshot_t snap, const void* state, size_t bytes, const char* run) {
  return snapshot_guarded(snap, [&] {
    require(state, "state");
    hold(snap, build(static_cast<const unsigned char*>(state), bytes, parse_run(run, "run")));
  });
}

almc_status almc_snapshot_write(almc_snapshot_t snap, const char* path) {
  return snapshot_guarded(snap, [&] {
    require_path(path, "path");
    if (!snap->held) fail(ALMC_ERR_WRONG_STATE, "the snapshot holds no state to write (almc_snapshot_set first)");
    try {
      io::write_file_atomic(path, snap->file.data(), snap->file.size());
    } catch (const io::IoError& e) {
      fail(ALMC_ERR_IO, e.what());
    }
  });
}

almc_status almc_snapshot_read(almc_snapshot_t snap, const char* path) {
  return snapshot_guarded(snap, [&] {
    require_path(path, "path");
    std::vector<unsigned char> data;
    try {
      data = io::read_regular_file(path, kMaxSnapshotBytes);
    } catch (const io::IoError& e) {
      fail(ALMC_ERR_IO, e.what());
    }
    hold(snap, parse(std::move(data), std::string(path) + ": "));
  });
}

almc_status almc_snapshot_parse(almc_snapshot_t snap, const void* data, size_t bytes) {
  return snapshot_guarded(snap, [&] {
    if (bytes) require(data, "data");
    const unsigned char* p = static_cast<const unsigned char*>(data);
    hold(snap, parse(std::vector<unsigned char>(p, p + bytes), ""));
  });
}

almc_status almc_snapshot_state(almc_snapshot_t snap, const void** state, size_t* bytes, int64_t* step,
                                int64_t* total) {
  return snapshot_guarded(snap, [&] {
    if (!snap->held) fail(ALMC_ERR_WRONG_STATE, "the snapshot is empty (almc_snapshot_read, _parse or _set first)");
    if (state) *state = snap->file.data() + snap->state_offset;
    if (bytes) *bytes = snap->file.size() - snap->state_offset;
    if (step) *step = snap->head.step;
    if (total) *total = snap->head.total;
  });
}

const char* almc_snapshot_run(almc_snapshot_t snap) { return snap ? snap->run_text.c_str() : "null"; }

almc_status almc_snapshot_check_run(almc_snapshot_t snap, const char* run) {
  return snapshot_guarded(snap, [&] {
    require(run, "run");
    const json want = parse_run(run, "run");
    if (want == snap->run) return;
    if (snap->run.is_null())
      fail(ALMC_ERR_INVALID_ARGUMENT,
           "this is a bare sampler state, without the record of the run that wrote it, so it cannot be "
           "checked against this run (a snapshot file written with a run description can)");
    std::string diff;
    size_t n_keys = 0;
    if (want.is_object() && snap->run.is_object()) {
      std::vector<std::string> keys;
      for (const auto& [key, value] : want.items())
        if (!snap->run.contains(key) || snap->run[key] != value) keys.push_back(key);
      for (const auto& [key, value] : snap->run.items())
        if (!want.contains(key)) keys.push_back(key);
      for (const std::string& k : keys) diff += (diff.empty() ? "" : ", ") + k;
      n_keys = keys.size();
    }
    if (diff.empty()) diff = "its record";
    fail(ALMC_ERR_INVALID_ARGUMENT, "this is a snapshot of another run (", diff, n_keys > 1 ? " differ)" : " differs)");
  });
}

}  // extern "C"
