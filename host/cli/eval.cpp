// `almc eval`: the raw network output on given inputs (to compare an export with its framework).
#include <cmath>
#include <cstdio>

#include "host/cli/commands.hpp"
#include "host/io/npy.hpp"

namespace almc::cli {
namespace {

struct EvalOptions {
  ScoreOptions score;
  std::string x, out, backend = "cpu";
  double level = std::nan("");
  int threads = 0;
  bool quiet = false;
};

void run_eval(const EvalOptions& o) {
  if (o.score.model.empty()) throw CliError("--model FILE.onnx is required", 2);
  if (std::isnan(o.level) || !std::isfinite(o.level)) throw CliError("--level L (a finite number) is required", 2);
  prepare_outputs({{"--out", &o.out}});
  const FloatArray x = load_array(o.x, "--x", true);
  if (x.size() == 0) throw CliError("--x " + o.x + " is empty");
  // x is [n, ...]: one input per leading index; a 1-D x is a single input.
  const int64_t n = x.shape.size() >= 2 ? x.shape[0] : 1;
  const int64_t d = x.size() / n;
  OnnxStorage storage;
  const almc_onnx_config cfg = o.score.onnx_config(storage);
  Context ctx = make_context(o.backend, o.threads, o.quiet);
  std::vector<float> out(x.data.size());
  check(almc_onnx_eval_raw(ctx.get(), o.score.model.c_str(), &cfg, x.data.data(), n, d, static_cast<float>(o.level), out.data()),
        "--model " + o.score.model, ctx.get());
  save_array(o.out, out.data(), x.shape);
  if (!o.quiet) std::printf("almc eval: %lld input(s) of %lld values at level %g -> %s\n", static_cast<long long>(n),
                            static_cast<long long>(d), o.level, o.out.c_str());
}

}  // namespace

void register_eval_command(CLI::App& app) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand("eval", "Run the raw network (no adapter) on x at one level value");
  o->score.add_options(sub, false, false);  // raw network: no adapter; --level is the value
  sub->add_option("--x", o->x, "inputs (.npy [n, ...])")->required();
  sub->add_option("--level", o->level, "raw level value fed to the network's level input")->required();
  sub->add_option("--out", o->out, "raw outputs (.npy, same shape as --x)")->required();
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (0: OpenMP default)");
  sub->add_flag("--quiet,-q", o->quiet, "no summary");
  sub->callback([o]() { run_eval(*o); });
}

}  // namespace almc::cli
