// `almc merge` and the slice sidecar of `almc sample --chain-range`.
#include "host/cli/slices.hpp"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>

#include "host/cli/commands.hpp"
#include "host/core/digest.hpp"
#include "host/core/parse_count.hpp"
#include "host/io/file.hpp"
#include "host/io/json.hpp"
#include "host/io/npy.hpp"

namespace almc::cli {

using json = nlohmann::json;

namespace {

constexpr const char* kSliceFormat = "almc-slice-1";

using almc::Fnv1a;

// START or COUNT of --chain-range: decimal digits only (no sign, blanks or "0x"), within int64.
int64_t chain_range_part(const std::string& s, const std::string& text) {
  Decimal v;
  if (read_decimal(s, DecimalPolicy{false, 0, uint64_t(INT64_MAX)}, v) != DecimalRead::ok)
    throw CliError("--chain-range '" + text + "' must be START:COUNT with START >= 0 and COUNT >= 1", 2);
  return v.as_int64();
}

}  // namespace

ChainRange parse_chain_range(const std::string& text) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos)
    throw CliError("--chain-range '" + text + "' must be START:COUNT with START >= 0 and COUNT >= 1", 2);
  ChainRange r;
  r.start = chain_range_part(text.substr(0, colon), text);
  r.count = chain_range_part(text.substr(colon + 1), text);
  if (r.count < 1) throw CliError("--chain-range '" + text + "' must be START:COUNT with START >= 0 and COUNT >= 1", 2);
  return r;
}

std::string file_digest(const std::string& path, const std::string& what) {
  if (path.empty()) return "";
  std::vector<unsigned char> bytes;
  try {
    bytes = almc::io::read_regular_file(path, almc::io::kMaxArrayFileBytes);
  } catch (const almc::io::IoError& e) {
    throw CliError(what + " " + e.what());
  }
  Fnv1a h;
  h.add(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return h.hex();
}

std::string text_digest(const std::string& text) {
  Fnv1a h;
  h.add(text.data(), text.size());
  return h.hex();
}

std::string sidecar_path(const std::string& npy_path) { return npy_path + ".json"; }

void write_slice_sidecar(const std::string& npy_path, const SliceRecord& rec) {
  json j;
  j["format"] = kSliceFormat;
  j["run_id"] = text_digest(rec.run.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  j["run"] = rec.run;
  j["n_meas"] = rec.n_meas;
  j["chains_per_meas"] = rec.chains_per_meas;
  j["total_chains"] = rec.n_meas * rec.chains_per_meas;
  j["d"] = rec.d;
  j["sample_shape"] = rec.sample_shape;
  j["chain_start"] = rec.range.start;
  j["chain_count"] = rec.range.count;
  write_text_file("--out (slice record)", sidecar_path(npy_path), j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

namespace {

struct Part {
  std::string path;
  json rec;
  std::string run_id;
  int64_t start = 0, count = 0;
};

int64_t get_int(const json& j, const char* key, const std::string& where) {
  if (!j.contains(key) || !j[key].is_number_integer())
    throw CliError(where + ": the slice record has no integer '" + key + "'");
  return j[key].get<int64_t>();
}

Part read_part(const std::string& path) {
  Part p;
  p.path = path;
  const std::string side = sidecar_path(path);
  std::vector<unsigned char> text;
  try {
    text = almc::io::read_regular_file(side, almc::io::kMaxJsonFileBytes);
  } catch (const almc::io::IoError& e) {
    throw CliError(path + ": no slice record (" + e.what() + "; write slices with almc sample --chain-range)");
  }
  try {
    p.rec = almc::io::parse_json_limited(text.begin(), text.end());
  } catch (const almc::io::JsonTooDeep& e) {
    throw CliError(side + ": " + e.what());
  } catch (const std::exception&) {
    throw CliError(side + ": not valid JSON");
  }
  if (!p.rec.is_object() || p.rec.value("format", std::string()) != kSliceFormat || !p.rec.contains("run_id") ||
      !p.rec["run_id"].is_string())
    throw CliError(side + ": not an almc slice record (format " + kSliceFormat + ")");
  p.run_id = p.rec["run_id"].get<std::string>();
  p.start = get_int(p.rec, "chain_start", side);
  p.count = get_int(p.rec, "chain_count", side);
  return p;
}

struct MergeOptions {
  std::vector<std::string> parts;
  std::string out, mean, std;
  bool quiet = false;
};

void run_merge(const MergeOptions& o) {
  if (o.parts.empty()) throw CliError("give the slices to merge (the .npy files almc sample --chain-range wrote)", 2);
  if (o.out.empty() && o.mean.empty() && o.std.empty()) throw CliError("nothing to write: give --out, --mean or --std", 2);
  std::vector<Part> parts;
  for (const auto& p : o.parts) parts.push_back(read_part(p));
  // One run: the same identity and sizes everywhere.
  const Part& ref = parts.front();
  const int64_t n_meas = get_int(ref.rec, "n_meas", ref.path), cpm = get_int(ref.rec, "chains_per_meas", ref.path),
                d = get_int(ref.rec, "d", ref.path), total = get_int(ref.rec, "total_chains", ref.path);
  if (n_meas <= 0 || cpm <= 0 || d <= 0 || total != n_meas * cpm)
    throw CliError(sidecar_path(ref.path) + ": inconsistent run sizes");
  for (const Part& p : parts)
    if (p.run_id != ref.run_id || p.rec["run"] != ref.rec["run"] || p.rec["sample_shape"] != ref.rec["sample_shape"] ||
        get_int(p.rec, "total_chains", p.path) != total)
      throw CliError(p.path + " is a slice of another run than " + ref.path + " (run " + p.run_id + " vs " + ref.run_id +
                     "): merge the slices of one run only");
  std::sort(parts.begin(), parts.end(), [](const Part& a, const Part& b) { return a.start < b.start; });
  int64_t next = 0;
  for (const Part& p : parts) {
    if (p.start < 0 || p.count < 1 || p.start > total - p.count)
      throw CliError(p.path + ": chains " + std::to_string(p.start) + " + " + std::to_string(p.count) +
                     " lie outside the run's " + std::to_string(total));
    if (p.start < next)
      throw CliError(p.path + " overlaps another slice: chains " + std::to_string(p.start) + " to " +
                     std::to_string(next - 1) + " are given twice");
    if (p.start > next)
      throw CliError("chains " + std::to_string(next) + " to " + std::to_string(p.start - 1) + " are missing (no slice holds them)");
    next = p.start + p.count;
  }
  if (next != total)
    throw CliError("chains " + std::to_string(next) + " to " + std::to_string(total - 1) + " are missing (no slice holds them)");

  NamedPaths inputs;
  for (const Part& p : parts) {
    inputs.emplace_back("slice", p.path);
    inputs.emplace_back("slice record", sidecar_path(p.path));
  }
  check_distinct_files({{"--out", o.out}, {"--mean", o.mean}, {"--std", o.std}}, inputs);
  prepare_outputs({{"--out", &o.out}, {"--mean", &o.mean}, {"--std", &o.std}});
  std::vector<int64_t> sample_shape;
  for (const auto& v : ref.rec["sample_shape"]) sample_shape.push_back(v.get<int64_t>());
  std::vector<float> all(static_cast<size_t>(total * d));
  for (const Part& p : parts) {
    const FloatArray a = load_array(p.path, "slice", false);
    std::vector<int64_t> want{p.count};
    want.insert(want.end(), sample_shape.begin(), sample_shape.end());
    if (a.shape != want || a.size() != p.count * d)
      throw CliError(p.path + " holds an array of shape " + almc::io::shape_string(a.shape) + ", its record says " +
                     almc::io::shape_string(want));
    std::copy(a.data.begin(), a.data.end(), all.begin() + p.start * d);
  }
  std::vector<float> mean, sd;
  if (!o.mean.empty() || !o.std.empty()) {
    mean.resize(static_cast<size_t>(n_meas * d));
    sd.resize(mean.size());
    const almc_status st = almc_chain_mean_std(all.data(), n_meas, cpm, d, mean.data(), sd.data());
    if (st != ALMC_OK) throw CliError(std::string("mean/std: ") + almc_status_string(st));
  }
  std::vector<int64_t> all_shape{total}, per_meas{n_meas};
  all_shape.insert(all_shape.end(), sample_shape.begin(), sample_shape.end());
  per_meas.insert(per_meas.end(), sample_shape.begin(), sample_shape.end());
  OutputPhase writing;
  if (!o.out.empty()) save_array(o.out, all.data(), all_shape);
  if (!o.mean.empty()) save_array(o.mean, mean.data(), per_meas);
  if (!o.std.empty()) save_array(o.std, sd.data(), per_meas);
  writing.finish();
  if (!o.quiet)
    std::printf("almc merge: %zu slice(s), %lld measurement(s) x %lld chains, d = %lld\n", parts.size(),
                static_cast<long long>(n_meas), static_cast<long long>(cpm), static_cast<long long>(d));
}

}  // namespace

void register_merge_command(CLI::App& app) {
  auto o = std::make_shared<MergeOptions>();
  CLI::App* sub = app.add_subcommand("merge", "Join the slices of one run (almc sample --chain-range) into its outputs");
  sub->add_option("parts", o->parts, "the slices' .npy files (each with its <file>.json record)")->required();
  sub->add_option("--out", o->out, "all samples in chain order (.npy)");
  sub->add_option("--mean", o->mean, "posterior mean per measurement (.npy), as a single run computes it");
  sub->add_option("--std", o->std, "posterior std per measurement (.npy), as a single run computes it");
  sub->add_flag("--quiet,-q", o->quiet, "no summary");
  sub->callback([o]() { run_merge(*o); });
}

}  // namespace almc::cli
