// `almc demo`: ALMC inpainting and 2x super-resolution with the bundled digits network.
//
// Data: demo/test_images.npy (held-out 16x16 digits in [-1, 1]) and demo/digits_score.onnx (an
// eps-prediction network in VP convention fed with OU time t), described by demo/model.json.
// Defaults were chosen to finish in a few minutes on a 2-core CPU: 4 images x 8 chains, kappa 2,
// delta 2e-3, T_ws 5, tau 0.01, i.e. about 5000 score evaluations per task on all 32 chains at once
// (--quick: 2 x 4 at kappa 1, 2500 evaluations).
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <tuple>
#include <utility>
#include <nlohmann/json.hpp>

#include "host/cli/commands.hpp"
#include "host/io/file.hpp"
#include "host/io/image.hpp"
#include "host/io/json.hpp"
#include "host/io/npy.hpp"

namespace almc::cli {
namespace {

using json = nlohmann::json;

struct DemoOptions {
  std::string out_dir = "almc_demo_out", demo_dir, backend = "auto", mask = "box";
  bool quick = false, quiet = false, tweedie = true, force = false;
  JsonReport json;
  int images = 0, chains = 0, threads = 0, show = 6;
  double kappa = 0, delta = 2e-3, noise_std = 0.05, t_start = 5.0, t_stop = 0.01;
  uint64_t seed = 0;
  CLI::App* app = nullptr;  // to tell an option given on the command line from its default
  bool given(const char* name) const { return app && app->count(name) > 0; }
};

bool is_dir(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}
bool is_file(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The adapter settings and image shape in the demo's model.json (a missing file: the defaults, eps,
// VP, level = OU t, [1, 16, 16]). A field of the wrong kind is refused, naming it.
ImageShape read_model_json(const std::string& path, ScoreOptions* so) {
  ImageShape shape{1, 16, 16};
  if (::access(path.c_str(), F_OK) != 0) return shape;
  json j;
  try {
    const std::vector<unsigned char> text = almc::io::read_regular_file(path, almc::io::kMaxJsonFileBytes);
    j = almc::io::parse_json_limited(text.begin(), text.end());
  } catch (const almc::io::IoError& e) {
    throw CliError(e.what());
  } catch (const almc::io::JsonTooDeep& e) {
    throw CliError(path + ": " + e.what());
  } catch (const std::exception&) {
    throw CliError(path + ": not valid JSON");
  }
  if (!j.is_object()) throw CliError(path + ": not a JSON object");
  const auto shown = [](const json& v) {
    const std::string t = v.dump(-1, ' ', false, json::error_handler_t::replace);
    return t.size() > 60 ? t.substr(0, 57) + "..." : t;
  };
  const auto text = [&](const char* key) -> std::string {
    if (!j[key].is_string()) throw CliError(path + ": \"" + key + "\" must be a string, got " + shown(j[key]));
    return j[key].get<std::string>();
  };
  if (j.contains("output_kind")) so->output = text("output_kind");
  if (j.contains("level")) so->level = text("level");
  if (j.contains("convention")) {
    const std::string c = text("convention");
    so->convention = c.rfind("VE", 0) == 0 ? "ve" : c.rfind("OU", 0) == 0 ? "ou" : "vp";
  }
  if (j.contains("image_shape")) {
    const json& s = j["image_shape"];
    constexpr int64_t kMaxSide = int64_t(1) << 20;
    const auto side = [&](size_t i) {
      return s[i].is_number_integer() && s[i].get<int64_t>() >= 1 && s[i].get<int64_t>() <= kMaxSide;
    };
    if (!s.is_array() || s.size() != 3 || !side(0) || !side(1) || !side(2))
      throw CliError(path + ": \"image_shape\" must be [C, H, W], three positive integers, got " + shown(s));
    shape = {s[0].get<int64_t>(), s[1].get<int64_t>(), s[2].get<int64_t>()};
  }
  return shape;
}

std::string exe_dir() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  buf[n] = 0;
  std::string p(buf);
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "" : p.substr(0, slash);
}

// --demo-dir, $ALMC_DEMO_DIR, next to the executable (build trees and installs), ./demo.
std::string find_demo_dir(const std::string& given) {
  auto ok = [](const std::string& d) { return is_file(d + "/digits_score.onnx") && is_file(d + "/test_images.npy"); };
  if (!given.empty()) {
    if (!ok(given)) throw CliError("--demo-dir " + given + " lacks digits_score.onnx or test_images.npy");
    return given;
  }
  if (const char* env = std::getenv("ALMC_DEMO_DIR"); env && *env) {
    if (!ok(env)) throw CliError(std::string("ALMC_DEMO_DIR=") + env + " lacks digits_score.onnx or test_images.npy");
    return env;
  }
  std::vector<std::string> tried;
  const std::string e = exe_dir();
  if (!e.empty())
    for (const char* rel : {"/../demo", "/../../demo", "/../../../demo", "/../share/almc/demo", "/demo"}) tried.push_back(e + rel);
  tried.push_back("demo");
  for (const auto& d : tried)
    if (ok(d)) return d;
  throw CliError("demo files not found (looked next to the executable and in ./demo); give --demo-dir or set ALMC_DEMO_DIR");
}

// A small deterministic generator (splitmix64) so the demo's measurements are the same everywhere.
struct Rng {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform() { return (double(next() >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
  double normal() { return std::sqrt(-2.0 * std::log(uniform())) * std::cos(6.283185307179586 * uniform()); }
};

struct Task {
  std::string name, title, op_desc;
  Operator op;
  ImageShape y_shape;
  std::vector<float> y;        // [n, m]
  std::vector<float> display;  // [n, d] the measurement shown at full size (baseline PSNR)
};

void run_demo(const DemoOptions& o) {
  // As in `almc sample`: a value given must be valid; zero or a negative value never means "the
  // default" (an omitted option gets that).
  if (o.given("--kappa") && !(o.kappa > 0 && std::isfinite(o.kappa)))
    throw CliError("--kappa must be a positive finite number, got " + num(o.kappa) + " (omit it for the default)", 2);
  for (auto [v, name] : {std::pair{o.delta, "--delta"}, {o.t_start, "--t-start"}, {o.t_stop, "--t-stop"},
                         {o.noise_std, "--noise-std"}})
    if (!(v > 0 && std::isfinite(v)))
      throw CliError(std::string(name) + " must be a positive finite number, got " + num(v), 2);
  if (!(o.t_stop < o.t_start))
    throw CliError("--t-stop " + num(o.t_stop) + " must be below --t-start " + num(o.t_start), 2);
  for (auto [v, name, lo] : {std::tuple{o.images, "--images", 1}, {o.chains, "--chains", 1}, {o.show, "--show", 0}})
    if (o.given(name) && v < lo)
      throw CliError(std::string(name) + " must be at least " + std::to_string(lo) + ", got " + std::to_string(v) +
                         (lo > 0 ? " (omit it for the default)" : ""),
                     2);
  if (o.chains > (1 << 24)) throw CliError("--chains " + std::to_string(o.chains) + " is too large (at most 2^24 = 16777216)", 2);
  if (o.mask != "box" && o.mask != "random") throw CliError("--mask must be box or random", 2);
  o.json.prepare();
  const std::string dir = find_demo_dir(o.demo_dir);
  // The report must not replace the demo's own files.
  check_distinct_files({{"--json", o.json.file()}}, {{"--demo-dir", dir + "/digits_score.onnx"},
                                                     {"--demo-dir", dir + "/test_images.npy"},
                                                     {"--demo-dir", dir + "/model.json"}});
  const std::string model = dir + "/digits_score.onnx";

  // Adapter settings from model.json when present (defaults: eps, VP, level = OU t).
  ScoreOptions so;
  so.model = model;
  const ImageShape shape = read_model_json(dir + "/model.json", &so);
  const FloatArray all = load_array(dir + "/test_images.npy", "demo images", true);
  const int64_t d = shape.size();
  if (all.size() == 0 || all.size() % d) throw CliError(dir + "/test_images.npy does not hold images of shape " + shape.str());
  const int64_t n_avail = all.size() / d;
  const int64_t n_img = std::min<int64_t>(n_avail, o.images > 0 ? o.images : (o.quick ? 2 : 4));
  if (o.images > n_avail && !o.quiet)
    std::fprintf(stderr, "almc demo: note: --images %d: the demo holds %lld held-out images; using them all\n", o.images,
                 static_cast<long long>(n_avail));
  const int64_t chains = o.chains > 0 ? o.chains : (o.quick ? 4 : 8);
  const double kappa = o.kappa > 0 ? o.kappa : (o.quick ? 1.0 : 2.0);
  const std::vector<float> truth(all.data.begin(), all.data.begin() + n_img * d);

  std::error_code ec;
  std::filesystem::create_directories(o.out_dir, ec);  // like mkdir -p
  if (!is_dir(o.out_dir))
    throw CliError("--out-dir " + o.out_dir + ": cannot create the directory" + (ec ? " (" + ec.message() + ")" : ""));
  // Every file is checked before the runs and written after both (a failure or Ctrl-C in the
  // second task leaves no output of the first behind).
  const std::string jpath = o.out_dir + "/demo_psnr.json";
  std::vector<std::string> out_files = {jpath};
  for (const char* t : {"inpaint", "superres"}) {
    out_files.push_back(o.out_dir + "/demo_" + t + ".png");
    out_files.push_back(o.out_dir + "/demo_" + t + "_samples.npy");
  }
  for (const std::string& f : out_files) prepare_outputs({{"--out-dir", &f}});

  Context ctx = make_context(o.backend, o.threads, o.quiet);
  std::string score_desc;
  Score score = load_score(ctx.get(), so, n_img * chains, &score_desc);
  int64_t sd = 0;
  check(almc_score_dim(score.get(), &sd), "score", score.get());
  if (sd != d) throw CliError("the demo network's dimension " + std::to_string(sd) + " is not " + shape.str());

  Rng rng{0x5eed0000ULL + o.seed};
  std::vector<Task> tasks;
  {  // inpainting: a fixed mask hiding ~50% of the pixels
    Task t;
    t.name = "inpaint";
    std::vector<float> mask(d, 1.f);
    if (o.mask == "box") {
      for (int64_t c = 0; c < shape.C; ++c)
        for (int64_t h = shape.H / 2; h < shape.H; ++h)
          for (int64_t w = 0; w < shape.W; ++w) mask[(c * shape.H + h) * shape.W + w] = 0.f;
      t.title = "inpainting (lower half hidden)";
    } else {
      Rng mr{12345};
      for (auto& v : mask) v = mr.uniform() < 0.5 ? 0.f : 1.f;
      t.title = "inpainting (random 50% of pixels hidden)";
    }
    almc_operator_t op = nullptr;
    const almc_status st = almc_operator_create_mask(ctx.get(), d, mask.data(), &op);
    t.op.reset(op);
    check(st, "mask operator", ctx.get());
    t.op_desc = "mask:" + o.mask;
    t.y_shape = shape;
    t.y.resize(n_img * d);
    t.display.resize(n_img * d);
    for (int64_t i = 0; i < n_img * d; ++i) {
      const float m = mask[i % d];
      t.y[i] = m * (truth[i] + float(o.noise_std * rng.normal()));
      t.display[i] = t.y[i];  // hidden pixels at 0 (mid-gray)
    }
    tasks.push_back(std::move(t));
  }
  {  // 2x super-resolution: 2x2 average pooling plus noise
    Task t;
    t.name = "superres";
    t.title = "2x super-resolution (2x2 average pooling)";
    const int64_t k = 2;
    almc_operator_t op = nullptr;
    const almc_status st = almc_operator_create_downsample(ctx.get(), shape.C, shape.H, shape.W, k, &op);
    t.op.reset(op);
    check(st, "downsample operator", ctx.get());
    t.op_desc = "downsample:2";
    t.y_shape = {shape.C, shape.H / k, shape.W / k};
    const int64_t m = t.y_shape.size();
    t.y.resize(n_img * m);
    for (int64_t i = 0; i < n_img; ++i)
      check(almc_operator_forward(t.op.get(), truth.data() + i * d, t.y.data() + i * m, 1, i), "downsample",
            t.op.get());
    for (auto& v : t.y) v += float(o.noise_std * rng.normal());
    t.display.resize(n_img * d);  // nearest upsampling of y
    for (int64_t i = 0; i < n_img; ++i)
      for (int64_t c = 0; c < shape.C; ++c)
        for (int64_t h = 0; h < shape.H; ++h)
          for (int64_t w = 0; w < shape.W; ++w)
            t.display[i * d + (c * shape.H + h) * shape.W + w] =
                t.y[i * m + (c * t.y_shape.H + h / k) * t.y_shape.W + w / k];
    tasks.push_back(std::move(t));
  }

  json report;
  report["model"] = model;
  report["images"] = n_img;
  report["chains_per_image"] = chains;
  report["noise_std"] = o.noise_std;
  report["method"] = "almc";
  report["kappa"] = kappa;
  report["tweedie"] = o.tweedie;
  report["delta"] = o.delta;
  report["t_start"] = o.t_start;
  report["t_stop"] = o.t_stop;
  report["seed"] = o.seed;
  report["psnr_convention"] = "10 log10(2^2 / MSE) on the [-1, 1] range";
  report["tasks"] = json::object();
  if (!o.quiet && !o.json.on_stdout())
    std::printf("almc demo: %lld images x %lld chains, ALMC kappa %g, delta %g, T_ws %g, tau %g, noise std %g\n",
                static_cast<long long>(n_img), static_cast<long long>(chains), kappa, o.delta, o.t_start, o.t_stop,
                o.noise_std);

  double total_seconds = 0;
  // Each task's results and figure, written once every task has run.
  std::vector<RunResult> results;
  std::vector<PosteriorFigure> figures;
  results.reserve(tasks.size());  // the figures point into the results
  for (auto& t : tasks) {
    almc_sampler_config cfg = almc_sampler_config_default();
    cfg.method = ALMC_METHOD_ALMC;
    cfg.n_meas = n_img;
    cfg.chains_per_meas = chains;
    cfg.seed = o.seed;
    cfg.noise_std = o.noise_std;
    cfg.kappa = kappa;
    cfg.tweedie = o.tweedie ? 1 : 0;
    cfg.force_unstable = o.force ? 1 : 0;
    cfg.delta = o.delta;
    cfg.t_start = o.t_start;
    cfg.t_stop = o.t_stop;
    RunRequest rq;
    rq.ctx = ctx.get();
    rq.score = score.get();
    rq.op = t.op.get();
    rq.cfg = cfg;
    rq.y = t.y.data();
    rq.d = d;
    rq.quiet = o.quiet;
    rq.label = "almc demo " + t.name;
    results.push_back(run_sampler(rq));
    const RunResult& r = results.back();
    total_seconds += r.wall_seconds;

    json tj;
    tj["title"] = t.title;
    tj["operator"] = t.op_desc;
    tj["steps"] = r.info.steps;
    tj["seconds"] = r.wall_seconds;
    tj["backend"] = r.backend;
    tj["device"] = r.device;
    json pm = json::array(), ps = json::array(), pb = json::array();
    double sum_mean = 0, sum_samp = 0, sum_base = 0;
    for (int64_t i = 0; i < n_img; ++i) {
      const float* x0 = truth.data() + i * d;
      const double m = almc::io::psnr(r.mean.data() + i * d, x0, d, 2.0);
      json per = json::array();
      double acc = 0;
      for (int64_t c = 0; c < chains; ++c) {
        const double p = almc::io::psnr(r.samples.data() + (i * chains + c) * d, x0, d, 2.0);
        per.push_back(std::round(finite_or_nan(p) * 100) / 100);
        acc += p;
      }
      const double b = almc::io::psnr(t.display.data() + i * d, x0, d, 2.0);
      pm.push_back(std::round(finite_or_nan(m) * 100) / 100);
      ps.push_back(per);
      pb.push_back(std::round(finite_or_nan(b) * 100) / 100);
      sum_mean += m;
      sum_samp += acc / double(chains);
      sum_base += b;
    }
    tj["psnr_mean"] = pm;
    tj["psnr_samples"] = ps;
    tj["psnr_measurement_baseline"] = pb;
    tj["avg_psnr_mean"] = std::round(sum_mean / double(n_img) * 100) / 100;
    tj["avg_psnr_sample"] = std::round(sum_samp / double(n_img) * 100) / 100;
    tj["avg_psnr_measurement_baseline"] = std::round(sum_base / double(n_img) * 100) / 100;

    PosteriorFigure fig;
    fig.x = shape;
    fig.y_shape = t.y_shape;
    fig.n_meas = n_img;
    fig.chains = chains;
    fig.y = t.y.data();
    fig.samples = r.samples.data();
    fig.mean = r.mean.data();
    fig.std = r.std.data();
    fig.truth = truth.data();
    fig.n_show = o.show;
    fig.lo = -1.f;
    fig.hi = 1.f;
    fig.scale = 8;
    fig.title = t.title + "; samples: " + sample_kind(cfg);
    for (int64_t i = 0; i < n_img; ++i) {
      char note[96];
      double samp = 0;
      for (const auto& v : ps[size_t(i)]) samp += v.is_number() ? v.get<double>() : NAN;
      std::snprintf(note, sizeof note, "PSNR mean %.1f dB, samples %.1f dB, measurement %.1f dB",
                    pm[size_t(i)].is_number() ? pm[size_t(i)].get<double>() : NAN, samp / double(chains),
                    pb[size_t(i)].is_number() ? pb[size_t(i)].get<double>() : NAN);
      fig.row_notes.push_back(note);
    }
    const std::string png = o.out_dir + "/demo_" + t.name + ".png";
    figures.push_back(fig);
    tj["png"] = png;
    report["tasks"][t.name] = tj;
    if (!o.quiet && !o.json.on_stdout())
      std::printf("  %-42s PSNR posterior mean %.2f dB, average sample %.2f dB (measurement %.2f dB); %lld steps, %.1f s -> %s\n",
                  t.title.c_str(), tj["avg_psnr_mean"].get<double>(), tj["avg_psnr_sample"].get<double>(),
                  tj["avg_psnr_measurement_baseline"].get<double>(), static_cast<long long>(r.info.steps), r.wall_seconds,
                  png.c_str());
  }
  report["seconds"] = total_seconds;
  report["figure_columns"] = "measurement | " + std::to_string(std::min<int64_t>(o.show, chains)) +
                             " samples | posterior mean | posterior std (0..max) | truth";
  OutputPhase writing;
  for (size_t k = 0; k < tasks.size(); ++k) {
    write_posterior_png(o.out_dir + "/demo_" + tasks[k].name + ".png", figures[k]);
    save_array(o.out_dir + "/demo_" + tasks[k].name + "_samples.npy", results[k].samples.data(),
               {n_img * chains, shape.C, shape.H, shape.W});
  }
  write_text_file("--out-dir", jpath, report.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  o.json.emit(report);
  writing.finish();
  if (!o.quiet && !o.json.on_stdout())
    std::printf("  figure columns: %s\n  wrote %s (total %.1f s)\n", report["figure_columns"].get<std::string>().c_str(),
                jpath.c_str(), total_seconds);
}

}  // namespace

void register_demo_command(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  CLI::App* sub = app.add_subcommand("demo", "ALMC inpainting and 2x super-resolution on the bundled digits");
  o->app = sub;
  sub->add_option("--out-dir", o->out_dir, "where the PNG grids and demo_psnr.json go")->capture_default_str();
  sub->add_flag("--quick", o->quick, "2 images x 4 chains at kappa 1 instead of 4 x 8 at kappa 2");
  sub->add_option("--demo-dir", o->demo_dir, "folder with digits_score.onnx, test_images.npy, model.json");
  sub->add_option("--images", o->images, "number of test images (>= 1; default 4, quick 2; 8 are bundled)")->transform(int_check());
  sub->add_option("--chains", o->chains, "chains per image (>= 1; default 8, quick 4)")->transform(int_check());
  sub->add_option("--kappa", o->kappa, "ALMC rate kappa: levels delta/kappa apart in OU time (> 0; default 2, quick 1)");
  sub->add_flag("--tweedie,!--no-tweedie", o->tweedie,
                "final Tweedie denoise of the samples (default on; outside the paper: removes the tau-level noise)");
  sub->add_option("--delta", o->delta, "ALMC step delta, in OU time (> 0)")->capture_default_str();
  sub->add_flag("--force", o->force, "run although the stability guard refuses --delta (its refusal suggests it)");
  sub->add_option("--t-start", o->t_start, "ALMC start time T_ws, in OU time (> 0)")->capture_default_str();
  sub->add_option("--t-stop", o->t_stop, "ALMC stop time tau, in OU time (> 0, below --t-start)")->capture_default_str();
  sub->add_option("--noise-std", o->noise_std, "measurement noise std sigma_y, in pixel units (images span [-1, 1]; > 0)")->capture_default_str();
  sub->add_option("--mask", o->mask, "inpainting mask: box (lower half) | random (50%)")->capture_default_str();
  sub->add_option("--show", o->show, "samples shown per row of the figures (>= 0)")->capture_default_str()->transform(int_check());
  sub->add_option("--seed", o->seed, "seed")->transform(seed_check())->capture_default_str();
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (0: OpenMP default)")->capture_default_str()->transform(threads_check());
  sub->add_flag("--quiet,-q", o->quiet, "no progress or summary");
  o->json.add_option(sub, "the PSNR report (demo_psnr.json's content)");
  sub->callback([o]() { run_demo(*o); });
}

}  // namespace almc::cli
