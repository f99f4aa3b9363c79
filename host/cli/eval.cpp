// `almc eval`: the raw network output on given inputs (to compare an export with its framework),
// and with --compare-fp32 the error of the chosen --precision against fp32 on the same inputs.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "host/cli/commands.hpp"
#include "host/io/npy.hpp"

namespace almc::cli {
namespace {

struct EvalOptions {
  ScoreOptions score;
  std::string x, out, backend = "cpu";
  double level = std::nan("");
  int threads = 0;
  bool quiet = false, compare_fp32 = false;
  JsonReport json;
};

// Largest |a - b| and ||a - b||_2 / ||b||_2 (b the reference), in double.
struct Diff {
  double max_abs = 0, rel_l2 = 0, ref_l2 = 0;
};
Diff diff(const std::vector<float>& a, const std::vector<float>& b) {
  Diff r;
  double num = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = double(a[i]) - double(b[i]);
    r.max_abs = std::fmax(r.max_abs, std::fabs(e));
    if (std::isnan(e)) r.max_abs = e;
    num += e * e;
    r.ref_l2 += double(b[i]) * double(b[i]);
  }
  r.ref_l2 = std::sqrt(r.ref_l2);
  r.rel_l2 = std::sqrt(num) / r.ref_l2;
  return r;
}

void run_eval(const EvalOptions& o) {
  if (o.score.model.empty()) throw CliError("--model FILE.onnx is required", 2);
  if (std::isnan(o.level) || !std::isfinite(o.level)) throw CliError("--level must be a finite number", 2);
  // The level is fed as float32: a finite double beyond its range would become inf.
  if (std::fabs(o.level) > std::numeric_limits<float>::max())
    throw CliError("--level " + nlohmann::json(o.level).dump() + " is beyond float32's range (|L| <= 3.4e38)", 2);
  if (o.out.empty() && !o.compare_fp32) throw CliError("--out FILE.npy is required (unless --compare-fp32 is given)", 2);
  const std::string precision = o.score.precision_name();
  NamedPaths inputs = {{"--x", o.x}, {"--model", o.score.model}};
  for (auto& f : input_files(o.score.inputs)) inputs.push_back(std::move(f));
  check_distinct_files({{"--out", o.out}, {"--json", o.json.file()}}, inputs);
  if (!o.out.empty()) prepare_outputs({{"--out", &o.out}});
  o.json.prepare();
  const FloatArray x = load_array(o.x, "--x", true);
  if (x.size() == 0) throw CliError("--x " + o.x + " is empty");
  // x is [n, ...]: one input per leading index; a 1-D x is a single input.
  const int64_t n = x.shape.size() >= 2 ? x.shape[0] : 1;
  const int64_t d = x.size() / n;
  // x's dimensions after n are one sample's shape (a model with dynamic height and width needs it).
  ScoreOptions score = o.score;
  if (x.shape.size() >= 2) score.x_shape.assign(x.shape.begin() + 1, x.shape.end());
  OnnxStorage storage;
  const almc_onnx_config cfg = score.onnx_config(storage);
  Context ctx = make_context(o.backend, o.threads, o.quiet);
  auto eval = [&](const almc_onnx_config& c) {
    std::vector<float> out(x.data.size());
    check(almc_onnx_eval_raw(ctx.get(), o.score.model.c_str(), &c, x.data.data(), n, d, static_cast<float>(o.level), out.data()),
          "--model " + o.score.model, ctx.get());
    return out;
  };
  const std::vector<float> out = eval(cfg);
  if (!o.out.empty()) save_array(o.out, out.data(), x.shape);
  const int64_t non_finite = std::count_if(out.begin(), out.end(), [](float v) { return !std::isfinite(v); });
  almc_backend backend = ALMC_BACKEND_CPU;
  almc_context_backend(ctx.get(), &backend);
  const bool tf32_on_cpu = precision == "tf32" && backend == ALMC_BACKEND_CPU;
  nlohmann::json j;
  j["model"] = o.score.model;
  j["n"] = n;
  j["d"] = d;
  j["level"] = o.level;
  j["precision"] = precision;
  j["out"] = o.out.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.out);
  j["non_finite"] = non_finite;
  std::string text = "almc eval: " + std::to_string(n) + " input(s) of " + std::to_string(d) + " values at level " +
                     nlohmann::json(o.level).dump() + ", precision " + precision +
                     (tf32_on_cpu ? " (CUDA only: the CPU ran fp32)" : "") + (o.out.empty() ? "" : " -> " + o.out);
  if (o.compare_fp32) {
    almc_onnx_config ref_cfg = cfg;
    ref_cfg.precision = ALMC_PRECISION_FP32;
    ref_cfg.allow_tf32 = 0;
    const Diff e = diff(out, eval(ref_cfg));
    auto num = [](double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr); };
    j["compare_fp32"] = {{"max_abs_error", num(e.max_abs)}, {"rel_l2_error", num(e.rel_l2)}, {"fp32_l2_norm", num(e.ref_l2)}};
    char buf[160];
    std::snprintf(buf, sizeof buf, "\n  against fp32: max |error| %.3e, relative L2 error %.3e", e.max_abs, e.rel_l2);
    text += buf;
  }
  o.json.emit(j);
  if (!o.quiet) std::fprintf(o.json.on_stdout() ? stderr : stdout, "%s\n", text.c_str());
  // The outputs are written as computed (they are what the network gives), but a NaN or an
  // infinity there is never what a score network should give: said even with --quiet.
  if (non_finite > 0)
    std::fprintf(stderr, "almc eval: warning: %lld of the %lld outputs are not finite (NaN or infinite) at level %s\n",
                 static_cast<long long>(non_finite), static_cast<long long>(out.size()), nlohmann::json(o.level).dump().c_str());
}

}  // namespace

void register_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand("eval", "Run the raw network (no adapter) on x at one level value");
  o->score.add_options(sub, false, false);  // raw network: no adapter; --level is the value
  sub->add_option("--x", o->x, "inputs (.npy [n, ...])")->required();
  sub->add_option("--level", o->level, "raw level value fed to the network's level input")->required();
  sub->add_option("--out", o->out, "raw outputs (.npy, same shape as --x); optional with --compare-fp32");
  sub->add_flag("--compare-fp32", o->compare_fp32,
                "also evaluate at fp32 on the same inputs and report the --precision result's error against it "
                "(max |error|, relative L2 error)");
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (0: OpenMP default)")->capture_default_str()->transform(threads_check());
  sub->add_flag("--quiet,-q", o->quiet, "no summary");
  o->json.add_option(sub, "the summary (and the comparison) as JSON");
  sub->callback([o]() { run_eval(*o); });
}

}  // namespace almc::cli
