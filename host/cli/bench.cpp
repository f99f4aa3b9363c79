// `almc bench`: throughput of whole ALMC runs against the memory roofline, per case.
//
// Every case is a synthetic problem made in memory (no files): a GMM prior with K = 8 diagonal
// components (means N(0, 1), variances U[0.05, 0.5], random weights), or a diagonal Gaussian
// (K = 1, the cheapest analytic prior), or an ONNX score network; an operator (identity, mask,
// 2x average pooling of 3x64x64 images, dense A with m = d/4); one measurement y = A x0 + n,
// sigma_y = 0.1; `chains` chains. A case runs ALMC for a fixed number of steps N (no warm start:
// every step is an annealing step with a score call), picked so one run takes about --target
// seconds, and repeats the run; the time per step is the median over the repeats of the
// wall-clock time of almc_sampler_run (which includes one initial noise fill and the final NaN and
// residual check: one pass over x each, under 1% of a run of >= 100 steps).
//
// Roofline: the same process measures the memory bandwidth of the same device on arrays of the
// same size as the state: a STREAM-like triad a = b + s c with OpenMP on the CPU (bytes counted
// as STREAM does: 12 per element, no write-allocate), a device-to-device copy on CUDA (8 bytes
// per element: read + write). GB/s of a step counts the bytes its kernels must move as designed:
// x read and written once by the fused update (8 B per element), plus one more read of x for the
// GMM responsibilities pass, plus y, the mask and the prior's parameters once (shared by all
// chains of a measurement, so they stay in cache), plus for a dense A: A twice, R and g.
//
// Stages (--stages, on by default): the same case is also timed with the likelihood off (prior
// only) and with the Gaussian prior in place of the GMM or network. Differences give
//   update   = Gaussian prior, no likelihood (the fused update alone + the per-step overhead)
//   score    = prior only minus update (GMM responsibilities + GMM arithmetic in the update), or
//              full minus Gaussian-with-operator for an ONNX network
//   operator = full minus prior only
//   launch   = CUDA: full with graphs off minus full with graphs on (launch overhead graphs save)
// A difference is never printed negative: one below 0 (noise) is reported as 0, and the JSON gives
// each stage's spread (half the sum of both timings' min-max ranges) and the raw difference.
#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "host/cli/commands.hpp"

namespace almc::cli {
namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 ? v[h] : 0.5 * (v[h - 1] + v[h]);
}

// ------------------------------------------------------------------ options and cases

// Where the table goes: stdout, or stderr when --json prints the report on stdout.
std::FILE* g_text = stdout;

struct BenchOptions {
  std::string backend = "auto";
  int threads = 0;
  bool quick = false;
  bool no_stages = false;
  bool list = false;
  std::vector<std::string> only;  // case name substrings
  JsonReport json;
  double target = 0.25;           // seconds per timed run
  int repeats = 3;
  int64_t max_elements = 0;       // d * chains cap (0: 2^24 on the CPU, 2^28 on CUDA)
  std::string data_dir;           // tests/data (ONNX fixtures)
  std::string demo_dir;           // demo/ (digits_score.onnx)
  double noise_std = 0.1;
  double delta = 0.004;
};

struct CaseSpec {
  std::string name;
  std::string group;      // sweep | downsample | matrix | onnx | bandwidth
  std::string prior;      // gmm | gauss | onnx
  int64_t K = 8;
  std::string op;         // none | identity | mask | downsample | matrix
  int64_t d = 0, chains = 1;
  ImageShape shape;       // downsample
  std::string onnx_file;  // onnx
  std::string onnx_name;
  almc_net_output out = ALMC_OUTPUT_EPS;
  almc_net_convention conv = ALMC_CONV_VP;
  almc_net_level level = ALMC_LEVEL_T;
};

std::string fixture_dir(const BenchOptions& o) {
  if (!o.data_dir.empty()) return o.data_dir;
  if (const char* e = std::getenv("ALMC_TEST_DATA"); e && *e) return e;
  return "tests/data";
}
std::string demo_dir(const BenchOptions& o) {
  if (!o.demo_dir.empty()) return o.demo_dir;
  if (const char* e = std::getenv("ALMC_DEMO_DIR"); e && *e) return e;
  return "demo";
}
bool file_exists(const std::string& p) { return std::ifstream(p).good(); }

// The cases to run. skipped: the networks not found whose cases --case would have kept, for the
// caller to name once its checks have passed (an error comes alone).
std::vector<CaseSpec> make_cases(const BenchOptions& o, bool cuda, int64_t max_el, std::vector<std::string>* skipped) {
  std::vector<CaseSpec> cs;
  auto name_of = [](const CaseSpec& c) {
    std::ostringstream s;
    s << c.group << "/" << (c.prior == "gmm" ? "gmm" + std::to_string(c.K) : c.prior == "onnx" ? c.onnx_name : c.prior)
      << "/" << c.op << "/d" << c.d << "/c" << c.chains;
    return s.str();
  };
  auto add = [&](CaseSpec c) {
    if (c.d * c.chains > max_el) return;
    if (c.op == "matrix" && c.chains * (c.d / 4) * c.d > (cuda ? (int64_t(1) << 36) : (int64_t(1) << 30))) return;
    c.name = name_of(c);
    cs.push_back(c);
  };
  const std::vector<int64_t> dims = o.quick ? std::vector<int64_t>{64, 4096} : std::vector<int64_t>{64, 4096, 65536};
  const std::vector<int64_t> chains = o.quick ? std::vector<int64_t>{1, 256} : std::vector<int64_t>{1, 16, 256, 4096};
  // (a) GMM K = 8, identity and mask, the d x chains sweep.
  for (const char* op : {"identity", "mask"})
    for (int64_t d : dims)
      for (int64_t c : chains) {
        CaseSpec s;
        s.group = "sweep"; s.prior = "gmm"; s.op = op; s.d = d; s.chains = c;
        add(s);
      }
  // 2x downsampling of 3x64x64 images.
  for (int64_t c : o.quick ? std::vector<int64_t>{16} : std::vector<int64_t>{1, 16, 256, 1024}) {
    CaseSpec s;
    s.group = "downsample"; s.prior = "gmm"; s.op = "downsample"; s.shape = {3, 64, 64}; s.d = 3 * 64 * 64; s.chains = c;
    add(s);
  }
  // Dense A, m = d/4 at d = 4096.
  for (int64_t c : o.quick ? std::vector<int64_t>{16} : std::vector<int64_t>{1, 16, 256, 1024}) {
    CaseSpec s;
    s.group = "matrix"; s.prior = "gmm"; s.op = "matrix"; s.d = 4096; s.chains = c;
    add(s);
  }
  // The fused step's bandwidth: analytic priors, local operators, d x chains >= 2^22.
  for (int64_t c : o.quick ? std::vector<int64_t>{1024} : std::vector<int64_t>{1024, 4096})
    for (const char* prior : {"gauss", "gmm"})
      for (const char* op : {"identity", "mask"}) {
        CaseSpec s;
        s.group = "bandwidth"; s.prior = prior; s.K = std::string(prior) == "gmm" ? 8 : 1; s.op = op; s.d = 4096; s.chains = c;
        add(s);
      }
  // (b) ONNX networks (identity likelihood): the fixtures and the demo's digits MLP.
  struct Net {
    std::string name, file;
    almc_net_output out;
    almc_net_convention conv;
    almc_net_level level;
    int64_t d;
    ImageShape shape;
  };
  const std::string data = fixture_dir(o), demo = demo_dir(o);
  const std::vector<Net> nets = {
      {"mlp_embed", data + "/onnx/mlp_embed.onnx", ALMC_OUTPUT_EPS, ALMC_CONV_VP, ALMC_LEVEL_T, 16, {}},
      {"unet", data + "/onnx/unet.onnx", ALMC_OUTPUT_EPS, ALMC_CONV_VE, ALMC_LEVEL_SIGMA, 256, {1, 16, 16}},
      {"digits_mlp", demo + "/digits_score.onnx", ALMC_OUTPUT_EPS, ALMC_CONV_VP, ALMC_LEVEL_T, 256, {1, 16, 16}},
  };
  auto selected = [&](const std::string& name) {
    if (o.only.empty()) return true;
    for (const auto& f : o.only)
      if (name.find(f) != std::string::npos) return true;
    return false;
  };
  for (const Net& n : nets) {
    const size_t before = cs.size();
    for (int64_t c : o.quick ? std::vector<int64_t>{64} : std::vector<int64_t>{1, 64, 1024}) {
      CaseSpec s;
      s.group = "onnx"; s.prior = "onnx"; s.onnx_name = n.name; s.onnx_file = n.file; s.out = n.out; s.conv = n.conv;
      s.level = n.level; s.op = "identity"; s.d = n.d; s.shape = n.shape; s.chains = c;
      add(s);
    }
    if (file_exists(n.file)) continue;
    const bool wanted = std::any_of(cs.begin() + before, cs.end(), [&](const CaseSpec& c) { return selected(c.name); });
    cs.resize(before);
    if (wanted) skipped->push_back(n.file);
  }
  std::vector<CaseSpec> kept;
  for (const auto& c : cs)
    if (selected(c.name)) kept.push_back(c);
  return kept;
}

// ------------------------------------------------------------------ synthetic problem

struct Problem {
  int64_t d = 0, m = 0, K = 0;
  std::vector<float> w, mu, var;  // GMM [K], [K, d], [K, d]
  std::vector<float> mask, A, y;  // mask [d], A [m, d], y [m]
};

Problem make_problem(const CaseSpec& c, double noise_std) {
  Problem p;
  p.d = c.d;
  p.K = c.prior == "gmm" ? c.K : 1;
  std::mt19937_64 rng(1234 + static_cast<uint64_t>(c.d));
  std::normal_distribution<float> N01(0.f, 1.f);
  std::uniform_real_distribution<float> U(0.f, 1.f);
  p.w.resize(size_t(p.K));
  p.mu.resize(size_t(p.K * c.d));
  p.var.resize(p.mu.size());
  for (auto& v : p.w) v = 0.2f + U(rng);
  for (auto& v : p.mu) v = N01(rng);
  for (auto& v : p.var) v = 0.05f + 0.45f * U(rng);
  // Truth: component 0's mean plus its spread.
  std::vector<float> x0(size_t(c.d));
  for (int64_t j = 0; j < c.d; ++j) x0[size_t(j)] = p.mu[size_t(j)] + std::sqrt(p.var[size_t(j)]) * N01(rng);
  const auto nz = [&]() { return static_cast<float>(noise_std) * N01(rng); };
  if (c.op == "identity" || c.op == "none" || c.op.empty()) {
    p.m = c.d;
    p.y.resize(size_t(c.d));
    for (int64_t j = 0; j < c.d; ++j) p.y[size_t(j)] = x0[size_t(j)] + nz();
  } else if (c.op == "mask") {
    p.m = c.d;
    p.mask.resize(size_t(c.d));
    p.y.resize(size_t(c.d));
    for (int64_t j = 0; j < c.d; ++j) {
      p.mask[size_t(j)] = U(rng) < 0.5f ? 1.f : 0.f;
      p.y[size_t(j)] = p.mask[size_t(j)] * (x0[size_t(j)] + nz());
    }
  } else if (c.op == "downsample") {
    const int64_t C = c.shape.C, H = c.shape.H, W = c.shape.W, f = 2;
    p.m = C * (H / f) * (W / f);
    p.y.assign(size_t(p.m), 0.f);
    for (int64_t ch = 0; ch < C; ++ch)
      for (int64_t r = 0; r < H; ++r)
        for (int64_t q = 0; q < W; ++q)
          p.y[size_t(ch * (H / f) * (W / f) + (r / f) * (W / f) + q / f)] += x0[size_t(ch * H * W + r * W + q)] / float(f * f);
    for (auto& v : p.y) v += nz();
  } else if (c.op == "matrix") {
    p.m = std::max<int64_t>(1, c.d / 4);
    p.A.resize(size_t(p.m * c.d));
    const float s = 1.f / std::sqrt(float(c.d));
    for (auto& v : p.A) v = s * N01(rng);
    p.y.resize(size_t(p.m));
    for (int64_t i = 0; i < p.m; ++i) {
      double acc = 0;
      for (int64_t j = 0; j < c.d; ++j) acc += double(p.A[size_t(i * c.d + j)]) * x0[size_t(j)];
      p.y[size_t(i)] = float(acc) + nz();
    }
  }
  return p;
}

// ------------------------------------------------------------------ memory

// Resets the process's peak RSS (Linux >= 4.0: writing 5 to clear_refs); false when refused.
bool reset_peak_rss() {
  std::ofstream f("/proc/self/clear_refs");
  if (!f) return false;
  f << "5";
  return static_cast<bool>(f);
}
// VmHWM (peak) or VmRSS in bytes from /proc/self/status.
size_t proc_status_kb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, n, key) == 0) return static_cast<size_t>(std::atoll(line.c_str() + n + 1)) * 1024;
  return 0;
}

// ------------------------------------------------------------------ roofline

struct Bandwidth {
  double gbps = NAN;
  std::string kind;  // "triad (OpenMP)" | "device-to-device copy"
  int64_t elements = 0;
};

// STREAM-like triad a = b + s c on three float arrays of n elements, OpenMP with `threads`
// threads, first touch in parallel so pages sit where their thread runs. Median of 7 timed
// repetitions, each a loop long enough (>= ~20 ms) to swamp the clock and fork overhead.
Bandwidth cpu_triad(int64_t n, int threads) {
  Bandwidth b;
  b.kind = "triad a=b+s*c (OpenMP, 12 B/element)";
  b.elements = n;
  std::unique_ptr<float[]> A(new float[size_t(n)]), B(new float[size_t(n)]), Cc(new float[size_t(n)]);
  float *a = A.get(), *bb = B.get(), *c = Cc.get();
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    a[i] = 0.f;
    bb[i] = 1.f + 1e-7f * float(i % 1000);
    c[i] = 2.f - 1e-7f * float(i % 777);
  }
  const float s = 0.5f;
  auto triad_once = [&]() {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) a[i] = bb[i] + s * c[i];
  };
  triad_once();
  int64_t iters = 1;
  for (;;) {
    const auto t0 = Clock::now();
    for (int64_t k = 0; k < iters; ++k) triad_once();
    if (seconds_since(t0) > 0.02 || iters > (int64_t(1) << 24)) break;
    iters *= 2;
  }
  std::vector<double> r;
  for (int rep = 0; rep < 7; ++rep) {
    const auto t0 = Clock::now();
    for (int64_t k = 0; k < iters; ++k) triad_once();
    r.push_back(12.0 * double(n) * double(iters) / seconds_since(t0) / 1e9);
  }
  volatile float sink = a[n / 2];
  (void)sink;
  b.gbps = median(r);
  return b;
}

// Device-to-device copy through the C API (cudaMemcpyAsync on the engine's stream), 8 B/element.
Bandwidth device_copy(almc_context_t ctx, int64_t n) {
  Bandwidth b;
  b.kind = "device-to-device copy (8 B/element)";
  b.elements = n;
  const size_t bytes = 4 * size_t(n);
  void *src = nullptr, *dst = nullptr;
  check(almc_malloc(ctx, bytes, &src), "copy benchmark buffer", ctx);
  if (almc_malloc(ctx, bytes, &dst) != ALMC_OK) {
    almc_free(ctx, src);
    throw CliError(std::string("copy benchmark buffer: ") + almc_context_last_error(ctx));
  }
  // Non-zero data (zeros can run faster on some parts): upload a pattern once.
  std::vector<float> h(size_t(std::min<int64_t>(n, 1 << 20)));
  for (size_t i = 0; i < h.size(); ++i) h[i] = std::sin(0.37f * float(i));
  for (int64_t off = 0; off < n; off += int64_t(h.size())) {
    const size_t cnt = size_t(std::min<int64_t>(int64_t(h.size()), n - off));
    almc_memcpy(ctx, static_cast<float*>(src) + off, h.data(), 4 * cnt, 0);
  }
  almc_synchronize(ctx);
  auto copy_k = [&](int64_t k) {
    for (int64_t i = 0; i < k; ++i) almc_memcpy(ctx, dst, src, bytes, 2);
    almc_synchronize(ctx);
  };
  copy_k(2);
  int64_t iters = 1;
  for (;;) {
    const auto t0 = Clock::now();
    copy_k(iters);
    if (seconds_since(t0) > 0.02 || iters > (int64_t(1) << 20)) break;
    iters *= 2;
  }
  std::vector<double> r;
  for (int rep = 0; rep < 7; ++rep) {
    const auto t0 = Clock::now();
    copy_k(iters);
    r.push_back(8.0 * double(n) * double(iters) / seconds_since(t0) / 1e9);
  }
  almc_free(ctx, src);
  almc_free(ctx, dst);
  b.gbps = median(r);
  return b;
}

// ------------------------------------------------------------------ timing one variant

struct Variant {
  std::string prior;  // gmm | gauss | onnx
  std::string op;     // none or the case's operator
  bool graphs = true;
};

struct Timing {
  bool ok = false;
  std::string error;
  int64_t steps = 0, score_evals = 0;
  double step_s = NAN;        // median seconds per step
  double step_s_min = NAN, step_s_max = NAN;
  size_t workspace = 0;
  int used_graphs = 0;
  std::vector<double> runs;   // seconds per run
};

}  // namespace

StageTime stage_difference(double a, double a_lo, double a_hi, double b, double b_lo, double b_hi) {
  StageTime t;
  t.raw = a - b;
  t.spread = 0.5 * ((a_hi - a_lo) + (b_hi - b_lo));
  t.seconds = std::isfinite(t.raw) ? std::max(0.0, t.raw) : t.raw;
  return t;
}

namespace {

struct Engine {
  almc_context_t ctx;
  bool cuda;
};

Score make_score(const Engine& e, const CaseSpec& c, const Problem& p, const std::string& prior) {
  almc_score_t s = nullptr;
  almc_status st;
  if (prior == "gmm") {
    st = almc_score_create_gmm(e.ctx, p.K, p.d, p.w.data(), p.mu.data(), p.var.data(), &s);
  } else if (prior == "gauss") {
    st = almc_score_create_gaussian(e.ctx, p.d, p.mu.data(), p.var.data(), &s);  // component 0
  } else {
    almc_onnx_config oc = almc_onnx_config_default();
    oc.output = c.out;
    oc.convention = c.conv;
    oc.level = c.level;
    oc.max_batch = c.chains;
    st = almc_score_create_onnx(e.ctx, c.onnx_file.c_str(), &oc, &s);
  }
  Score out(s);
  check(st, "score (" + prior + ")", e.ctx);
  return out;
}

Operator make_op(const Engine& e, const CaseSpec& c, const Problem& p, const std::string& op) {
  almc_operator_t o = nullptr;
  almc_status st = ALMC_OK;
  if (op == "none") return Operator();
  if (op == "identity") st = almc_operator_create_identity(e.ctx, p.d, &o);
  else if (op == "mask") st = almc_operator_create_mask(e.ctx, p.d, p.mask.data(), &o);
  else if (op == "downsample") st = almc_operator_create_downsample(e.ctx, c.shape.C, c.shape.H, c.shape.W, 2, &o);
  else if (op == "matrix") st = almc_operator_create_matrix(e.ctx, p.m, p.d, 1, p.A.data(), &o);
  Operator out(o);
  check(st, "operator (" + op + ")", e.ctx);
  return out;
}

almc_sampler_config bench_config(const BenchOptions& o, const CaseSpec& c, int64_t steps, bool graphs) {
  almc_sampler_config cfg = almc_sampler_config_default();
  cfg.method = ALMC_METHOD_ALMC;
  cfg.n_meas = 1;
  cfg.chains_per_meas = c.chains;
  cfg.seed = 7;
  cfg.noise_std = o.noise_std;
  cfg.t_start = 5.0;
  cfg.t_stop = 0.01;
  cfg.delta = o.delta;
  // N annealing steps: N = round(kappa T / delta) - round(kappa tau / delta).
  cfg.kappa = double(steps) * o.delta / (cfg.t_start - cfg.t_stop);
  cfg.warm_steps = 0;  // every timed step is an annealing step with a score call
  cfg.check_every = steps + 1;  // one NaN/residual check, at the end
  cfg.use_graphs = graphs ? 1 : 0;
  cfg.graph_chunk = 50;
  return cfg;
}

Timing time_variant(const BenchOptions& o, const Engine& e, const CaseSpec& c, const Problem& p, const Variant& v) {
  Timing t;
  try {
    Score score = make_score(e, c, p, v.prior);
    Operator op = make_op(e, c, p, v.op);
    auto run_once = [&](int64_t steps, int reps, std::vector<double>* secs, Timing* out) {
      almc_sampler_config cfg = bench_config(o, c, steps, v.graphs);
      almc_sampler_t raw = nullptr;
      const almc_status st = almc_sampler_create(e.ctx, score.get(), op.get(), &cfg, &raw);
      Sampler s(raw);
      check(st, "sampler", e.ctx);
      if (op) check(almc_sampler_set_measurement(s.get(), p.y.data()), "measurement", s.get());
      // An untimed run first: page faults on the CPU, graph capture and module load on CUDA.
      check(almc_sampler_run(s.get()), "run", s.get());
      almc_run_info info{};
      info.struct_size = sizeof info;
      for (int r = 0; r < reps; ++r) {
        const auto t0 = Clock::now();
        check(almc_sampler_run(s.get()), "run", s.get());
        secs->push_back(seconds_since(t0));
      }
      check(almc_sampler_run_info(s.get(), &info), "run info", s.get());
      if (out) {
        out->steps = info.steps;
        out->score_evals = info.score_evals;
        out->used_graphs = info.used_graphs;
        almc_sampler_workspace_bytes(s.get(), &out->workspace);
      }
      return info.steps;
    };
    // Calibrate on a short run (an untimed one, then a timed one), then size N for ~target seconds
    // per run: at least 3 steps, so a slow case (a big GMM on a small CPU) costs a few seconds.
    std::vector<double> cal;
    const int64_t n_cal = 4;
    const int64_t got = run_once(n_cal, 1, &cal, nullptr);
    const double per_step = cal[0] / double(std::max<int64_t>(1, got));
    const int64_t steps = std::clamp<int64_t>(static_cast<int64_t>(o.target / std::max(per_step, 1e-9)), 3, 100000);
    std::vector<double> secs;
    run_once(steps, o.repeats, &secs, &t);
    t.runs = secs;
    std::vector<double> ps;
    for (double s : secs) ps.push_back(s / double(t.steps));
    t.step_s = median(ps);
    t.step_s_min = *std::min_element(ps.begin(), ps.end());
    t.step_s_max = *std::max_element(ps.begin(), ps.end());
    t.ok = true;
  } catch (const CliError& err) {
    t.error = sampler_terms(err.what());  // bench has no --force: the engine's hint to force is left out
  }
  return t;
}

// ------------------------------------------------------------------ bytes and flops per step

struct Traffic {
  double bytes = 0;      // as the engine's kernels move them (see the file's head comment)
  double bytes_min = 0;  // x read and written once, the parameters and y once
  double flops = 0;      // dense A only (GEMMs); 0 otherwise
};

Traffic traffic(const CaseSpec& c, const Problem& p, const std::string& prior, const std::string& op) {
  const double n = double(c.chains), d = double(c.d), m = double(p.m), K = double(p.K);
  Traffic t;
  const double x_rw = 8.0 * n * d;
  double params = 0;
  if (prior == "gmm") params = 8.0 * K * d + 4.0 * n * K;  // mu, var; responsibilities
  if (prior == "gauss") params = 8.0 * d;
  double lik = 0;
  if (op == "identity") lik = 4.0 * m;
  if (op == "mask") lik = 8.0 * d;
  if (op == "downsample") lik = 4.0 * m;
  if (op == "matrix") lik = 8.0 * m * d + 4.0 * m;
  t.bytes_min = x_rw + params + lik;
  t.bytes = t.bytes_min;
  if (prior == "gmm") t.bytes += 4.0 * n * d;        // the responsibilities pass reads x
  if (prior == "onnx") t.bytes += 8.0 * n * d;       // the score buffer: written by the net, read by the update
  if (op == "matrix") {
    // GEMM reads x, writes R; residual reads/writes R; adjoint GEMM reads R, writes g; update reads g.
    t.bytes += 4.0 * n * d + 4.0 * n * m + 8.0 * n * m + 4.0 * n * m + 8.0 * n * d;
    t.flops = 4.0 * n * m * d;
  }
  return t;
}

// ------------------------------------------------------------------ one case

json run_case(const BenchOptions& o, const Engine& e, const CaseSpec& c, int threads, std::vector<std::string>& table) {
  json j;
  j["name"] = c.name;
  j["group"] = c.group;
  j["prior"] = c.prior == "onnx" ? "onnx:" + c.onnx_name : c.prior == "gmm" ? "gmm K=" + std::to_string(c.K) : "gaussian";
  j["operator"] = c.op;
  j["d"] = c.d;
  j["chains"] = c.chains;
  if (c.shape.known()) j["image_shape"] = {c.shape.C, c.shape.H, c.shape.W};
  reset_peak_rss();
  const auto t_case = Clock::now();
  const Problem p = make_problem(c, o.noise_std);
  j["m"] = p.m;

  // Roofline at this size.
  const int64_t elems = c.d * c.chains;
  const Bandwidth bw = e.cuda ? device_copy(e.ctx, std::max<int64_t>(elems, 1 << 16))
                              : cpu_triad(std::max<int64_t>(elems, 1 << 12), threads);
  j["roofline"] = {{"kind", bw.kind}, {"elements", bw.elements}, {"gbps", bw.gbps}};

  const Timing full = time_variant(o, e, c, p, {c.prior, c.op, true});
  if (!full.ok) {
    j["error"] = full.error;
    std::fprintf(stderr, "almc bench: %s: %s\n", c.name.c_str(), full.error.c_str());
    return j;
  }
  const Traffic tr = traffic(c, p, c.prior, c.op);
  const double sps = 1.0 / full.step_s;
  j["steps"] = full.steps;
  j["repeats"] = o.repeats;
  j["seconds_per_step"] = full.step_s;
  j["seconds_per_step_min_max"] = {full.step_s_min, full.step_s_max};
  j["run_seconds"] = full.runs;
  j["steps_per_s"] = sps;
  j["samples_per_s"] = sps * double(c.chains);  // chain-steps per second
  j["score_calls_per_s"] = double(full.score_evals) / double(full.steps) * sps;
  j["score_evals_per_s"] = double(full.score_evals) / double(full.steps) * sps * double(c.chains);
  j["bytes_per_step"] = tr.bytes;
  j["bytes_per_step_min"] = tr.bytes_min;
  j["gbps"] = tr.bytes * sps / 1e9;
  j["gbps_min"] = tr.bytes_min * sps / 1e9;
  j["fraction_of_roofline"] = tr.bytes * sps / 1e9 / bw.gbps;
  if (tr.flops > 0) j["gemm_gflops"] = tr.flops * sps / 1e9;
  j["used_graphs"] = full.used_graphs;
  j["workspace_bytes"] = full.workspace;

  // Stages.
  double t_update = NAN, t_score = NAN, t_op = NAN, t_launch = NAN, upd_frac = NAN;
  auto diff = [](const Timing& a, const Timing& b, double* out, const char* variant) {
    const StageTime d = stage_difference(a.step_s, a.step_s_min, a.step_s_max, b.step_s, b.step_s_min, b.step_s_max);
    *out = d.seconds;
    return json{{"seconds_per_step", d.seconds}, {"spread_seconds_per_step", d.spread},
                {"raw_difference", d.raw}, {"variant", variant}};
  };
  if (!o.no_stages) {
    json st;
    const bool has_op = c.op != "none";
    const Timing upd = time_variant(o, e, c, p, {"gauss", "none", true});
    if (upd.ok) {
      t_update = upd.step_s;
      const Traffic tu = traffic(c, p, "gauss", "none");
      upd_frac = tu.bytes / t_update / 1e9 / bw.gbps;
      st["update"] = {{"seconds_per_step", t_update}, {"variant", "gaussian prior, no likelihood"},
                      {"gbps", tu.bytes / t_update / 1e9}, {"fraction_of_roofline", upd_frac}};
    }
    if (c.prior == "gmm" || c.prior == "gauss") {
      const Timing pri = c.prior == "gauss" ? upd : time_variant(o, e, c, p, {c.prior, "none", true});
      if (pri.ok && upd.ok) {
        st["score"] = diff(pri, upd, &t_score, "prior only minus update");
      }
      if (pri.ok && has_op) {
        st["operator"] = diff(full, pri, &t_op, "full minus prior only");
      }
    } else {
      const Timing gop = time_variant(o, e, c, p, {"gauss", c.op, true});
      if (gop.ok) {
        st["score"] = diff(full, gop, &t_score, "full minus gaussian prior with the operator");
        if (upd.ok) st["operator"] = diff(gop, upd, &t_op, "gaussian with operator minus update");
      }
    }
    if (e.cuda) {
      const Timing ng = time_variant(o, e, c, p, {c.prior, c.op, false});
      if (ng.ok) {
        st["launch"] = diff(ng, full, &t_launch, "graphs off minus graphs on");
        st["launch"]["graphs_off_seconds_per_step"] = ng.step_s;
      }
    }
    j["stages"] = st;
  }
  const size_t hwm = proc_status_kb("VmHWM:");
  j["peak_rss_bytes"] = hwm;
  j["case_seconds"] = seconds_since(t_case);

  auto us = [](double s) {
    char b[32];
    if (!std::isfinite(s)) return std::string("-");
    std::snprintf(b, sizeof b, "%.1f", s * 1e6);
    return std::string(b);
  };
  auto pct = [](double f) {
    char b[32];
    if (!std::isfinite(f)) return std::string("-");
    std::snprintf(b, sizeof b, "%.0f%%", 100.0 * f);
    return std::string(b);
  };
  char line[512];
  std::snprintf(line, sizeof line, "%-38s %8.4g %10.4g %10.4g %7.2f %7.2f %5.0f%% %9s %9s %9s %9s %6s %8.1f %8.1f",
                c.name.c_str(), sps, sps * double(c.chains), double(full.score_evals) / double(full.steps) * sps * double(c.chains),
                tr.bytes * sps / 1e9, bw.gbps, 100.0 * tr.bytes * sps / 1e9 / bw.gbps, us(t_score).c_str(),
                us(t_op).c_str(), us(t_update).c_str(), us(t_launch).c_str(), pct(upd_frac).c_str(),
                double(full.workspace) / 1048576.0, double(hwm) / 1048576.0);
  table.push_back(line);
  std::fprintf(g_text, "%s\n", line);
  std::fflush(g_text);
  return j;
}

const char* kHeader =
    "%-38s %8s %10s %10s %7s %7s %6s %9s %9s %9s %9s %6s %8s %8s\n";

void run_bench(const BenchOptions& o) {
  if (o.repeats < 1) throw CliError("--repeats must be >= 1", 2);
  if (!(o.target > 0) || !std::isfinite(o.target)) throw CliError("--target must be a positive finite number of seconds", 2);
  for (auto [v, name] : {std::pair{o.noise_std, "--noise-std"}, {o.delta, "--delta"}})
    if (!(v > 0) || !std::isfinite(v))
      throw CliError(std::string(name) + " must be a positive finite number, got " + num(v), 2);
  if (o.max_elements < 0) throw CliError("--max-elements must be >= 0 (0: the default cap)", 2);
  o.json.prepare();
  g_text = o.json.on_stdout() ? stderr : stdout;
  Context ctx = make_context(o.backend, o.threads, true);
  almc_backend b = ALMC_BACKEND_CPU;
  almc_context_backend(ctx.get(), &b);
  const bool cuda = b == ALMC_BACKEND_CUDA;
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  const int64_t max_el = o.max_elements > 0 ? o.max_elements : cuda ? (int64_t(1) << 28) : (int64_t(1) << 24);
  std::vector<std::string> skipped;
  const auto cases = make_cases(o, cuda, max_el, &skipped);
  // Said once the checks have passed: an error comes alone.
  auto print_skipped = [&] {
    for (const auto& file : skipped)
      std::fprintf(stderr, "almc bench: %s not found, its cases are skipped (set ALMC_TEST_DATA / ALMC_DEMO_DIR)\n",
                   file.c_str());
  };
  if (o.list) {
    print_skipped();
    json names = json::array();
    for (const auto& c : cases) {
      names.push_back(c.name);
      if (!o.json.on_stdout()) std::printf("%s\n", c.name.c_str());
    }
    o.json.emit({{"command", "bench"}, {"cases", names}});
    return;
  }
  if (cases.empty()) {
    std::string files;
    for (const auto& file : skipped) files += (files.empty() ? "" : ", ") + file;
    throw CliError("no case matches --case" +
                       (files.empty() ? "" : " (the networks " + files + " were not found; set ALMC_TEST_DATA / ALMC_DEMO_DIR)"),
                   2);
  }
  // The report must not replace a network the cases read.
  NamedPaths networks;
  for (const auto& c : cases)
    if (!c.onnx_file.empty()) networks.emplace_back(c.onnx_name + "'s network", c.onnx_file);
  check_distinct_files({{"--json", o.json.file()}}, networks);
  print_skipped();
  const Engine e{ctx.get(), cuda};
  const char* dev = almc_context_device_name(ctx.get());
  const char* wp = std::getenv("OMP_WAIT_POLICY");
  std::string cpu_model;
  {
    std::ifstream f("/proc/cpuinfo");
    std::string line;
    while (std::getline(f, line))
      if (line.rfind("model name", 0) == 0) {
        cpu_model = line.substr(line.find(':') + 2);
        break;
      }
  }
  json out;
  out["command"] = "bench";
  out["version"] = almc_version();
  out["build"] = almc_build_info();
  out["backend"] = cuda ? "cuda" : "cpu";
  out["device"] = dev ? dev : "";
  out["cpu_model"] = cpu_model;
  out["hardware_threads"] = omp_get_num_procs();
  out["threads"] = threads;
  out["omp_wait_policy"] = wp ? wp : "";
  out["target_seconds_per_run"] = o.target;
  out["repeats"] = o.repeats;
  out["noise_std"] = o.noise_std;
  out["delta"] = o.delta;
  out["notes"] = {
      "samples_per_s = chains x steps/s (chain-steps per second); score_evals_per_s counts one per chain per call",
      "bytes_per_step: x read + written by the fused update, + one read of x for the GMM responsibilities, "
      "+ y, mask and prior parameters once; dense A: + A twice and the R and g buffers; ONNX: + the score buffer",
      "roofline: CPU triad a=b+s*c (12 B/element, STREAM convention) / CUDA device-to-device copy (8 B/element), "
      "measured at the case's d x chains in the same process",
      "stages are differences of whole-run timings (see `almc bench --help`); a difference below 0 is "
      "reported as 0, with its spread and raw value in the JSON"};
  // A large roofline, once: DRAM (CPU) or HBM (GPU) rather than a cache.
  const int64_t big = cuda ? (int64_t(1) << 28) : (int64_t(1) << 24);
  const Bandwidth bw_big = cuda ? device_copy(ctx.get(), big) : cpu_triad(big, threads);
  out["roofline_large"] = {{"kind", bw_big.kind}, {"elements", bw_big.elements}, {"gbps", bw_big.gbps}};
  std::fprintf(g_text, "# almc bench: %s, %s backend, %s (%d threads, OMP_WAIT_POLICY=%s); %s\n", dev ? dev : "?",
              cuda ? "cuda" : "cpu", cpu_model.c_str(), threads, wp ? wp : "unset", almc_build_info());
  std::fprintf(g_text, "# roofline at %lld elements: %s = %.2f GB/s\n", static_cast<long long>(big), bw_big.kind.c_str(), bw_big.gbps);
  std::fprintf(g_text, "# times per step in microseconds; %%roof = step GB/s over the roofline at the same size; upd%% = the update "
              "stage's GB/s over the same roofline (- without stages); above 100%%: the case fits in cache, where the "
              "roofline's one-off pass (and waking the threads) is slower than a step\n");
  std::fprintf(g_text, kHeader, "case", "steps/s", "samples/s", "evals/s", "GB/s", "roofGB/s", "%roof", "score_us", "op_us",
              "update_us", "launch_us", "upd%", "ws_MiB", "rss_MiB");
  std::fflush(g_text);
  json arr = json::array();
  std::vector<std::string> table;
  size_t failed = 0;
  for (const auto& c : cases) {
    arr.push_back(run_case(o, e, c, threads, table));
    failed += arr.back().contains("error") ? 1 : 0;
  }
  out["cases"] = arr;
  o.json.emit(out);
  if (failed > 0)
    throw CliError(std::to_string(failed) + " of " + std::to_string(cases.size()) + " cases failed (their errors are above)");
}

}  // namespace

void register_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* sub = app.add_subcommand(
      "bench",
      "Throughput of ALMC runs (GMM K=8, Gaussian and ONNX priors; identity, mask, 2x downsampling, dense A) "
      "against the memory roofline measured in the same run; per case steps/s, samples/s, score evaluations/s, "
      "GB/s, time per stage, workspace and peak RSS");
  sub->add_option("--backend", o->backend, "auto | cpu | cuda")->capture_default_str();
  sub->add_option("--threads", o->threads, "CPU threads (0: OpenMP default)")->capture_default_str()->transform(threads_check());
  sub->add_flag("--quick", o->quick, "a small subset of the cases, for a smoke test");
  sub->add_option("--case", o->only, "run only the cases whose name contains this (repeatable; see --list)");
  sub->add_flag("--list", o->list, "print the case names and exit");
  sub->add_flag("--no-stages", o->no_stages, "skip the per-stage timings (one variant per case)");
  sub->add_option("--target", o->target, "seconds per timed run (sets the number of steps)")->capture_default_str();
  sub->add_option("--repeats", o->repeats, "timed runs per variant (the median counts)")->capture_default_str()->transform(int_check());
  sub->add_option("--max-elements", o->max_elements, "skip cases with d x chains above this (0: 2^24 CPU, 2^28 CUDA)");
  // A folder named on the command line must exist (a typo would skip its cases with only a note).
  sub->add_option("--data", o->data_dir, "tests/data folder with onnx/ fixtures (default $ALMC_TEST_DATA or tests/data)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--demo-dir", o->demo_dir, "folder with digits_score.onnx (default $ALMC_DEMO_DIR or demo)")
      ->check(CLI::ExistingDirectory);
  sub->add_option("--noise-std", o->noise_std, "sigma_y of the synthetic measurements")->capture_default_str();
  sub->add_option("--delta", o->delta, "ALMC step delta")->capture_default_str();
  o->json.add_option(sub, "every number as JSON");
  sub->callback([o]() { run_bench(*o); });
}

}  // namespace almc::cli
