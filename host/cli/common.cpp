// Helpers shared by the almc subcommands: contexts, scores, operators, arrays.
#include "host/cli/commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <limits>

#include "cuda/launch_policy.hpp"
#include "host/io/image.hpp"
#include "host/io/npy.hpp"

namespace almc::cli {
namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && lower(s.substr(s.size() - suffix.size())) == suffix;
}

int64_t parse_positive_int(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 12 || !std::all_of(text.begin(), text.end(), ::isdigit))
    throw CliError(what + " must be a positive integer, got '" + text + "'", 2);
  const int64_t v = std::stoll(text);
  if (v <= 0) throw CliError(what + " must be a positive integer, got '" + text + "'", 2);
  return v;
}

void log_to_stderr(almc_log_level level, const char* message, void* /*user_data*/) {
  const char* tag = level >= ALMC_LOG_ERROR ? "error" : level == ALMC_LOG_WARN ? "warning" : "info";
  std::fprintf(stderr, "almc: %s: %s\n", tag, message ? message : "");
}

}  // namespace

namespace {
// The C API's names for what the command line calls options.
const std::vector<std::pair<std::string, std::string>> kTerms = {
    {"level = ALMC_LEVEL_NONE", "--level none"},
    {"level = ALMC_LEVEL_INDEX with the model's alpha_bar table (config.alpha_bar_table)", "--level index --alpha-bar FILE.npy"},
    {"level = ALMC_LEVEL_INDEX", "--level index"},
    {"set config.x_input = ", "give --x-input "},
    {"config.x_input", "--x-input"},
    {"config.level_input", "--level-input"},
    {"alpha_bar_table", "--alpha-bar"},
    {"(config.inputs)", "(--input NAME=VALUE|FILE.npy)"},
    {"with output channels 0 to ", "with --output-slice 0:"},
    {" (config.output_channel_begin/end)", ""},
    {"x_shape [", "the sample shape ["},
};
}  // namespace

const std::vector<std::pair<std::string, std::string>>& cli_term_table() { return kTerms; }

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string cli_terms(const char* engine_message) {
  std::string msg = engine_message ? engine_message : "";
  for (const auto& [api, cli] : kTerms)
    for (size_t at = msg.find(api); at != std::string::npos; at = msg.find(api, at + cli.size()))
      msg.replace(at, api.size(), cli);
  return msg;
}

namespace {
// almc_sampler_config's fields and the options of `almc sample` that set them.
const std::pair<const char*, const char*> kFields[] = {
      {"t_start", "--t-start"},           {"t_stop", "--t-stop"},
      {"warm_steps", "--warm-steps"},     {"warm_step", "--warm-step"},
      {"average_last", "--average-last"}, {"sigma_min", "--sigma-min"},
      {"sigma_max", "--sigma-max"},       {"likelihood_weight", "--likelihood-weight"},
      {"n_levels", "--levels"},           {"steps_per_level", "--steps-per-level"},
      {"smc_ess_threshold", "--smc-ess"}, {"init_scale", "--init-scale"},
      {"noise_std", "--noise-std"},       {"chains_per_meas", "--chains"},
      {"check_every", "--check-every"},   {"delta", "--delta"},
      {"kappa", "--kappa"},               {"eps", "--eps"}};
}  // namespace

std::vector<std::pair<std::string, std::string>> sampler_field_options() {
  return {std::begin(kFields), std::end(kFields)};
}

std::string sampler_terms(const char* engine_message) {
  std::string msg = engine_message ? engine_message : "";
  // Only "<field> = <value>" at a word's start: the same names inside formulas ("kappa t_start /
  // delta = ...") stay as they are.
  for (const auto& [field, option] : kFields) {
    const std::string key = std::string(field) + " = ";
    for (size_t at = msg.find(key); at != std::string::npos; at = msg.find(key, at + 1)) {
      const bool word_start = at == 0 || msg[at - 1] == ' ' || msg[at - 1] == '(';
      const bool in_formula = at >= 2 && msg.compare(at - 2, 2, "/ ") == 0;
      if (!word_start || in_formula) continue;
      msg.replace(at, key.size(), std::string(option) + " ");
    }
  }
  const std::string hint = " (set force_unstable to run anyway)";
  if (const size_t at = msg.find(hint); at != std::string::npos) msg.erase(at, hint.size());
  return msg;
}

// The engine's message (copied at once), else the status string; one line whatever the engine wrote.
// `what` is "<option>" or "<option> <path>". An engine message that opens with the path, alone or
// after a few words naming the file ("P: GMM JSON: ...", "ONNX model P: is a directory", "ONNX
// model 'P' is not a valid ONNX model") has that opening taken off: the path is said once.
[[noreturn]] static void throw_engine_error(almc_status status, const std::string& what, const char* last_error) {
  std::string msg = last_error && *last_error ? cli_terms(last_error) : almc_status_string(status);
  std::replace(msg.begin(), msg.end(), '\n', ' ');
  if (const size_t space = what.find(' '); space != std::string::npos) {
    const std::string path = what.substr(space + 1);
    for (const std::string& form : {path + ": ", "'" + path + "': ", "'" + path + "' "}) {
      const size_t at = msg.find(form);
      const bool opening = at != std::string::npos && at <= 24 && msg.find(':') >= at;
      if (opening && msg.size() > at + form.size()) {
        msg.erase(0, at + form.size());
        break;
      }
    }
  }
  throw CliError(what + ": " + msg);
}

void check(almc_status status, const std::string& what, almc_context_t ctx) {
  if (status != ALMC_OK) throw_engine_error(status, what, ctx ? almc_context_last_error(ctx) : nullptr);
}
void check(almc_status status, const std::string& what, almc_score_t score) {
  if (status != ALMC_OK) throw_engine_error(status, what, score ? almc_score_last_error(score) : nullptr);
}
void check(almc_status status, const std::string& what, almc_operator_t op) {
  if (status != ALMC_OK) throw_engine_error(status, what, op ? almc_operator_last_error(op) : nullptr);
}
void check(almc_status status, const std::string& what, almc_sampler_t sampler) {
  if (status != ALMC_OK) throw_engine_error(status, what, sampler ? almc_sampler_last_error(sampler) : nullptr);
}

double finite_or_nan(double v) { return std::isfinite(v) ? v : std::numeric_limits<double>::quiet_NaN(); }

bool progress_enabled(bool quiet) { return !quiet && ::isatty(STDERR_FILENO) == 1; }

const std::vector<std::pair<std::string, almc_variant>>& variant_names() {
  static const std::vector<std::pair<std::string, almc_variant>> v = {{"paper", ALMC_VARIANT_PAPER},
                                                                      {"noised-lik", ALMC_VARIANT_NOISED_LIK},
                                                                      {"scaled-y", ALMC_VARIANT_SCALED_Y},
                                                                      {"smc", ALMC_VARIANT_SMC},
                                                                      {"geo-smc", ALMC_VARIANT_GEO_SMC},
                                                                      {"best", ALMC_VARIANT_BEST}};
  return v;
}

almc_variant parse_variant(const std::string& name) {
  std::string all;
  for (const auto& [n, v] : variant_names()) {
    if (n == name) return v;
    all += (all.empty() ? "" : ", ") + n;
  }
  throw CliError("unknown --variant '" + name + "' (use " + all + ")", 2);
}

Context make_context(const std::string& backend, int threads, bool quiet, bool verbose, int device) {
  almc_context_config cfg = almc_context_config_default();
  cfg.device = device;
  const std::string b = lower(backend);
  if (b == "auto")
    cfg.backend = ALMC_BACKEND_AUTO;
  else if (b == "cpu")
    cfg.backend = ALMC_BACKEND_CPU;
  else if (b == "cuda" || b == "gpu")
    cfg.backend = ALMC_BACKEND_CUDA;
  else
    throw CliError("unknown backend '" + backend + "' (use auto, cpu or cuda)", 2);
  if (threads < 0) throw CliError("--threads must be >= 0", 2);
  // The engine's own limit, said here: a failed context creation has no handle to carry a message.
  if (threads > kMaxThreads)
    throw CliError("--threads " + std::to_string(threads) + " is above the limit of " + std::to_string(kMaxThreads), 2);
  cfg.n_threads = threads;
  if (!quiet) {
    cfg.log = &log_to_stderr;
    cfg.log_level = verbose ? ALMC_LOG_INFO : ALMC_LOG_WARN;
  }
  almc_context_t ctx = nullptr;
  const almc_status st = almc_context_create(&cfg, &ctx);
  Context owned(ctx);
  if (st != ALMC_OK) {
    std::string msg = ctx ? almc_context_last_error(ctx) : "";
    if (msg.empty()) msg = almc_status_string(st);
    if (st == ALMC_ERR_NO_DEVICE && (b == "cuda" || b == "gpu")) msg += " (use --backend cpu or auto)";
    // The CUDA backend's environment settings (a failed create has no handle to carry the reason).
    almc::GmmRespMode mode;
    const char* resp = std::getenv("ALMC_GPU_GMM_RESP");
    if (st == ALMC_ERR_INVALID_ARGUMENT && !almc::parse_gmm_resp_mode(resp, &mode))
      msg += ": " + almc::gmm_resp_mode_problem(resp);
    throw CliError("cannot create the " + b + " context: " + msg);
  }
  return owned;
}

// ------------------------------------------------------------------ score

void ScoreOptions::add_options(CLI::App* app, bool with_prior, bool with_adapter) {
  app->add_option("--model", model, "ONNX score network (.onnx)");
  if (with_prior) app->add_option("--prior", prior, "Gaussian-mixture prior (JSON: weights, means, variances|stds)");
  app->add_option("--x-input", x_input, "network input name for x (default: the first input)");
  app->add_option("--level-input", level_input, "network input name for the noise level (default: the second input)");
  app->add_option("--input", inputs, "a further network input's constant value: NAME=VALUE or NAME=FILE.npy (repeatable)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app->add_option("--output-slice", output_slice, "keep the output's channels B:E (a learned-variance model's first C of 2C: 0:C)");
  app->add_option("--precision", precision,
                  "the network's GEMMs and convolutions: fp32 (default) | tf32 (CUDA tensor cores, a dense operator's "
                  "GEMMs too) | bf16 (CPU: bfloat16 inputs, fp32 sums); the chains stay fp32");
  app->add_flag("--tf32", tf32, "the same as --precision tf32");
  if (!with_adapter) return;
  output_opt = app->add_option("--output", output, "what the network predicts: score | eps | denoiser | x0")->capture_default_str();
  convention_opt = app->add_option("--convention", convention, "the network's noise convention: ou | vp | ve")->capture_default_str();
  level_opt = app->add_option("--level", level, "how the level is fed: t | sigma | log-sigma | index | none")->capture_default_str();
  app->add_option("--alpha-bar", alpha_bar, "alpha_bar table (.npy, 1-D) for --level index");
  app->add_option("--beta-min", beta_min, "continuous VP-SDE (score_sde): beta_min of the network's time s in [0, 1]");
  app->add_option("--beta-max", beta_max, "continuous VP-SDE: beta_max (feeds s with alpha_bar(s) = e^{-2t})");
  app->add_option("--level-scale", level_scale, "multiply the fed t, sigma or log-sigma (e.g. 999 for labels t * 999)");
}

std::string ScoreOptions::precision_name() const {
  const std::string p = lower(precision);
  if (!p.empty() && p != "fp32" && p != "tf32" && p != "bf16")
    throw CliError("unknown --precision '" + precision + "' (use fp32, tf32 or bf16)", 2);
  if (tf32 && !p.empty() && p != "tf32") throw CliError("--tf32 and --precision " + p + " disagree: give one", 2);
  return tf32 ? "tf32" : p.empty() ? "fp32" : p;
}

almc_onnx_config ScoreOptions::onnx_config(OnnxStorage& storage) const {
  std::vector<float>& alpha_bar_storage = storage.alpha_bar;
  almc_onnx_config cfg = almc_onnx_config_default();
  cfg.x_input = x_input.empty() ? nullptr : x_input.c_str();
  cfg.level_input = level_input.empty() ? nullptr : level_input.c_str();
  const std::string o = lower(output), c = lower(convention), l = lower(level);
  if (o == "score")
    cfg.output = ALMC_OUTPUT_SCORE;
  else if (o == "eps")
    cfg.output = ALMC_OUTPUT_EPS;
  else if (o == "denoiser")
    cfg.output = ALMC_OUTPUT_DENOISER;
  else if (o == "x0")
    cfg.output = ALMC_OUTPUT_X0;
  else
    throw CliError("unknown --output '" + output + "' (use score, eps, denoiser or x0)", 2);
  if (c == "ou")
    cfg.convention = ALMC_CONV_OU;
  else if (c == "vp")
    cfg.convention = ALMC_CONV_VP;
  else if (c == "ve")
    cfg.convention = ALMC_CONV_VE;
  else
    throw CliError("unknown --convention '" + convention + "' (use ou, vp or ve)", 2);
  if (l == "t")
    cfg.level = ALMC_LEVEL_T;
  else if (l == "sigma")
    cfg.level = ALMC_LEVEL_SIGMA;
  else if (l == "log-sigma" || l == "log_sigma")
    cfg.level = ALMC_LEVEL_LOG_SIGMA;
  else if (l == "index")
    cfg.level = ALMC_LEVEL_INDEX;
  else if (l == "none")
    cfg.level = ALMC_LEVEL_NONE;
  else
    throw CliError("unknown --level '" + level + "' (use t, sigma, log-sigma, index or none)", 2);
  if (cfg.level == ALMC_LEVEL_INDEX) {
    if (alpha_bar.empty()) throw CliError("--level index needs --alpha-bar FILE.npy", 2);
    FloatArray t = load_numbers(alpha_bar, "--alpha-bar", true);
    if (t.size() == 0) throw CliError("--alpha-bar " + alpha_bar + " is empty");
    if (t.shape.size() != 1)
      throw CliError("--alpha-bar " + alpha_bar + " must be 1-D (one alpha_bar per training step), got shape " +
                     almc::io::shape_string(t.shape), 2);
    for (float v : t.data)
      if (!(v > 0.f && v <= 1.f)) throw CliError("--alpha-bar " + alpha_bar + ": values must lie in (0, 1]");
    alpha_bar_storage = std::move(t.data);
    cfg.alpha_bar_table = alpha_bar_storage.data();
    cfg.alpha_bar_len = static_cast<int64_t>(alpha_bar_storage.size());
  } else if (!alpha_bar.empty()) {
    throw CliError("--alpha-bar is only used with --level index", 2);
  }
  cfg.x_shape = x_shape.empty() ? nullptr : x_shape.data();
  cfg.x_rank = static_cast<int64_t>(x_shape.size());
  const std::string prec = precision_name();
  cfg.precision = prec == "bf16" ? ALMC_PRECISION_BF16 : prec == "tf32" ? ALMC_PRECISION_TF32 : ALMC_PRECISION_FP32;
  cfg.allow_tf32 = prec == "tf32" ? 1 : 0;
  if (!std::isnan(beta_max) || !std::isnan(beta_min)) {
    const double bmin = std::isnan(beta_min) ? 0.0 : beta_min;
    if (!(beta_max > 0) || !std::isfinite(beta_max) || !(bmin >= 0) || !(beta_max >= bmin))
      throw CliError("--beta-min and --beta-max need 0 <= beta_min <= beta_max, beta_max > 0 (score_sde: 0.1 and 20)", 2);
    if (cfg.convention != ALMC_CONV_VP || cfg.level != ALMC_LEVEL_T)
      throw CliError("--beta-min/--beta-max describe a VP network fed its time: use them with --convention vp --level t", 2);
    cfg.beta_min = bmin;
    cfg.beta_max = beta_max;
  }
  if (!std::isnan(level_scale)) {
    if (!(level_scale > 0) || !std::isfinite(level_scale)) throw CliError("--level-scale must be positive", 2);
    if (cfg.level == ALMC_LEVEL_INDEX || cfg.level == ALMC_LEVEL_NONE)
      throw CliError("--level-scale applies to --level t, sigma or log-sigma", 2);
    cfg.level_scale = level_scale;
  }
  if (!output_slice.empty()) {
    const size_t colon = output_slice.find(':');
    if (colon == std::string::npos) throw CliError("--output-slice must be B:E (channels B to E-1), got '" + output_slice + "'", 2);
    const std::string b = output_slice.substr(0, colon), e = output_slice.substr(colon + 1);
    cfg.output_channel_begin = b.empty() ? 0 : (b == "0" ? 0 : parse_positive_int(b, "--output-slice begin"));
    cfg.output_channel_end = parse_positive_int(e, "--output-slice end");
    if (cfg.output_channel_end <= cfg.output_channel_begin) throw CliError("--output-slice B:E needs B < E, got '" + output_slice + "'", 2);
  }
  storage.names.clear();
  storage.values.clear();
  storage.shapes.clear();
  for (const auto& spec : inputs) {
    const size_t eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw CliError("--input must be NAME=VALUE or NAME=FILE.npy, got '" + spec + "'", 2);
    const std::string name = spec.substr(0, eq), value = spec.substr(eq + 1);
    for (const auto& n : storage.names)
      if (n == name) throw CliError("--input " + name + " is given twice", 2);
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    storage.names.push_back(name);
    if (end && *end == 0 && !ends_with(value, ".npy")) {
      // The value is fed as float32: a finite double beyond its range would become inf.
      if (!(std::fabs(v) <= std::numeric_limits<float>::max()))
        throw CliError("--input " + name + ": the value must be finite and within float32's range (|v| <= 3.4e38), got " +
                           value,
                       2);
      storage.values.push_back({static_cast<float>(v)});
      storage.shapes.push_back({});
    } else {
      FloatArray a = load_numbers(value, "--input " + name, true);
      storage.values.push_back(std::move(a.data));
      storage.shapes.push_back(a.shape);
    }
  }
  storage.inputs.clear();
  for (size_t i = 0; i < storage.names.size(); ++i)
    storage.inputs.push_back({storage.names[i].c_str(), storage.values[i].data(),
                              storage.shapes[i].empty() ? nullptr : storage.shapes[i].data(), int64_t(storage.shapes[i].size())});
  cfg.inputs = storage.inputs.empty() ? nullptr : storage.inputs.data();
  cfg.n_inputs = int64_t(storage.inputs.size());
  return cfg;
}

Score load_score(almc_context_t ctx, const ScoreOptions& opt, int64_t max_batch, std::string* description) {
  if (opt.model.empty() == opt.prior.empty())
    throw CliError(opt.model.empty() ? "give a score: --model FILE.onnx or --prior FILE.json"
                                     : "give only one of --model and --prior",
                   2);
  almc_score_t s = nullptr;
  if (!opt.model.empty()) {
    if (::access(opt.model.c_str(), R_OK) != 0)
      throw CliError("--model " + opt.model + ": cannot read: " + std::strerror(errno));
    OnnxStorage storage;
    almc_onnx_config cfg = opt.onnx_config(storage);
    cfg.max_batch = max_batch;
    const almc_status st = almc_score_create_onnx(ctx, opt.model.c_str(), &cfg, &s);
    Score owned(s);
    if (st != ALMC_OK) throw_engine_error(st, "--model " + opt.model, cli_terms(almc_context_last_error(ctx)).c_str());
    if (description) *description = "onnx:" + opt.model;
    return owned;
  }
  if (opt.precision_name() == "bf16") throw CliError("--precision bf16 applies to a --model network, not to a --prior", 2);
  // The network's options mean nothing to a prior: refuse them rather than ignore them (given
  // with their default value too).
  const ScoreOptions defaults;
  const auto on_line = [](const CLI::Option* o) { return o && o->count() > 0; };
  for (const auto& [given, name] : std::initializer_list<std::pair<bool, const char*>>{
           {!opt.x_input.empty(), "--x-input"},
           {!opt.level_input.empty(), "--level-input"},
           {!opt.inputs.empty(), "--input"},
           {!opt.output_slice.empty(), "--output-slice"},
           {on_line(opt.output_opt) || lower(opt.output) != defaults.output, "--output"},
           {on_line(opt.convention_opt) || lower(opt.convention) != defaults.convention, "--convention"},
           {on_line(opt.level_opt) || lower(opt.level) != defaults.level, "--level"},
           {!opt.alpha_bar.empty(), "--alpha-bar"},
           {!std::isnan(opt.beta_min) || !std::isnan(opt.beta_max), "--beta-min/--beta-max"},
           {!std::isnan(opt.level_scale), "--level-scale"}})
    if (given) throw CliError(std::string(name) + " applies to a --model network, not to a --prior", 2);
  if (::access(opt.prior.c_str(), R_OK) != 0)
    throw CliError("--prior " + opt.prior + ": cannot read: " + std::strerror(errno));
  const almc_status st = almc_score_create_gmm_json(ctx, opt.prior.c_str(), &s);
  Score owned(s);
  check(st, "--prior " + opt.prior, ctx);
  if (description) *description = "gmm:" + opt.prior;
  return owned;
}

// ------------------------------------------------------------------ shapes and operators

std::string ImageShape::str() const {
  return "[" + std::to_string(C) + ", " + std::to_string(H) + ", " + std::to_string(W) + "]";
}

ImageShape parse_shape(const std::string& text) {
  std::vector<int64_t> dims;
  size_t start = 0;
  while (true) {
    const size_t comma = text.find_first_of(",x", start);
    dims.push_back(parse_positive_int(text.substr(start, comma - start), "--shape entry"));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  ImageShape s;
  if (dims.size() == 3) {
    s.C = dims[0];
    s.H = dims[1];
    s.W = dims[2];
  } else if (dims.size() == 2) {
    s.C = 1;
    s.H = dims[0];
    s.W = dims[1];
  } else {
    throw CliError("--shape must be C,H,W or H,W, got '" + text + "'", 2);
  }
  if (s.C > (int64_t(1) << 20) || s.H > (int64_t(1) << 20) || s.W > (int64_t(1) << 20))
    throw CliError("--shape " + text + " is too large", 2);
  return s;
}

OperatorSpec parse_operator_spec(const std::string& text) {
  OperatorSpec s;
  const size_t colon = text.find(':');
  s.kind = lower(text.substr(0, colon));
  const std::string arg = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (s.kind == "identity" || s.kind == "none") {
    if (!arg.empty()) throw CliError("--operator identity takes no argument", 2);
    s.kind = "identity";
  } else if (s.kind == "mask" || s.kind == "blur" || s.kind == "matrix") {
    if (arg.empty()) throw CliError("--operator " + s.kind + " needs a file: " + s.kind + ":FILE.npy", 2);
    s.file = arg;
  } else if (s.kind == "downsample") {
    s.factor = parse_positive_int(arg, "--operator downsample:K factor");
  } else {
    throw CliError("unknown --operator '" + text + "' (use identity, mask:FILE.npy, downsample:K, blur:FILE.npy or matrix:FILE.npy)", 2);
  }
  return s;
}

ImageShape measurement_shape(const OperatorSpec& spec, const ImageShape& x) {
  if (!x.known() || spec.kind == "matrix") return {};
  if (spec.kind == "downsample") {
    if (spec.factor <= 0 || x.H % spec.factor || x.W % spec.factor) return {};
    return {x.C, x.H / spec.factor, x.W / spec.factor};
  }
  return x;
}

int64_t operator_rows(const OperatorSpec& spec, int64_t d, const ImageShape& shape) {
  if (spec.kind == "identity" || spec.kind == "mask" || spec.kind == "blur") return d;
  if (spec.kind == "downsample") {
    if (!shape.known())
      throw CliError("--operator downsample needs the image shape: give --shape C,H,W (or a --truth/--y with image dims)", 2);
    if (shape.size() != d) throw CliError("image shape " + shape.str() + " does not match the score's dimension " + std::to_string(d), 2);
    if (shape.H % spec.factor || shape.W % spec.factor)
      throw CliError("--operator downsample:" + std::to_string(spec.factor) + ": image " + shape.str() +
                         " is not divisible by the factor", 2);
    return shape.C * (shape.H / spec.factor) * (shape.W / spec.factor);
  }
  // matrix: [m, d] or [n_mats, m, d]; its columns checked here too, so that a matrix of the wrong
  // width is named as such rather than through the measurement its rows would need.
  const FloatArray a = load_numbers(spec.file, "--operator matrix", false);
  if (a.shape.size() != 2 && a.shape.size() != 3)
    throw CliError("--operator matrix:" + spec.file + " must have shape [m, d] or [n_meas, m, d], got " +
                   almc::io::shape_string(a.shape));
  if (a.shape.back() != d)
    throw CliError("--operator matrix:" + spec.file + " has " + std::to_string(a.shape.back()) + " columns " +
                   almc::io::shape_string(a.shape) + ", the score's dimension is " + std::to_string(d));
  return a.shape[a.shape.size() - 2];
}

Operator make_operator(almc_context_t ctx, const OperatorSpec& spec, int64_t d, const ImageShape& shape, int64_t n_meas,
                       std::string* description) {
  almc_operator_t op = nullptr;
  almc_status st = ALMC_OK;
  std::string what = "--operator " + spec.kind;
  if (spec.kind == "identity") {
    st = almc_operator_create_identity(ctx, d, &op);
    if (description) *description = "identity";
  } else if (spec.kind == "mask") {
    const FloatArray m = load_array(spec.file, "--operator mask", true, 0.f, 1.f);
    if (m.size() != d)
      throw CliError("--operator mask:" + spec.file + " has " + std::to_string(m.size()) + " values " +
                     almc::io::shape_string(m.shape) + ", the score's dimension is " + std::to_string(d));
    int64_t kept = 0;
    for (float v : m.data) kept += v != 0.f;
    st = almc_operator_create_mask(ctx, d, m.data.data(), &op);
    if (description) *description = "mask:" + spec.file + " (" + std::to_string(kept) + "/" + std::to_string(d) + " observed)";
  } else if (spec.kind == "downsample") {
    operator_rows(spec, d, shape);  // validates shape and divisibility
    st = almc_operator_create_downsample(ctx, shape.C, shape.H, shape.W, spec.factor, &op);
    if (description) *description = "downsample:" + std::to_string(spec.factor) + " of " + shape.str();
  } else if (spec.kind == "blur") {
    if (!shape.known())
      throw CliError("--operator blur needs the image shape: give --shape C,H,W (or a --truth/--y with image dims)", 2);
    if (shape.size() != d) throw CliError("image shape " + shape.str() + " does not match the score's dimension " + std::to_string(d), 2);
    const FloatArray k = load_numbers(spec.file, "--operator blur", true);
    if (k.shape.size() != 2 || k.shape[0] % 2 == 0 || k.shape[1] % 2 == 0)
      throw CliError("--operator blur:" + spec.file + " must be a 2-D kernel of odd sizes, got " + almc::io::shape_string(k.shape));
    st = almc_operator_create_blur(ctx, shape.C, shape.H, shape.W, k.shape[0], k.shape[1], k.data.data(), &op);
    if (description) *description = "blur:" + spec.file + " " + almc::io::shape_string(k.shape);
  } else if (spec.kind == "matrix") {
    const FloatArray a = load_numbers(spec.file, "--operator matrix", true);
    int64_t n_mats = 1, m = 0, dd = 0;
    if (a.shape.size() == 2) {
      m = a.shape[0];
      dd = a.shape[1];
    } else if (a.shape.size() == 3) {
      n_mats = a.shape[0];
      m = a.shape[1];
      dd = a.shape[2];
    } else {
      throw CliError("--operator matrix:" + spec.file + " must have shape [m, d] or [n_meas, m, d], got " +
                     almc::io::shape_string(a.shape));
    }
    if (dd != d)
      throw CliError("--operator matrix:" + spec.file + " has " + std::to_string(dd) + " columns " +
                     almc::io::shape_string(a.shape) + ", the score's dimension is " + std::to_string(d));
    if (m <= 0) throw CliError("--operator matrix:" + spec.file + " has no rows");
    if (n_mats != 1 && n_mats != n_meas)
      throw CliError("--operator matrix:" + spec.file + " holds " + std::to_string(n_mats) + " matrices, need 1 or n_meas = " +
                     std::to_string(n_meas));
    st = almc_operator_create_matrix(ctx, m, d, n_mats, a.data.data(), &op);
    if (description) *description = "matrix:" + spec.file + " " + almc::io::shape_string(a.shape);
  } else {
    throw CliError("unknown operator kind '" + spec.kind + "'", 2);
  }
  Operator owned(op);
  check(st, what, ctx);
  return owned;
}

// ------------------------------------------------------------------ arrays

FloatArray load_array(const std::string& path, const std::string& what, bool require_finite, float lo, float hi) {
  FloatArray out;
  bool f64 = false;
  try {
    if (ends_with(path, ".png")) {
      const auto im = almc::io::read_png(path);
      out.shape = {im.channels, im.height, im.width};
      out.data = almc::io::image_to_planar(im, lo, hi);
    } else {
      auto a = almc::io::read_npy_f32(path);
      f64 = a.stored == almc::io::DType::F64;
      out.shape = std::move(a.shape);
      out.data = std::move(a.data);
    }
  } catch (const almc::io::IoError& e) {
    throw CliError(what + " " + e.what());
  }
  int64_t bad = -1;
  if (require_finite && !almc::io::all_finite(out.data, &bad))
    throw CliError(what + " " + path + ": non-finite value (NaN or Inf" +
                   (f64 ? std::string(", or a float64 value beyond float32's range of 3.4e38") : std::string()) +
                   ") at flat index " + std::to_string(bad));
  return out;
}

FloatArray load_numbers(const std::string& path, const std::string& what, bool require_finite) {
  if (ends_with(path, ".png"))
    throw CliError(what + " " + path + ": a PNG holds an image, not this array's numbers: give a .npy file", 2);
  return load_array(path, what, require_finite);
}

void save_array(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  try {
    almc::io::write_npy(path, data, shape);
  } catch (const almc::io::IoError& e) {
    throw CliError(e.what());
  }
  output_written(path);
}

}  // namespace almc::cli
