// The almc command: subcommand registration and the helpers subcommands share.
//
// Every subcommand registers itself on the main CLI::App with a callback. A callback reports a
// failure by throwing CliError (one line, no trailing newline); main() prints it as
// "almc <command>: error: <message>" on stderr and exits with the error's code. Nothing here
// calls exit() or abort().
#pragma once

#include <almc/almc.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace almc::cli {

// ------------------------------------------------------------------ registration

void register_sample_command(CLI::App& app);
void register_eval_command(CLI::App& app);
void register_info_command(CLI::App& app);
void register_demo_command(CLI::App& app);
void register_inspect_command(CLI::App& app);
// Owned by the samplers work (validate.cpp) and the benchmarks work (bench.cpp).
void register_validate_command(CLI::App& app);
void register_bench_command(CLI::App& app);
// Slices of a run (slices.cpp).
void register_merge_command(CLI::App& app);

// ------------------------------------------------------------------ errors

// Exit codes: 1 a run-time failure (bad input file, engine error), 2 bad usage (an option value
// refused by the validators below too) or a command that is not built, 130 interrupted; CLI11's
// other parse errors keep CLI11's codes (non-zero).
class CliError : public std::runtime_error {
 public:
  explicit CliError(const std::string& message, int exit_code = 1) : std::runtime_error(message), code_(exit_code) {}
  int exit_code() const { return code_; }

 private:
  int code_;
};

// A number as a message shows it: the shortest of %g's forms ("0.01", "-1", "1e-300"), not
// std::to_string's fixed six decimals ("0.010000", "0.000000" for 1e-300).
std::string num(double v);

// Throw CliError("<what>: <engine message or status string>") when status != ALMC_OK. The handle
// (not its last_error text) is passed so the message is read after the call has failed: an
// argument like almc_context_last_error(ctx) may be evaluated before the call and then point to
// freed memory.
void check(almc_status status, const std::string& what, almc_context_t ctx);
void check(almc_status status, const std::string& what, almc_score_t score);
void check(almc_status status, const std::string& what, almc_operator_t op);
void check(almc_status status, const std::string& what, almc_sampler_t sampler);

// Option validators (option_checks.cpp): a seed is an integer in [0, 2^64 - 1] written in digits
// (no sign, no saturation; leading zeros dropped, so add it with ->transform); a positive finite
// number (no 0, NaN, Inf or negative values).
CLI::Validator seed_check();
CLI::Validator positive_finite_check();
// A finite number ("'nan' is not a finite number", "'abc' is not a number": a value given is never
// taken for one missing).
CLI::Validator finite_number_check();
// An integer in decimal digits with an optional sign ("'1e3' is not an integer") within [min, max]
// ("'99999999999' is too large (from 0 to 1024)"); leading zeros are dropped so that "010" is 10,
// not octal 8. Add it with ->transform. An option bound to an `int` needs one with a range within
// an int's (CLI11 would otherwise say only that it "could not convert" a larger value). A range
// with both ends inside an int's is shown in --help ("INT:[0, 1024]"); a lower end at or below
// INT32_MIN leaves the lower limit to the command's own check (which can say more).
CLI::Validator integer_check(int64_t min = INT64_MIN, int64_t max = INT64_MAX);
// almc_context_config.n_threads' limit (--threads).
constexpr int kMaxThreads = 1024;
// What every command's --threads accepts.
inline CLI::Validator threads_check() { return integer_check(0, kMaxThreads); }
// An option bound to an `int` (its lower limit left to the command's check).
inline CLI::Validator int_check() { return integer_check(INT32_MIN, INT32_MAX); }
// An option value that is not empty (an empty file name or choice is refused, never read as the
// option not given).
CLI::Validator non_empty_check();
// Puts finite_number_check on every floating-point option, integer_check (int64's range) on every
// integer option that has no integer_check of its own, and non_empty_check on every text option
// (TEXT, TEXT:DIR) of every subcommand of `app`.
void check_numbers(CLI::App& app);

// ------------------------------------------------------------------ ALMC variants (issue 15)

// The names `--variant` accepts, in order: paper, noised-lik, scaled-y, smc, geo-smc, best.
const std::vector<std::pair<std::string, almc_variant>>& variant_names();
// Throws CliError (exit code 2) listing the names when `name` is none of them.
almc_variant parse_variant(const std::string& name);

// The (C API phrase, command-line phrase) pairs cli_terms replaces, in order (tests check that
// every C phrase is still in the library's messages).
const std::vector<std::pair<std::string, std::string>>& cli_term_table();
// An engine message in the command line's words: "level = ALMC_LEVEL_NONE" -> "--level none", ...
std::string cli_terms(const char* engine_message);
// A sampler configuration message in the command line's words: "t_start = 50 is too large" ->
// "--t-start 50 is too large" (a field named with its value), the C API's own hint
// "(set force_unstable to run anyway)" left out (the command gives --force's).
std::string sampler_terms(const char* engine_message);
// (almc_sampler_config field, `almc sample` option) pairs, e.g. ("n_levels", "--levels").
std::vector<std::pair<std::string, std::string>> sampler_field_options();

// ------------------------------------------------------------------ RAII handles

struct ContextDeleter {
  void operator()(almc_context_s* p) const { almc_context_destroy(p); }
};
struct ScoreDeleter {
  void operator()(almc_score_s* p) const { almc_score_destroy(p); }
};
struct OperatorDeleter {
  void operator()(almc_operator_s* p) const { almc_operator_destroy(p); }
};
struct SamplerDeleter {
  void operator()(almc_sampler_s* p) const { almc_sampler_destroy(p); }
};
using Context = std::unique_ptr<almc_context_s, ContextDeleter>;
using Score = std::unique_ptr<almc_score_s, ScoreDeleter>;
using Operator = std::unique_ptr<almc_operator_s, OperatorDeleter>;
using Sampler = std::unique_ptr<almc_sampler_s, SamplerDeleter>;

// "auto" | "cpu" | "cuda"; threads 0 = OpenMP default. Engine warnings go to stderr unless quiet;
// info messages too when verbose.
// device: the CUDA device ordinal (an MPI rank's node-local device).
Context make_context(const std::string& backend, int threads, bool quiet, bool verbose = false, int device = 0);

// ------------------------------------------------------------------ score (network or prior)

// What an almc_onnx_config points to, kept alive beside it.
struct OnnxStorage {
  std::vector<float> alpha_bar;
  std::vector<std::string> names;
  std::vector<std::vector<float>> values;
  std::vector<std::vector<int64_t>> shapes;
  std::vector<almc_onnx_input> inputs;
};

struct ScoreOptions {
  std::string model;        // ONNX file
  std::string prior;        // GMM JSON file
  std::string x_input, level_input;
  std::string output = "eps";      // score | eps | denoiser | x0
  std::string convention = "vp";   // ou | vp | ve
  std::string level = "t";         // t | sigma | log-sigma | index | none
  std::string alpha_bar;    // .npy table for --level index
  double beta_min = NAN, beta_max = NAN, level_scale = NAN;  // NaN: not given
  std::string output_slice;         // "B:E": keep output channels [B, E)
  std::vector<std::string> inputs;  // "NAME=VALUE" or "NAME=FILE.npy"
  bool tf32 = false;
  std::string precision;  // fp32 | tf32 | bf16; empty: not given (fp32, or tf32 with --tf32)
  std::vector<int64_t> x_shape;  // one sample's shape, when known (almc_onnx_config.x_shape)
  // The options whose values have defaults, to tell "given" from "left at the default".
  const CLI::Option *output_opt = nullptr, *convention_opt = nullptr, *level_opt = nullptr;

  // Adds --model, --prior (when with_prior), the input names, --input, --output-slice,
  // --precision, --tf32 and (when with_adapter) the adapter options --output, --convention,
  // --level, --alpha-bar.
  void add_options(CLI::App* app, bool with_prior, bool with_adapter = true);
  // The network precision asked for: "fp32", "tf32" or "bf16" (throws CliError on an unknown name
  // or on --tf32 with --precision fp32/bf16).
  std::string precision_name() const;
  // The adapter configuration (checks the option values); storage keeps what it points to alive.
  almc_onnx_config onnx_config(OnnxStorage& storage) const;
};

// Load the score from --model or --prior (exactly one must be given). max_batch: chains per call.
Score load_score(almc_context_t ctx, const ScoreOptions& opt, int64_t max_batch, std::string* description);

// ------------------------------------------------------------------ images and operators

struct ImageShape {
  int64_t C = 0, H = 0, W = 0;
  bool known() const { return C > 0 && H > 0 && W > 0; }
  int64_t size() const { return C * H * W; }
  std::string str() const;
};

// "C,H,W" or "H,W" (C = 1). Throws CliError.
ImageShape parse_shape(const std::string& text);

// Parsed --operator spec.
struct OperatorSpec {
  std::string kind;  // identity | mask | downsample | blur | matrix
  std::string file;  // mask, blur, matrix
  int64_t factor = 0;
};
OperatorSpec parse_operator_spec(const std::string& text);
// The measurement's image shape for a given image shape (empty when not an image, e.g. matrix).
ImageShape measurement_shape(const OperatorSpec& spec, const ImageShape& x_shape);

// Build the operator on x of dimension d. Needs shape for downsample and blur. For matrix,
// n_meas is the number of measurements (the file may hold 1 or n_meas matrices).
Operator make_operator(almc_context_t ctx, const OperatorSpec& spec, int64_t d, const ImageShape& shape,
                       int64_t n_meas, std::string* description);
// m (values per measurement) of the operator the spec builds, without building it (reads the
// matrix file's header for matrix).
int64_t operator_rows(const OperatorSpec& spec, int64_t d, const ImageShape& shape);

// ------------------------------------------------------------------ arrays

struct FloatArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
  int64_t size() const { return static_cast<int64_t>(data.size()); }
};
// A .npy file (float32/float64) or, for *.png, the image as planar [C, H, W] mapped to [lo, hi].
// require_finite: reject NaN/Inf naming the first bad index.
FloatArray load_array(const std::string& path, const std::string& what, bool require_finite, float lo = -1.f,
                      float hi = 1.f);
// The same for an array that is not an image (an operator's matrix or kernel, a table, a list): a
// .png is refused by name rather than read as pixels mapped onto [lo, hi].
FloatArray load_numbers(const std::string& path, const std::string& what, bool require_finite);
// Written atomically: a failure leaves the previous file unchanged.
void save_array(const std::string& path, const float* data, const std::vector<int64_t>& shape);

// ------------------------------------------------------------------ output safety (outputs.cpp)

// Before a run: every non-empty output path must be writable (parents are created; an existing
// path must be a regular file; nothing is truncated). Throws CliError "<option> <path>: <why>".
void prepare_outputs(std::initializer_list<std::pair<const char*, const std::string*>> outputs);
// Before a run: refuses (CliError, exit 2) two outputs that name one file (the second write would
// replace the first) and an output that names an input (the run would replace its own input).
// Existing files are compared by device and inode (links and other spellings included), paths
// that do not exist yet by their absolute, normalised form. Empty paths are skipped. Each entry is
// (option, path), e.g. {"--out", "s.npy"}.
using NamedPaths = std::vector<std::pair<std::string, std::string>>;
void check_distinct_files(const NamedPaths& outputs, const NamedPaths& inputs);
// The .npy files among `--input NAME=FILE.npy` values, as (option, path) pairs.
NamedPaths input_files(const std::vector<std::string>& input_specs);
// Replace the file atomically with text. Throws CliError "<option> <path>: <why>".
void write_text_file(const std::string& option, const std::string& path, const std::string& text);

// ------------------------------------------------------------------ JSON reports (outputs.cpp)

// `--json[=FILE]`, one option with one meaning in every subcommand: given alone (or as `--json=-`)
// the command prints its JSON report on stdout, as one line, instead of its human-readable text
// (which, where a command always prints some, goes to stderr); given a file, it writes the report
// there (indented, atomically, the path checked before any work) and prints its usual text.
// `--json FILE` works too in commands without positional arguments; where a word after --json
// could be the command's own argument (inspect's model), only `--json=FILE` names a file.
class JsonReport {
 public:
  // what: the report's description in --help.
  void add_option(CLI::App* app, const std::string& what, bool has_positionals = false);
  bool wanted() const { return opt_ && opt_->count() > 0; }
  bool on_stdout() const { return wanted() && target_ == "-"; }
  const std::string& file() const { return on_stdout() ? none_ : target_; }
  // Before any work: checks that the file can be written.
  void prepare() const;
  // Writes the report where it was asked for (nothing when --json was not given).
  void emit(const nlohmann::json& report) const;

 private:
  CLI::Option* opt_ = nullptr;
  std::string target_, none_;
};

// ------------------------------------------------------------------ running a sampler

struct RunRequest {
  almc_context_t ctx = nullptr;
  almc_score_t score = nullptr;
  almc_operator_t op = nullptr;  // null: the prior
  almc_sampler_config cfg{};     // n_meas, chains_per_meas and the method set by the caller
  const float* y = nullptr;      // host [n_meas, m] when op is set
  int64_t d = 0;
  bool quiet = false;            // no progress line
  std::string label = "sample";  // progress line prefix
  // Polled with the progress: non-zero stops the run (a failed MPI peer, team.cpp) as Ctrl-C does.
  int (*stop)(void*) = nullptr;
  void* stop_data = nullptr;
  // Snapshots (host/cli/snapshot.hpp): the state is written to `snapshot` every snapshot_every
  // steps (0: never) and when Ctrl-C stops the run; resume_state (when set) is continued.
  std::string snapshot;
  int64_t snapshot_every = 0;
  nlohmann::json run_identity;   // recorded in each snapshot
  const std::vector<unsigned char>* resume_state = nullptr;
};
struct RunResult {
  std::vector<float> samples;    // [n_meas * chains, d]
  std::vector<float> mean, std;  // [n_meas, d]; empty for a slice (cfg.chain_count > 0)
  std::vector<float> residuals;  // [n_meas * chains] (the slice's chains for a slice)
  almc_run_info info{};
  std::string backend, device;
  double wall_seconds = 0;
  size_t workspace_bytes = 0;
};
// Steps per second over the recent past of the current phase (the warm start's steps are far
// cheaper than the annealing's: a run-long average would promise an ETA of 0 s halfway through).
class RateMeter {
 public:
  // Steps before phase_step belong to the first phase, the rest to the second.
  explicit RateMeter(int64_t phase_step = 0, double window_seconds = 3.0)
      : phase_step_(phase_step), window_(window_seconds) {}
  void add(double seconds, int64_t step);
  double rate() const;  // NaN until two samples of the current phase exist
  double eta(int64_t total) const;  // seconds left at the recent rate (NaN if unknown)

 private:
  int64_t phase_step_;
  double window_;
  std::vector<std::pair<double, int64_t>> samples_;  // (seconds, step), oldest first
};

// The run's plan before it starts: total steps, warm-start steps and score evaluations, from the
// engine's own schedule (false when it cannot be computed, e.g. an invalid configuration).
struct RunPlan {
  int64_t steps = 0, warm_steps = 0, score_evals = 0;
};
bool plan_run(const almc_sampler_config& cfg, almc_operator_t op, RunPlan* plan);

// Create the sampler, set y, run with a progress line on stderr (when a terminal and not quiet)
// and Ctrl-C cancelling cleanly, and fetch the results. Throws CliError with the engine's message.
RunResult run_sampler(const RunRequest& request);

// ------------------------------------------------------------------ figures

// The posterior figure: one row per measurement, columns measurement | n_show samples | mean |
// std | truth. Images are [C, H, W] = x; y_shape is the measurement's image shape (unknown: the
// column stays blank). Values map [lo, hi] -> [0, 255]; std maps [0, std_max] (std_max <= 0: its
// maximum). truth may be null. Pixels are upscaled by `scale` (nearest).
struct PosteriorFigure {
  ImageShape x, y_shape;
  int64_t n_meas = 1, chains = 1;
  const float* y = nullptr;        // [n_meas, m]
  const float* samples = nullptr;  // [n_meas * chains, d]
  const float* mean = nullptr;     // [n_meas, d]
  const float* std = nullptr;      // [n_meas, d]
  const float* truth = nullptr;    // [n_meas, d] or null
  int n_show = 4;
  float lo = -1.f, hi = 1.f, std_max = 0.f;
  int scale = 8;
  // Text drawn in the figure: a title (say which output the samples are), column titles (always),
  // and a note right of each row (e.g. its PSNR).
  std::string title;
  std::vector<std::string> row_notes;
};
void write_posterior_png(const std::string& path, const PosteriorFigure& fig);
// Which output a run's samples are (the figures' legend): last iterate, averaged, Tweedie.
std::string sample_kind(const almc_sampler_config& cfg);
// One planar image [C, H, W] (C = 1 or 3) as a PNG at its own size, [lo, hi] -> [0, 255].
void write_image_png(const std::string& path, const float* planar, const ImageShape& shape, float lo, float hi);
// "LO,HI" with LO < HI (what names the option in messages). Throws CliError.
std::pair<float, float> parse_range(const std::string& text, const std::string& what);

// A benchmark stage as the difference of two timings a - b (medians, with their min and max):
// never negative (a difference below 0 is noise and is reported as 0); spread is half the sum of
// both min-max ranges; raw keeps the signed difference.
struct StageTime {
  double seconds = 0, spread = 0, raw = 0;
};
StageTime stage_difference(double a, double a_lo, double a_hi, double b, double b_lo, double b_hi);

// A JSON number that stays valid JSON for NaN/Inf (null).
double finite_or_nan(double v);

// stderr is a terminal and not silenced.
bool progress_enabled(bool quiet);

// Ctrl-C while a command writes its outputs (run.cpp). While an OutputPhase lives, SIGINT no longer
// kills the process in the middle of a file (which would leave the file's temporary copy behind):
// the file being written is finished, atomically, and the next write's end (or finish(), called
// after the last one) stops the command with exit 130 and a message naming the files written.
class OutputPhase {
 public:
  OutputPhase();
  ~OutputPhase();
  OutputPhase(const OutputPhase&) = delete;
  OutputPhase& operator=(const OutputPhase&) = delete;
  // Throws CliError(130) when Ctrl-C came during the phase (the outputs are then all written).
  void finish() const;
};
// Called by every CLI write (save_array, write_text_file, the PNG writers) once its file is in
// place: remembers it and, inside an OutputPhase, stops the command when Ctrl-C came.
void output_written(const std::string& path);

}  // namespace almc::cli
