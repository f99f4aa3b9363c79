// `almc sample`: posterior (or prior) samples from a score network or a GMM prior.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <tuple>
#include <nlohmann/json.hpp>

#include "host/cli/commands.hpp"
#include "host/cli/slices.hpp"
#include "host/cli/team.hpp"
#include "host/cli/snapshot.hpp"
#include "host/io/file.hpp"
#include "host/io/image.hpp"
#include "host/io/json.hpp"
#include "host/io/npy.hpp"
#include "host/onnx/capi_onnx.hpp"
#include "host/onnx/graph.hpp"

namespace almc::cli {
namespace {

using json = nlohmann::json;

struct SampleOptions {
  ScoreOptions score;
  std::string op_spec, y_path, truth_path, shape_text;
  double noise_std = std::numeric_limits<double>::quiet_NaN();
  std::string method = "almc", schedule = "default", levels_file, init = "gaussian", variant = "paper";
  almc_sampler_config cfg = almc_sampler_config_default();
  bool tweedie = false;
  std::string backend = "auto";
  int threads = 0;
  std::string out, mean, std, diagnostics, png, png_range, png_each, data_range;
  std::string chain_range;
  std::string snapshot, resume;
  int64_t snapshot_every = 0;
  int png_samples = 4;
  double psnr_range = 2.0;
  bool force = false, quiet = false, verbose = false;
  JsonReport json;
  CLI::App* app = nullptr;  // to tell an option given on the command line from its default
  bool given(const char* name) const { return app && app->count(name) > 0; }
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// The image shape from trailing array dims whose product is `want` (C, H, W of [C, H, W] or
// [n, C, H, W], any C; or H, W with C = 1); dims of 1 in H or W do not count as an image.
ImageShape shape_from_dims(const std::vector<int64_t>& s, int64_t want) {
  const size_t n = s.size();
  if (n >= 3 && s[n - 3] * s[n - 2] * s[n - 1] == want && s[n - 2] > 1 && s[n - 1] > 1)
    return {s[n - 3], s[n - 2], s[n - 1]};
  if (n >= 2 && s[n - 2] * s[n - 1] == want && s[n - 2] > 1 && s[n - 1] > 1) return {1, s[n - 2], s[n - 1]};
  return {};
}

// image_shape (or shape) from "<model>.json" or "model.json" beside an ONNX model.
ImageShape shape_from_sidecar(const std::string& model, int64_t d) {
  if (model.empty()) return {};
  std::vector<std::string> candidates;
  const size_t dot = model.rfind('.');
  if (dot != std::string::npos) candidates.push_back(model.substr(0, dot) + ".json");
  const size_t slash = model.rfind('/');
  candidates.push_back((slash == std::string::npos ? std::string() : model.substr(0, slash + 1)) + "model.json");
  for (const auto& c : candidates) {
    try {
      // A regular file only (a FIFO there would block the command); a missing one is skipped.
      const std::vector<unsigned char> text = almc::io::read_regular_file(c, almc::io::kMaxJsonFileBytes);
      const json j = almc::io::parse_json_limited(text.begin(), text.end());
      for (const char* key : {"image_shape", "shape", "input_shape"}) {
        if (!j.contains(key) || !j[key].is_array()) continue;
        // Sides are whole numbers up to 2^20 (anything else, 16.5 or 1e300, is not a shape: the
        // hint is skipped rather than truncated or overflowed).
        std::vector<int64_t> s;
        for (const auto& v : j[key]) {
          if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > (int64_t(1) << 20)) {
            s.clear();
            break;
          }
          s.push_back(v.get<int64_t>());
        }
        const ImageShape r = shape_from_dims(s, d);
        if (r.known()) return r;
      }
    } catch (const std::exception&) {
      // A sidecar we cannot read is ignored: it is only a hint for the image shape.
    }
  }
  return {};
}

// C, H, W from a network's x input when it fixes them ([n, C, H, W] or [n, H, W]): a model
// exported at one image size says its shape itself. Only a hint: a model that cannot be read
// here is reported when the score is made.
ImageShape shape_from_model_input(const std::string& model, const std::string& x_input, int64_t d) {
  if (model.empty()) return {};
  try {
    const almc::onnx::Graph g = almc::onnx::load_graph(model);
    if (g.inputs.empty()) return {};
    const auto it = std::find_if(g.inputs.begin(), g.inputs.end(),
                                 [&](const almc::onnx::ValueInfo& v) { return v.name == x_input; });
    const std::vector<int64_t>& dims = (x_input.empty() || it == g.inputs.end() ? g.inputs.front() : *it).dims;
    if (dims.size() < 3 || std::any_of(dims.begin() + 1, dims.end(), [](int64_t v) { return v <= 0; })) return {};
    return shape_from_dims(std::vector<int64_t>(dims.begin() + 1, dims.end()), d);
  } catch (const std::exception&) {
    return {};
  }
}

almc_method parse_method(const std::string& m) {
  const std::string l = lower(m);
  if (l == "almc") return ALMC_METHOD_ALMC;
  if (l == "ncsn") return ALMC_METHOD_NCSN;
  if (l == "ald") return ALMC_METHOD_ALD;
  if (l == "xgp") return ALMC_METHOD_XGP;
  if (l == "langevin") return ALMC_METHOD_LANGEVIN;
  throw CliError("unknown --method '" + m + "' (use almc, ncsn, ald, xgp or langevin)", 2);
}

almc_schedule parse_schedule(const std::string& s) {
  const std::string l = lower(s);
  if (l == "default") return ALMC_SCHEDULE_DEFAULT;
  if (l == "uniform-t" || l == "uniform_t") return ALMC_SCHEDULE_UNIFORM_T;
  if (l == "geometric-sigma" || l == "geometric_sigma" || l == "geometric") return ALMC_SCHEDULE_GEOMETRIC_SIGMA;
  if (l == "list") return ALMC_SCHEDULE_LIST;
  throw CliError("unknown --schedule '" + s + "' (use default, uniform-t, geometric-sigma or list)", 2);
}

bool is_png(const std::string& path) { return path.size() >= 4 && lower(path.substr(path.size() - 4)) == ".png"; }

// A PNG read as RGB [3, H, W] for a one-channel measurement: a gray image saved as RGB (R = G = B
// everywhere, palettes included) becomes [1, H, W]; real colour is refused.
FloatArray gray_from_rgb(FloatArray y, const std::string& path, bool quiet) {
  const int64_t plane = y.shape[1] * y.shape[2];
  for (int64_t i = 0; i < plane; ++i)
    if (y.data[i] != y.data[plane + i] || y.data[i] != y.data[2 * plane + i])
      throw CliError("--y " + path + " is a colour image (3 channels) but the model has one channel: convert it to gray", 1);
  y.data.resize(size_t(plane));
  y.shape = {1, y.shape[1], y.shape[2]};
  if (!quiet)
    std::fprintf(stderr, "almc sample: note: --y %s is gray stored as RGB; using one channel\n", path.c_str());
  return y;
}

// The OU times the schedule visits, when the configuration alone tells (false otherwise).
bool level_t_range(const almc_sampler_config& c, double* lo, double* hi) {
  if (c.schedule == ALMC_SCHEDULE_LIST && c.levels && c.n_levels_list > 0) {
    *lo = c.levels[c.n_levels_list - 1];
    *hi = c.levels[0];
    return true;
  }
  if (c.method == ALMC_METHOD_ALMC) {
    *lo = c.t_stop > 0 ? c.t_stop : 0.01;
    *hi = c.t_start > 0 ? c.t_start : 5.0;
    return true;
  }
  if ((c.method == ALMC_METHOD_NCSN || c.method == ALMC_METHOD_ALD) && c.schedule == ALMC_SCHEDULE_DEFAULT) {
    const double smin = c.sigma_min > 0 ? c.sigma_min : 0.01, smax = c.sigma_max > 0 ? c.sigma_max : 50.0;
    *lo = 0.5 * std::log1p(smin * smin);  // VE sigma -> OU t
    *hi = 0.5 * std::log1p(smax * smax);
    return true;
  }
  return false;
}

// Which graph inputs the network's x and level are bound to and the level values fed ({} for a
// score that is not a network).
json network_bindings(almc_score_t score, const almc_sampler_config& cfg) {
  almc::onnx::Bindings b;
  if (!almc::onnx::score_bindings(score, &b)) return json();
  json j = {{"x", b.x}, {"level", b.level.empty() ? json(nullptr) : json(b.level)}, {"inputs", b.inputs}};
  double lo = 0, hi = 0, v0 = 0, v1 = 0;
  if (!b.level.empty() && level_t_range(cfg, &lo, &hi) && almc::onnx::score_level_value(score, lo, &v0) &&
      almc::onnx::score_level_value(score, hi, &v1)) {
    j["level_range"] = {std::min(v0, v1), std::max(v0, v1)};
    j["t_range"] = {lo, hi};
  }
  return j;
}

void require_finite(double v, const char* name) {
  if (!std::isfinite(v)) throw CliError(std::string(name) + " must be a finite number", 2);
}

// The sampler settings in a run's identity ("config", a list of numbers so that older records keep
// their identity), each with the option that sets it, so that a refusal can name what differs.
std::vector<std::pair<const char*, json>> config_entries(const almc_sampler_config& cfg) {
  return {{"the number of measurements (rows of --y)", cfg.n_meas},
          {"--chains", cfg.chains_per_meas},
          {"--seed", cfg.seed},
          {"--noise-std", cfg.noise_std},
          {"--likelihood-weight", cfg.likelihood_weight},
          {"--kappa", cfg.kappa},
          {"--delta", cfg.delta},
          {"--t-start", cfg.t_start},
          {"--t-stop", cfg.t_stop},
          {"--warm-steps", cfg.warm_steps},
          {"--warm-step", cfg.warm_step},
          {"--average-last", cfg.average_last},
          {"--tweedie", cfg.tweedie},
          {"--levels", cfg.n_levels},
          {"--sigma-max", cfg.sigma_max},
          {"--sigma-min", cfg.sigma_min},
          {"--steps-per-level", cfg.steps_per_level},
          {"--eps", cfg.eps},
          {"--init", static_cast<int>(cfg.init)},
          {"--init-scale", cfg.init_scale},
          {"--force", cfg.force_unstable}};
}

}  // namespace

std::string config_differences(const json& held, const json& now) {
  const json a = held.is_object() && held.contains("config") ? held["config"] : json();
  const json b = now.is_object() && now.contains("config") ? now["config"] : json();
  const auto entries = config_entries(almc_sampler_config_default());
  if (!a.is_array() || !b.is_array() || a.size() != entries.size() || b.size() != entries.size()) return "";
  std::string names;
  for (size_t i = 0; i < entries.size(); ++i)
    if (a[i] != b[i]) names += (names.empty() ? "" : ", ") + std::string(entries[i].first);
  return names;
}

namespace {

// Everything that decides a run's samples, for the slice record: options, the input files'
// digests, the backend. Slices merge only when this is the same.
json run_identity(const SampleOptions& o, const almc_sampler_config& cfg, const OperatorSpec& spec, bool have_y,
                  const std::string& backend, int64_t d, const std::vector<int64_t>& sample_shape) {
  json j;
  j["almc"] = almc_version();
  j["backend"] = backend;
  j["method"] = static_cast<int>(cfg.method);
  j["schedule"] = static_cast<int>(cfg.schedule);
  j["config"] = json::array();
  for (const auto& entry : config_entries(cfg)) j["config"].push_back(entry.second);
  j["levels_file"] = file_digest(o.levels_file, "--levels-file");
  j["variant"] = static_cast<int>(cfg.variant);
  // Only where it is read (older records of the other variants keep their identity).
  if (cfg.variant == ALMC_VARIANT_SMC || cfg.variant == ALMC_VARIANT_GEO_SMC) j["smc_ess"] = cfg.smc_ess_threshold;
  const ScoreOptions& sc = o.score;
  j["score"] = {file_digest(sc.model, "--model"), file_digest(sc.prior, "--prior"), sc.x_input, sc.level_input,
                lower(sc.output), lower(sc.convention), lower(sc.level), file_digest(sc.alpha_bar, "--alpha-bar"), sc.tf32};
  // The rest of the network adapter: VP-SDE betas, level scale, output slice, constant inputs.
  json inputs = json::array();
  for (const std::string& in : sc.inputs) {
    const size_t eq = in.find('=');
    const std::string value = eq == std::string::npos ? std::string() : in.substr(eq + 1);
    const bool file = value.size() > 4 && lower(value.substr(value.size() - 4)) == ".npy";
    inputs.push_back({in, file ? file_digest(value, "--input") : std::string()});
  }
  auto number_or_null = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };  // NaN != NaN
  // Only a non-default precision is recorded (fp32 runs keep the identity they had before it).
  if (sc.precision_name() != "fp32") j["precision"] = sc.precision_name();
  j["adapter"] = {number_or_null(sc.beta_min), number_or_null(sc.beta_max), number_or_null(sc.level_scale),
                  sc.output_slice, inputs};
  if (have_y)
    j["likelihood"] = {spec.kind, file_digest(spec.file, "--operator"), spec.factor, file_digest(o.y_path, "--y")};
  j["d"] = d;
  j["sample_shape"] = sample_shape;
  return j;
}

void run_sample(const SampleOptions& options, Team& team) {
  // Under MPI the ranks other than 0 say nothing (rank 0 speaks for the run) and write nothing.
  SampleOptions o = options;
  if (!team.root()) o.quiet = true;
  // ---- cheap checks first: numbers, method, files that must parse
  almc_sampler_config cfg = o.cfg;
  cfg.method = parse_method(o.method);
  cfg.schedule = parse_schedule(o.schedule);
  cfg.variant = parse_variant(o.variant);
  if (cfg.variant != ALMC_VARIANT_PAPER && cfg.method != ALMC_METHOD_ALMC)
    throw CliError("--variant " + o.variant + " applies to --method almc only", 2);
  if (cfg.chains_per_meas <= 0) throw CliError("--chains must be at least 1", 2);
  if (cfg.chains_per_meas > (int64_t(1) << 24)) throw CliError("--chains " + std::to_string(cfg.chains_per_meas) + " is too large (at most 2^24 = 16777216)", 2);
  for (auto [v, name] : {std::pair{cfg.kappa, "--kappa"}, {cfg.delta, "--delta"}, {cfg.t_start, "--t-start"},
                         {cfg.t_stop, "--t-stop"}, {cfg.warm_step, "--warm-step"}, {cfg.sigma_max, "--sigma-max"},
                         {cfg.sigma_min, "--sigma-min"}, {cfg.eps, "--eps"}, {cfg.likelihood_weight, "--likelihood-weight"},
                         {cfg.init_scale, "--init-scale"}})
    require_finite(v, name);
  // Zero or negative values do not mean "default": a default is what an omitted option gets.
  for (auto [v, name] : {std::pair{cfg.kappa, "--kappa"}, {cfg.delta, "--delta"}, {cfg.t_start, "--t-start"},
                         {cfg.t_stop, "--t-stop"}, {cfg.warm_step, "--warm-step"}, {cfg.sigma_max, "--sigma-max"},
                         {cfg.sigma_min, "--sigma-min"}, {cfg.eps, "--eps"}, {cfg.init_scale, "--init-scale"}})
    if (o.given(name) && !(v > 0))
      throw CliError(std::string(name) + " must be positive, got " + num(v) + " (omit it for the default)", 2);
  for (auto [v, name, lo] : {std::tuple{cfg.n_levels, "--levels", int64_t(1)},
                             {cfg.steps_per_level, "--steps-per-level", int64_t(1)},
                             {cfg.warm_steps, "--warm-steps", int64_t(0)},
                             {cfg.check_every, "--check-every", int64_t(1)},
                             {cfg.average_last, "--average-last", int64_t(0)}})
    if (o.given(name) && v < lo)
      throw CliError(std::string(name) + " must be at least " + std::to_string(lo) + ", got " + std::to_string(v) +
                         " (omit it for the default)", 2);
  // A step-size or level option the method (with its schedule) never reads would run as if it were
  // not given: refused, naming the method (the library's table, almc_method_reads_field).
  // (--levels-file makes the schedule a list.)
  const almc_schedule schedule_read = o.levels_file.empty() ? cfg.schedule : ALMC_SCHEDULE_LIST;
  for (const auto& [field, option] : sampler_field_options())
    if (o.given(option.c_str()) && almc_method_reads_field(cfg.method, schedule_read, field.c_str()) == 0)
      throw CliError(option + " is not read by --method " + o.method +
                         (!o.levels_file.empty()                  ? std::string(" with --levels-file")
                          : cfg.schedule != ALMC_SCHEDULE_DEFAULT ? " with --schedule " + o.schedule
                                                                  : std::string()) +
                         ": the run would be the same without it (see `almc sample --help` for the method's options)",
                     2);
  if (!(cfg.t_stop < cfg.t_start))
    throw CliError("--t-stop " + num(cfg.t_stop) + " must be below --t-start " + num(cfg.t_start), 2);
  // The engine reads 0 or a negative threshold as its default 0.5: refuse what the user cannot mean.
  // (A threshold with another variant is refused by the library, for every front end.)
  if (o.given("--smc-ess") && !(cfg.smc_ess_threshold > 0 && cfg.smc_ess_threshold <= 1))
    throw CliError("--smc-ess must be in (0, 1] (a fraction of --chains), got " + num(cfg.smc_ess_threshold), 2);
  if (o.png_samples < 0) throw CliError("--png-samples must be >= 0", 2);
  if (o.given("--snapshot-every") && o.snapshot_every < 1)
    throw CliError("--snapshot-every must be at least 1, got " + std::to_string(o.snapshot_every), 2);
  if (o.snapshot_every > 0 && o.snapshot.empty())
    throw CliError("--snapshot-every needs --snapshot FILE (where the state is kept)", 2);
  if (team.size() > 1 && (!o.snapshot.empty() || !o.resume.empty()))
    throw CliError("--snapshot and --resume are not supported with several MPI ranks yet (run one process per "
                   "--chain-range slice instead)", 2);
  Snapshot resume;
  if (!o.resume.empty()) resume = read_snapshot(o.resume);
  ChainRange range;
  if (!o.chain_range.empty()) {
    range = parse_chain_range(o.chain_range);
    if (o.out.empty()) throw CliError("--chain-range needs --out FILE.npy for the slice's samples", 2);
    for (const auto& [p, name] : {std::pair{&o.mean, "--mean"}, {&o.std, "--std"}, {&o.png, "--png"},
                                  {&o.png_each, "--png-each"}, {&o.truth_path, "--truth"}})
      if (!p->empty())
        throw CliError(std::string(name) + " needs every chain: with --chain-range, run almc merge on the slices (it writes --mean and --std)", 2);
  }
  const std::string init = lower(o.init);
  if (init == "gaussian")
    cfg.init = ALMC_INIT_GAUSSIAN;
  else if (init == "uniform")
    cfg.init = ALMC_INIT_UNIFORM;
  else
    throw CliError("unknown --init '" + o.init + "' (use gaussian or uniform)", 2);
  cfg.tweedie = o.tweedie ? 1 : 0;
  cfg.force_unstable = o.force ? 1 : 0;

  const bool have_y = !o.y_path.empty();
  if (have_y) {
    if (std::isnan(o.noise_std)) throw CliError("--y needs --noise-std S (the measurement noise standard deviation)", 2);
    if (!std::isfinite(o.noise_std) || o.noise_std <= 0.0)
      throw CliError("--noise-std must be a positive finite number, got " + num(o.noise_std), 2);
  } else if (!o.op_spec.empty()) {
    throw CliError("--operator needs a measurement: --y FILE.npy", 2);
  } else if (!std::isnan(o.noise_std)) {
    // Without a measurement the prior is sampled: a noise level would be read by nothing.
    throw CliError("--noise-std needs a measurement: --y FILE.npy (without --y the prior is sampled)", 2);
  }
  OperatorSpec spec;
  if (have_y) spec = parse_operator_spec(o.op_spec.empty() ? "identity" : o.op_spec);

  // The data's value range: PNG inputs map [0, 255] onto it, --png-each maps it back.
  float data_lo = -1.f, data_hi = 1.f;
  if (!o.data_range.empty()) std::tie(data_lo, data_hi) = parse_range(o.data_range, "--data-range");
  FloatArray y, truth;
  if (have_y) y = load_array(o.y_path, "--y", true, data_lo, data_hi);
  if (!o.truth_path.empty()) truth = load_array(o.truth_path, "--truth", true, data_lo, data_hi);
  std::vector<double> levels;
  if (!o.levels_file.empty()) {
    const FloatArray l = load_numbers(o.levels_file, "--levels-file", true);
    if (l.size() < 1) throw CliError("--levels-file " + o.levels_file + " is empty");
    if (std::count_if(l.shape.begin(), l.shape.end(), [](int64_t n) { return n != 1; }) > 1)
      throw CliError("--levels-file " + o.levels_file + " must be 1-D (a list of OU times), got shape " +
                     almc::io::shape_string(l.shape));
    for (int64_t i = 0; i < l.size(); ++i) {
      if (!(l.data[i] > 0.f)) throw CliError("--levels-file " + o.levels_file + ": OU times must be positive");
      if (i > 0 && !(l.data[i] < l.data[i - 1])) throw CliError("--levels-file " + o.levels_file + ": OU times must decrease");
      levels.push_back(l.data[i]);
    }
    cfg.schedule = ALMC_SCHEDULE_LIST;
    cfg.levels = levels.data();
    cfg.n_levels_list = static_cast<int64_t>(levels.size());
  } else if (cfg.schedule == ALMC_SCHEDULE_LIST) {
    throw CliError("--schedule list needs --levels-file FILE.npy", 2);
  }
  ImageShape shape;
  if (!o.shape_text.empty()) {
    shape = parse_shape(o.shape_text);
    o.score.x_shape = {shape.C, shape.H, shape.W};  // fills a network's dynamic height and width
  }
  // Before any work: a run can last hours, its results must have somewhere to go.
  const std::string slice_record = range.set() ? sidecar_path(o.out) : std::string();
  if (team.root()) {
    // An output must not replace another output or one of the run's inputs (the snapshot may be
    // the file it resumes from: that is how a run is continued).
    NamedPaths inputs = {{"--prior", o.score.prior},
                         {"--model", o.score.model},
                         {"--y", o.y_path},
                         {"--truth", o.truth_path},
                         {"--levels-file", o.levels_file},
                         {"--alpha-bar", o.score.alpha_bar},
                         {"--operator " + spec.kind, spec.file}};
    for (auto& f : input_files(o.score.inputs)) inputs.push_back(std::move(f));
    NamedPaths outputs = {{"--out", o.out}, {"--mean", o.mean}, {"--std", o.std}, {"--diagnostics", o.diagnostics},
                          {"--png", o.png}, {"--json", o.json.file()}, {"--out (slice record)", slice_record}};
    NamedPaths with_resume = inputs, with_snapshot = outputs;
    with_resume.emplace_back("--resume", o.resume);
    with_snapshot.emplace_back("--snapshot", o.snapshot);
    check_distinct_files(outputs, with_resume);
    check_distinct_files(with_snapshot, inputs);
    prepare_outputs({{"--out", &o.out}, {"--mean", &o.mean}, {"--std", &o.std}, {"--diagnostics", &o.diagnostics},
                     {"--png", &o.png}, {"--out (slice record)", &slice_record}, {"--snapshot", &o.snapshot}});
    o.json.prepare();
  }
  if (!o.png_range.empty()) parse_range(o.png_range, "--png-range");
  // Options of an output or input that is not there would change nothing.
  for (const char* name : {"--png-samples", "--png-range"})
    if (o.given(name) && o.png.empty()) throw CliError(std::string(name) + " applies to --png FILE.png (the figure)", 2);
  if (o.given("--psnr-range") && o.truth_path.empty())
    throw CliError("--psnr-range applies with --truth (PSNR against the ground truth)", 2);
  if (o.given("--data-range") && !is_png(o.y_path) && o.png.empty() && o.png_each.empty() && o.truth_path.empty())
    throw CliError("--data-range applies to PNG inputs (--y, --truth), --png, --png-each and the PSNR of --truth", 2);

  // ---- engine objects
  Context ctx = make_context(o.backend, o.threads, o.quiet, o.verbose, team.device());
  // n_meas is not known before y is matched against the operator; the batch bound is refined below.
  std::string score_desc;

  // The score's dimension and the measurement count decide the batch; build the score once we know
  // n_meas when a network needs max_batch (0 lets it grow on demand, which is fine for the CLI).
  Score score = load_score(ctx.get(), o.score, 0, &score_desc);
  int64_t d = 0;
  check(almc_score_dim(score.get(), &d), "score", score.get());

  // ---- image shape (documented order): --shape, --truth dims, --y dims, model sidecar JSON; where
  // one is needed, the model's fixed x dims, then a square d
  const char* shape_source = "--shape";
  if (shape.known() && shape.size() != d)
    throw CliError("--shape " + shape.str() + " has " + std::to_string(shape.size()) + " values, the score's dimension is " +
                   std::to_string(d), 2);
  if (!shape.known() && !truth.shape.empty()) {
    shape = shape_from_dims(truth.shape, d);
    shape_source = "--truth";
  }
  if (!shape.known() && have_y) {
    if (spec.kind == "identity" || spec.kind == "mask" || spec.kind == "blur") {
      shape = shape_from_dims(y.shape, d);
    } else if (spec.kind == "downsample" && d % (spec.factor * spec.factor) == 0) {
      const ImageShape ys = shape_from_dims(y.shape, d / (spec.factor * spec.factor));
      if (ys.known()) shape = {ys.C, ys.H * spec.factor, ys.W * spec.factor};
    }
    shape_source = "--y";
  }
  if (!shape.known()) {
    shape = shape_from_sidecar(o.score.model, d);
    shape_source = "the model's JSON";
  }
  const bool need_shape =
      (have_y && (spec.kind == "downsample" || spec.kind == "blur")) || !o.png.empty() || !o.png_each.empty();
  // Where an image is needed: the network's own fixed x dimensions, else a square d. Both only
  // for the operator and the figures: the outputs keep the [n, d] layout they have without them.
  if (!shape.known() && need_shape) {
    shape = shape_from_model_input(o.score.model, o.score.x_input, d);
    if (shape.known()) shape_source = "the model's x input";
  }
  if (!shape.known() && need_shape) {
    const int64_t s = static_cast<int64_t>(std::llround(std::sqrt(double(d))));
    if (s * s == d) {
      shape = {1, s, s};
      shape_source = "a square guess";
      if (!o.quiet)
        std::fprintf(stderr, "almc sample: note: assuming image shape [1, %lld, %lld] (give --shape C,H,W)\n",
                     static_cast<long long>(s), static_cast<long long>(s));
    }
  }

  // Refuse before sampling what could only fail after it.
  for (const auto& [path, name] : {std::pair{&o.png, "--png"}, {&o.png_each, "--png-each"}}) {
    if (path->empty()) continue;
    if (!shape.known())
      throw CliError(std::string(name) + " needs an image shape and d = " + std::to_string(d) +
                         " is not a square: give --shape C,H,W (or a --truth/--y with image dims)",
                     2);
    if (shape.C != 1 && shape.C != 3)
      throw CliError(std::string(name) + ": images with " + std::to_string(shape.C) + " channels cannot be drawn (need 1 or 3)", 2);
  }
  if (!o.png_each.empty() && team.root()) {
    std::error_code ec;
    std::filesystem::create_directories(o.png_each, ec);
    if (!std::filesystem::is_directory(o.png_each))
      throw CliError("--png-each " + o.png_each + ": cannot create the directory" + (ec ? " (" + ec.message() + ")" : ""));
    if (::access(o.png_each.c_str(), W_OK | X_OK) != 0)
      throw CliError("--png-each " + o.png_each + ": the directory is not writable (" + std::strerror(errno) + ")");
    // Its files (mean_*.png, sample_*.png) must not replace an input or another output.
    const std::filesystem::path dir = std::filesystem::weakly_canonical(o.png_each, ec);
    for (const auto& [path, name] : {std::pair{&o.y_path, "--y"}, {&o.truth_path, "--truth"}, {&spec.file, "--operator"},
                                     {&o.png, "--png"}, {&o.out, "--out"}, {&o.mean, "--mean"}, {&o.std, "--std"}}) {
      if (path->empty()) continue;
      const std::filesystem::path f = std::filesystem::weakly_canonical(*path, ec);
      const std::string base = f.filename().string();
      const bool pattern = (base.rfind("mean_", 0) == 0 || base.rfind("sample_", 0) == 0) && base.size() > 4 &&
                           base.compare(base.size() - 4, 4, ".png") == 0;
      if (pattern && f.parent_path() == dir)
        throw CliError(std::string("--png-each ") + o.png_each + " would write over " + name + " " + *path +
                           " (its files are named mean_I.png and sample_I_C.png): choose another directory",
                       2);
    }
  }

  // ---- measurement count from y
  int64_t n_meas = 1, m = 0;
  if (have_y) {
    m = operator_rows(spec, d, shape);
    if (is_png(o.y_path) && y.shape.size() == 3 && y.shape[0] == 3 && y.size() == 3 * m)
      y = gray_from_rgb(std::move(y), o.y_path, o.quiet);
    if (y.size() == m) {
      n_meas = 1;
    } else if (y.shape.size() == 1) {
      // A flat y is one measurement: with m = 1 every flat array's length was a multiple of m, so
      // [4] ran as 4 measurements.
      throw CliError("--y " + o.y_path + " is flat with " + std::to_string(y.size()) + " values; the operator " +
                         (o.op_spec.empty() ? std::string("identity") : o.op_spec) + " expects " + std::to_string(m) +
                         " values per measurement, and a flat --y is one measurement (give several as [n_meas, " +
                         std::to_string(m) + "])",
                     1);
    } else if (!y.shape.empty() && y.shape[0] > 0 && y.size() % m == 0 && y.size() / m == y.shape[0]) {
      n_meas = y.shape[0];
    } else {
      throw CliError("--y " + o.y_path + " has shape " + almc::io::shape_string(y.shape) + " (" + std::to_string(y.size()) +
                         " values); the operator " + (o.op_spec.empty() ? std::string("identity") : o.op_spec) + " expects " + std::to_string(m) +
                         " values per measurement ([m] or [n_meas, ...] with m = " + std::to_string(m) + ")",
                     1);
    }
  }
  if (!truth.shape.empty() && truth.size() != n_meas * d)
    throw CliError("--truth " + o.truth_path + " has " + std::to_string(truth.size()) + " values " +
                   almc::io::shape_string(truth.shape) + ", expected n_meas x d = " + std::to_string(n_meas) + " x " +
                   std::to_string(d));
  // An image-shaped --y or --truth must have the image's layout, not only as many values: a 3 x 4
  // image read as 4 x 3 (by --shape, or by the other file) was silently re-laid out. Leading
  // dimensions of 1 aside; a flat [m] or [n_meas, m] array is taken as laid out.
  // Without an image shape, a measurement (or image) is flat: y [4, 1] (a transposed [m]) or
  // [2, 2, 2] for m = 4 was taken by its count alone, as one and two measurements (Python's
  // Sampler.run refuses those shapes too).
  auto check_layout = [&](const FloatArray& a, const ImageShape& want, const std::string& what, const char* image,
                          int64_t count) {
    if (a.shape.size() < 2) return;
    std::vector<int64_t> per(a.shape.begin() + (count > 1 ? 1 : 0), a.shape.end());
    auto strip = [](std::vector<int64_t> v) {
      while (v.size() > 1 && v.front() == 1) v.erase(v.begin());
      return v;
    };
    per = strip(per);
    if (per.size() == 1) return;  // [n_meas, m]: flat
    if (!want.known())
      throw CliError(what + " has shape " + almc::io::shape_string(a.shape) +
                         "; with no image shape (give --shape C,H,W) it must be flat: [" + std::to_string(a.size() / count) +
                         "] for one, [n_meas, " + std::to_string(a.size() / count) + "] for several",
                     2);
    if (per != strip({want.C, want.H, want.W}))
      throw CliError(what + " has shape " + almc::io::shape_string(a.shape) + " but " + image + " is " + want.str() + " (" +
                         shape_source + "): its values would be read in another layout (give --shape C,H,W to match)",
                     2);
  };
  if (have_y) check_layout(y, measurement_shape(spec, shape), "--y " + o.y_path, "the measurement's image", n_meas);
  if (!truth.shape.empty()) check_layout(truth, shape, "--truth " + o.truth_path, "the image", n_meas);
  const int64_t chains = cfg.chains_per_meas;
  if (n_meas > (int64_t(1) << 30) / chains || n_meas * chains > (int64_t(1) << 40) / std::max<int64_t>(d, 1))
    throw CliError("n_meas x chains x d = " + std::to_string(n_meas) + " x " + std::to_string(chains) + " x " +
                       std::to_string(d) + " is too large (n_meas x chains at most 2^30, times d at most 2^40)",
                   2);
  cfg.n_meas = n_meas;
  cfg.noise_std = have_y ? o.noise_std : cfg.noise_std;
  if (range.set()) {
    if (range.start > n_meas * chains - range.count)
      throw CliError("--chain-range " + o.chain_range + " ends past the run's " + std::to_string(n_meas * chains) +
                         " chains (" + std::to_string(n_meas) + " measurement(s) x " + std::to_string(chains) + ")",
                     2);
    cfg.chain_start = range.start;
    cfg.chain_count = range.count;
  }

  std::string op_desc = "none (prior)";
  Operator op;
  if (have_y) op = make_operator(ctx.get(), spec, d, shape, n_meas, &op_desc);
  // --tf32 covers the dense operator's GEMMs too (CUDA only; a no-op elsewhere).
  if (have_y && o.score.precision_name() == "tf32") check(almc_operator_set_tf32(op.get(), 1), "--tf32", op.get());

  const json bindings = network_bindings(score.get(), cfg);
  if (o.verbose && !bindings.is_null()) {
    std::string line = "almc sample: x <- input '" + bindings["x"].get<std::string>() + "'";
    if (bindings["level"].is_null())
      line += ", no level input";
    else
      line += ", level <- input '" + bindings["level"].get<std::string>() + "'";
    if (bindings.contains("level_range"))
      line += ", fed " + num(bindings["level_range"][0].get<double>()) + " .. " +
              num(bindings["level_range"][1].get<double>()) + " (OU t " +
              num(bindings["t_range"][0].get<double>()) + " .. " + num(bindings["t_range"][1].get<double>()) + ")";
    std::fprintf(stderr, "%s\n", line.c_str());
  }

  // ---- the run's identity (slice records, snapshots) and a snapshot to continue
  const bool img = shape.known() && std::string(shape_source) != "a square guess" &&
                   std::string(shape_source) != "the model's x input";
  auto with_shape = [&](int64_t lead) {
    return img ? std::vector<int64_t>{lead, shape.C, shape.H, shape.W} : std::vector<int64_t>{lead, d};
  };
  std::vector<int64_t> sample_shape = with_shape(1);
  sample_shape.erase(sample_shape.begin());
  almc_backend backend_kind = ALMC_BACKEND_CPU;
  check(almc_context_backend(ctx.get(), &backend_kind), "backend", ctx.get());
  const json identity =
      run_identity(o, cfg, spec, have_y, backend_kind == ALMC_BACKEND_CUDA ? "cuda" : "cpu", d, sample_shape);
  json snapshot_identity = identity;
  if (range.set()) snapshot_identity["chain_range"] = {range.start, range.count};
  if (!o.resume.empty()) {
    check_snapshot_run(resume, o.resume, snapshot_identity);
    if (!o.quiet)
      std::fprintf(stderr, "almc sample: resuming %s after step %lld of %lld\n", o.resume.c_str(),
                   static_cast<long long>(resume.step), static_cast<long long>(resume.total));
  }

  // A long run whose samples go nowhere is most likely a forgotten --out.
  if (!o.quiet && o.out.empty() && o.mean.empty() && o.std.empty() && o.png.empty() && o.png_each.empty() &&
      o.diagnostics.empty())
    std::fprintf(stderr, "almc sample: note: no output file given (--out, --mean, --std, --png, --png-each, "
                         "--diagnostics): the samples will not be kept\n");

  // ---- sample
  RunRequest req;
  req.ctx = ctx.get();
  req.score = score.get();
  req.op = op.get();
  req.cfg = cfg;
  req.y = have_y ? y.data.data() : nullptr;
  req.d = d;
  req.quiet = o.quiet;
  req.snapshot = o.snapshot;
  req.snapshot_every = o.snapshot_every;
  req.run_identity = snapshot_identity;
  req.resume_state = o.resume.empty() ? nullptr : &resume.state;
  // Alone: the run (or its --chain-range slice); under MPI this rank's block of it, gathered on rank 0.
  RunResult res = team.run(req, range.set() ? range.start : 0, range.set() ? range.count : n_meas * chains);
  if (!team.root()) return;

  // ---- outputs (Ctrl-C from here on stops between two files, never inside one)
  OutputPhase writing;
  const int64_t N = range.set() ? range.count : n_meas * chains;
  if (!o.out.empty()) save_array(o.out, res.samples.data(), with_shape(N));
  if (range.set()) {
    SliceRecord rec;
    rec.sample_shape = sample_shape;
    rec.run = identity;
    rec.n_meas = n_meas;
    rec.chains_per_meas = chains;
    rec.d = d;
    rec.range = range;
    write_slice_sidecar(o.out, rec);
  }
  if (!o.mean.empty()) save_array(o.mean, res.mean.data(), with_shape(n_meas));
  if (!o.std.empty()) save_array(o.std, res.std.data(), with_shape(n_meas));

  json summary;
  summary["command"] = "sample";
  summary["method"] = lower(o.method);
  summary["variant"] = o.variant;
  summary["score"] = score_desc;
  summary["operator"] = op_desc;
  summary["backend"] = res.backend;
  summary["device"] = res.device;
  summary["d"] = d;
  summary["m"] = m;
  summary["n_meas"] = n_meas;
  summary["chains_per_meas"] = chains;
  summary["seed"] = cfg.seed;
  if (range.set()) summary["chain_range"] = {range.start, range.count};
  if (team.mpi()) summary["mpi_ranks"] = team.size();
  if (!o.resume.empty()) summary["resumed_after_step"] = res.info.start_step;
  summary["noise_std"] = have_y ? json(o.noise_std) : json(nullptr);
  if (shape.known()) summary["image_shape"] = {shape.C, shape.H, shape.W};
  summary["steps"] = res.info.steps;
  summary["score_evals"] = res.info.score_evals;
  summary["warm_steps"] = res.info.warm_steps;
  summary["seconds"] = res.info.seconds;
  summary["wall_seconds"] = res.wall_seconds;
  summary["mean_residual"] = finite_or_nan(res.info.mean_residual);
  if (!bindings.is_null()) summary["bindings"] = bindings;
  summary["outputs"] = {{"samples", o.out}, {"mean", o.mean}, {"std", o.std}, {"png", o.png}, {"diagnostics", o.diagnostics}};
  if (!truth.shape.empty()) {
    // The peak-to-peak range: --psnr-range, else the data's (--data-range, default [-1, 1]: 2).
    const double psnr_range = o.given("--psnr-range") ? o.psnr_range : double(data_hi) - double(data_lo);
    json pm = json::array(), ps = json::array();
    for (int64_t i = 0; i < n_meas; ++i) {
      pm.push_back(finite_or_nan(almc::io::psnr(res.mean.data() + i * d, truth.data.data() + i * d, d, psnr_range)));
      double acc = 0;
      for (int64_t c = 0; c < chains; ++c)
        acc += almc::io::psnr(res.samples.data() + (i * chains + c) * d, truth.data.data() + i * d, d, psnr_range);
      ps.push_back(finite_or_nan(acc / double(chains)));
    }
    summary["psnr_mean"] = pm;
    summary["psnr_sample_avg"] = ps;
    summary["psnr_range"] = psnr_range;
  }

  if (!o.png.empty()) {
    PosteriorFigure fig;
    fig.x = shape;
    fig.y_shape = have_y ? measurement_shape(spec, shape) : ImageShape{};
    if (fig.y_shape.known() && fig.y_shape.size() != m) fig.y_shape = {};
    fig.n_meas = n_meas;
    fig.chains = chains;
    fig.y = have_y ? y.data.data() : nullptr;
    fig.samples = res.samples.data();
    fig.mean = res.mean.data();
    fig.std = res.std.data();
    fig.truth = truth.shape.empty() ? nullptr : truth.data.data();
    fig.n_show = o.png_samples;
    fig.scale = static_cast<int>(std::clamp<int64_t>(128 / std::max<int64_t>(1, std::max(shape.H, shape.W)), 1, 8));
    fig.title = std::string("samples: ") + sample_kind(cfg);
    if (summary.contains("psnr_mean"))
      for (int64_t i = 0; i < n_meas; ++i) {
        char note[96];
        std::snprintf(note, sizeof note, "PSNR mean %.1f dB, samples %.1f dB",
                      summary["psnr_mean"][i].is_number() ? summary["psnr_mean"][i].get<double>() : NAN,
                      summary["psnr_sample_avg"][i].is_number() ? summary["psnr_sample_avg"][i].get<double>() : NAN);
        fig.row_notes.push_back(note);
      }
    if (!o.png_range.empty()) {
      std::tie(fig.lo, fig.hi) = parse_range(o.png_range, "--png-range");
    } else if (!o.data_range.empty()) {
      fig.lo = data_lo;
      fig.hi = data_hi;
    } else {
      // The range of the truth, else of the mean: samples outside are clipped.
      const std::vector<float>& ref = truth.shape.empty() ? res.mean : truth.data;
      const auto [mn, mx] = std::minmax_element(ref.begin(), ref.end());
      fig.lo = *mn;
      fig.hi = *mx > *mn ? *mx : *mn + 1.f;
    }
    write_posterior_png(o.png, fig);
  }
  if (!o.png_each.empty()) {
    // One PNG per sample and per measurement's mean, on the data range (--data-range, default [-1, 1]).
    const int wid = static_cast<int>(std::to_string(std::max<int64_t>(N, n_meas) - 1).size());
    char name[64];
    for (int64_t i = 0; i < n_meas; ++i) {
      std::snprintf(name, sizeof name, "/mean_%0*lld.png", wid, static_cast<long long>(i));
      write_image_png(o.png_each + name, res.mean.data() + i * d, shape, data_lo, data_hi);
      for (int64_t c = 0; c < chains; ++c) {
        std::snprintf(name, sizeof name, "/sample_%0*lld_%0*lld.png", wid, static_cast<long long>(i), wid,
                      static_cast<long long>(c));
        write_image_png(o.png_each + name, res.samples.data() + (i * chains + c) * d, shape, data_lo, data_hi);
      }
    }
    summary["outputs"]["png_each"] = o.png_each;
  }

  if (!o.diagnostics.empty()) {
    json diag = summary;
    diag["config"] = {{"kappa", cfg.kappa},         {"delta", cfg.delta},
                      {"t_start", cfg.t_start},     {"t_stop", cfg.t_stop},
                      {"warm_steps", cfg.warm_steps}, {"warm_step", cfg.warm_step},
                      {"average_last", cfg.average_last}, {"tweedie", cfg.tweedie != 0},
                      {"schedule", lower(o.schedule)}, {"n_levels", cfg.n_levels},
                      {"sigma_max", cfg.sigma_max}, {"sigma_min", cfg.sigma_min},
                      {"steps_per_level", cfg.steps_per_level}, {"eps", cfg.eps},
                      {"likelihood_weight", cfg.likelihood_weight}, {"force_unstable", cfg.force_unstable != 0}};
    diag["run_info"] = {{"steps", res.info.steps},
                        {"score_evals", res.info.score_evals},
                        {"warm_steps", res.info.warm_steps},
                        {"warm_step", finite_or_nan(res.info.warm_step)},
                        {"seconds", res.info.seconds},
                        {"max_stable_delta", finite_or_nan(res.info.max_stable_delta)},
                        {"operator_norm", finite_or_nan(res.info.operator_norm)},
                        {"diverged_chain", res.info.diverged_chain},
                        {"diverged_step", res.info.diverged_step},
                        {"mean_residual", finite_or_nan(res.info.mean_residual)},
                        {"used_graphs", res.info.used_graphs != 0},
                        {"smc_resamples", res.info.smc_resamples}};
    json r = json::array();
    for (float v : res.residuals) r.push_back(finite_or_nan(v));
    diag["residuals"] = r;
    diag["workspace_bytes"] = res.workspace_bytes;
    write_text_file("--diagnostics", o.diagnostics, diag.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  }

  o.json.emit(summary);
  writing.finish();
  if (!o.quiet && !o.json.on_stdout()) {
    // A resumed run ran only the steps after its snapshot's: said, beside the run's total.
    const std::string resumed =
        o.resume.empty() ? "" : " (resumed after step " + std::to_string(res.info.start_step) + ")";
    std::printf("almc sample: %s, %lld measurement(s) x %lld chains, d = %lld, %lld steps%s in %.2f s on %s\n",
                lower(o.method).c_str(), static_cast<long long>(n_meas), static_cast<long long>(chains),
                static_cast<long long>(d), static_cast<long long>(res.info.steps), resumed.c_str(), res.info.seconds,
                res.device.c_str());
    if (have_y) std::printf("  mean residual ||y - A x|| = %.4g\n", res.info.mean_residual);
    if (summary.contains("psnr_mean"))
      for (int64_t i = 0; i < n_meas; ++i)
        std::printf("  measurement %lld: PSNR posterior mean %.2f dB, average sample %.2f dB\n", static_cast<long long>(i),
                    summary["psnr_mean"][i].is_number() ? summary["psnr_mean"][i].get<double>() : NAN,
                    summary["psnr_sample_avg"][i].is_number() ? summary["psnr_sample_avg"][i].get<double>() : NAN);
    for (const auto& [key, path] : std::initializer_list<std::pair<const char*, const std::string*>>{
             {"samples", &o.out}, {"mean", &o.mean}, {"std", &o.std}, {"figure", &o.png}, {"diagnostics", &o.diagnostics}})
      if (!path->empty()) std::printf("  wrote %s %s\n", key, path->c_str());
  }
}

}  // namespace

void register_sample_command(CLI::App& app) {
  auto o = std::make_shared<SampleOptions>();
  CLI::App* sub = app.add_subcommand("sample", "Draw posterior (or prior) samples");
  o->app = sub;
  o->score.add_options(sub, true);
  auto& c = o->cfg;
  sub->add_option("--operator", o->op_spec, "identity | mask:FILE.npy | downsample:K | blur:FILE.npy | matrix:FILE.npy (default identity)");
  sub->add_option("--y", o->y_path, "measurement (.npy [m] or [n_meas, ...]; or a PNG mapped to [-1, 1])");
  sub->add_option("--noise-std", o->noise_std, "measurement noise standard deviation sigma_y, in y's units (> 0; required with --y)");
  sub->add_option("--shape", o->shape_text, "image shape C,H,W (default: from --truth, --y or the model's JSON)");
  sub->add_option("--truth", o->truth_path, "ground truth [d] or [n_meas, ...] for PSNR and the figure");
  sub->add_option("--method", o->method, "almc | ncsn | ald | xgp | langevin")->capture_default_str();
  sub->add_option("--likelihood-weight", c.likelihood_weight, "weight of the likelihood term (>= 0; 0 samples the prior)")->capture_default_str();
  // ALMC
  sub->add_option("--kappa", c.kappa,
                  "ALMC rate kappa: levels delta/kappa apart in OU time (> 0; default 10). Steps grow in "
                  "proportion to kappa; the annealing's tracking lag shrinks with it (docs/ALGORITHMS.md Sec. 6)")
      ->group("ALMC");
  sub->add_option("--delta", c.delta, "ALMC step delta, in OU time (> 0; default 1e-3)")->group("ALMC");
  sub->add_option("--t-start", c.t_start, "ALMC start time T_ws, in OU time (> 0, at most 40; default 5)")->group("ALMC");
  sub->add_option("--t-stop", c.t_stop, "ALMC stop time tau, in OU time (> 0, below --t-start; default 0.01)")->group("ALMC");
  sub->add_option("--warm-steps", c.warm_steps, "warm-start steps (>= 0; default ceil(10 (1 + L_R)))")->group("ALMC");
  sub->add_option("--warm-step", c.warm_step, "warm-start step (> 0; default 0.5 / (1 + L_R))")->group("ALMC");
  sub->add_option("--variant", o->variant,
                  "ALMC's likelihood along the path: paper | noised-lik (Gaussian approximation of p(y | x_t)) | "
                  "scaled-y (y follows the OU mean) | smc (paper likelihood plus sequential Monte Carlo: exact importance "
                  "weights and resampling of each measurement's chains; Gaussian/GMM priors only) | geo-smc (smc on levels "
                  "geometric in sigma) | best (the README's recommendation: paper likelihood, levels geometric in "
                  "sigma unless --schedule is given); docs/ALGORITHMS.md Sec. 7-9")
      ->capture_default_str()->group("ALMC");
  sub->add_option("--smc-ess", c.smc_ess_threshold,
                  "smc / geo-smc: resample a measurement's chains when their effective sample size falls below this "
                  "fraction of --chains (in (0, 1]; default 0.5)")
      ->group("ALMC");
  sub->add_option("--average-last", c.average_last, "output a random iterate among the last W steps (0 or 1: the last iterate)")->capture_default_str()->group("ALMC");
  sub->add_flag("--tweedie", o->tweedie, "final Tweedie denoise at the last level")->group("ALMC");
  // family
  sub->add_option("--schedule", o->schedule, "default | uniform-t | geometric-sigma | list")->capture_default_str()->group("Annealed family");
  sub->add_option("--levels", c.n_levels, "number of noise levels (>= 1)")->capture_default_str()->group("Annealed family");
  sub->add_option("--sigma-max", c.sigma_max, "largest VE sigma (XGP: eta_1) (> 0; default 50, XGP 1)")->group("Annealed family");
  sub->add_option("--sigma-min", c.sigma_min, "smallest VE sigma (> 0)")->capture_default_str()->group("Annealed family");
  sub->add_option("--steps-per-level", c.steps_per_level, "Langevin steps per level (>= 1)")->capture_default_str()->group("Annealed family");
  sub->add_option("--eps", c.eps, "base step (h_k = eps sigma_k^2 / sigma_L^2; XGP: h) (> 0; default 2e-5, XGP 1e-3)")->group("Annealed family");
  sub->add_option("--levels-file", o->levels_file, "OU times, decreasing (.npy, 1-D): selects --schedule list")->group("Annealed family");
  sub->add_option("--init", o->init, "gaussian | uniform")->capture_default_str()->group("Annealed family");
  sub->add_option("--init-scale", c.init_scale, "std of the Gaussian / half-width of the uniform init (> 0)")->capture_default_str()->group("Annealed family");
  // execution
  sub->add_option("--chains", c.chains_per_meas, "chains per measurement (1 to 2^24)")->capture_default_str()->group("Execution");
  sub->add_option("--seed", c.seed, "random seed")->transform(seed_check())->capture_default_str()->group("Execution");
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str()->group("Execution");
  sub->add_option("--threads", o->threads, "CPU threads (0: OpenMP default)")->capture_default_str()->transform(threads_check())->group("Execution");
  sub->add_option("--check-every", c.check_every, "steps between NaN and residual checks (>= 1; progress and Ctrl-C are polled at least every 0.2 s anyway)")->capture_default_str()->group("Execution");
  sub->add_flag("--force", o->force, "run even when the step exceeds the stability bound")->group("Execution");
  // outputs
  sub->add_option("--chain-range", o->chain_range,
                  "START:COUNT: run only global chains START .. START+COUNT-1 of the n_meas*chains (bitwise those "
                  "of the whole run); writes --out and its <out>.json record for almc merge")
      ->group("Execution");
  sub->add_option("--snapshot", o->snapshot,
                  "FILE: keep the run's resumable state here (written atomically) every --snapshot-every steps and "
                  "when Ctrl-C or SIGTERM stops the run")
      ->group("Execution");
  sub->add_option("--snapshot-every", o->snapshot_every, "N: write --snapshot every N steps (>= 1; a kill loses at most N steps)")
      ->group("Execution");
  sub->add_option("--resume", o->resume,
                  "FILE: continue the run saved in this snapshot (same options and inputs; the samples are bitwise "
                  "those of an uninterrupted run)")
      ->group("Execution");
  sub->add_option("--out", o->out, "samples (.npy [n_meas*chains, C, H, W] or [n_meas*chains, d])")->group("Output");
  sub->add_option("--mean", o->mean, "posterior mean per measurement (.npy)")->group("Output");
  sub->add_option("--std", o->std, "posterior std per measurement (.npy)")->group("Output");
  sub->add_option("--diagnostics", o->diagnostics, "run details (JSON)")->group("Output");
  sub->add_option("--png", o->png, "figure: measurement | samples | mean | std | truth")->group("Output");
  sub->add_option("--png-samples", o->png_samples, "samples shown per row (>= 0)")->capture_default_str()->transform(int_check())->group("Output");
  sub->add_option("--png-range", o->png_range, "LO,HI value range shown (default: --data-range if given, else truth's or mean's range)")->group("Output");
  sub->add_option("--png-each", o->png_each, "directory: one PNG per sample (sample_I_C.png) and per mean (mean_I.png)")->group("Output");
  sub->add_option("--data-range", o->data_range, "LO,HI: the data's range; PNG inputs map [0, 255] onto it and --png-each back (default -1,1; 0,1 for [0, 1] data)")->group("Output");
  sub->add_option("--psnr-range", o->psnr_range, "peak-to-peak data range for PSNR, in data units (> 0; default: the width of --data-range, 2)")->check(positive_finite_check())->group("Output");
  sub->add_flag("--quiet,-q", o->quiet, "no progress, notes or summary")->group("Output");
  o->json.add_option(sub, "a JSON summary of the run");
  sub->get_option("--json")->group("Output");
  sub->add_flag("--verbose,-v", o->verbose, "show the engine's info log")->group("Output");
  sub->callback([o]() { Team::run_body("sample", [&](Team& team) { run_sample(*o, team); }); });
}

}  // namespace almc::cli
