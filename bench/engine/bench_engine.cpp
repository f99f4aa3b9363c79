// Google Benchmark of the CPU backend's step kernels against the memory roofline.
//
//   almc_bench_engine [--benchmark_filter=REGEX] [--benchmark_format=json] ...
//
// Every benchmark runs on d x chains float32 elements and reports bytes_per_second (shown as GB/s
// or "G/s"), so the kernels read directly against the triad and the copy run on arrays of the same
// size in the same binary. Bytes counted:
//   Triad        a = b + s c                  12 B/element (STREAM: 2 reads, 1 write)
//   Copy         a = b                         8 B/element
//   FusedStep    x <- x + h (s + lik g) + sqrt(2h) xi, in place: x read + written, 8 B/element
//                (y, mask and the prior's parameters are per measurement and stay in cache)
//   GmmResp      responsibilities [n, K] from x: x read once, 4 B/element
//   Noise        x = N(0, 1) (Philox + Box-Muller): x written, 4 B/element
// Arguments: {chains, d}. Threads: OMP_NUM_THREADS (the backend uses OpenMP's default).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "host/backend/backend.hpp"
#include "host/backend/cpu_noise.hpp"

namespace {

using almc::Backend;

Backend& backend() {
  static std::unique_ptr<Backend> be = almc::make_cpu_backend(0);
  return *be;
}

// 64-byte aligned float arrays, filled in parallel (first touch by the thread that uses them).
struct Arr {
  float* p = nullptr;
  int64_t n = 0;
  explicit Arr(int64_t count, float base = 0.f) : p(static_cast<float*>(backend().alloc(4 * size_t(count)))), n(count) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) p[i] = base + 0.25f * std::sin(0.001f * float(i % 9973));
  }
  ~Arr() { backend().dealloc(p); }
  Arr(const Arr&) = delete;
  Arr& operator=(const Arr&) = delete;
};

void Triad(benchmark::State& st) {
  const int64_t n = st.range(0) * st.range(1);
  Arr a(n), b(n, 1.f), c(n, 2.f);
  const float s = 0.5f;
  float *pa = a.p, *pb = b.p, *pc = c.p;
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i] + s * pc[i];
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 12 * n);
  st.counters["threads"] = omp_get_max_threads();
}

void Copy(benchmark::State& st) {
  const int64_t n = st.range(0) * st.range(1);
  Arr a(n), b(n, 1.f);
  float *pa = a.p, *pb = b.p;
  for (auto _ : st) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) pa[i] = pb[i];
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 8 * n);
}

struct StepFixture {
  int64_t n, d, K;
  Arr x, y, mask, mu, var, resp, tables;
  almc::GmmPrior gmm{};
  std::vector<float> logw;
  almc::StepScalars cur{};
  almc::FusedStepParams p{};

  // prior: kPriorGaussian (K = 1) or kPriorGmm; op: kOpNone, kOpIdentity or kOpMask.
  StepFixture(int64_t chains, int64_t dim, int32_t prior, int64_t k, int32_t op)
      : n(chains), d(dim), K(k), x(chains * dim), y(dim, 0.1f), mask(dim), mu(k * dim), var(k * dim, 0.3f),
        resp(chains * k), tables(2 * k * dim + k), logw(size_t(k), -std::log(float(k))) {
    for (int64_t j = 0; j < d; ++j) mask.p[j] = (j * 2654435761u) % 7 < 4 ? 1.f : 0.f;
    for (int64_t i = 0; i < n * K; ++i) resp.p[i] = 1.f / float(K);
    cur.t = 0.5f;
    cur.sigma = std::sqrt(std::expm1(1.f));
    cur.alpha_bar = std::exp(-1.f);
    cur.log_sigma = std::log(cur.sigma);
    cur.h = 0.004f;
    cur.noise = std::sqrt(2 * cur.h);
    cur.lik = 100.f;  // 1 / sigma_y^2
    cur.xs = 1.f;
    cur.neg_xs = -1.f;
    cur.post = 1.f;
    cur.kind = almc::kStepAnneal;
    cur.aux = -1;
    cur.step = 0;
    p.x = x.p;
    p.n = n;
    p.d = d;
    p.chain0 = 0;
    p.seed = 7;
    p.cur = &cur;
    p.prior = prior;
    p.cpm = n;  // one measurement
    gmm = almc::GmmPrior{mu.p, var.p, logw.data(), K};
    p.tab = almc::PriorTables{tables.p, tables.p + K * d, tables.p + 2 * K * d, logw.data(), K};
    backend().prior_tables(gmm, d, &cur, p.tab);
    p.resp = resp.p;
    p.op.kind = op;
    p.op.mask = mask.p;
    p.y = op == almc::kOpNone ? nullptr : y.p;
    p.y_div = n;  // one measurement
    p.m = d;
  }
};

template <int32_t Prior, int64_t K, int32_t Op>
void FusedStep(benchmark::State& st) {
  StepFixture f(st.range(0), st.range(1), Prior, K, Op);
  for (auto _ : st) {
    ++f.cur.step;  // fresh noise every step, as in a run
    backend().fused_step(f.p);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 8 * f.n * f.d);
}

void GmmResp(benchmark::State& st) {
  StepFixture f(st.range(0), st.range(1), almc::kPriorGmm, 8, almc::kOpNone);
  for (auto _ : st) {
    backend().gmm_responsibilities(f.p.tab, f.x.p, f.n, f.d, &f.cur, f.resp.p, nullptr);  // the CPU needs none
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 4 * f.n * f.d);
}

void Noise(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  Arr x(n * d);
  uint64_t key = 0;
  for (auto _ : st) {
    backend().fill_random(x.p, n, d, 0, n, 7, ++key, 1.f, false);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 4 * n * d);
}

// The CPU backend's vectorised noise alone (the fused step's largest cost), per chain row.
void NoiseBlock(benchmark::State& st) {
  const int64_t n = st.range(0), d = st.range(1);
  Arr x(n * d);
  uint64_t step = 0;
  for (auto _ : st) {
    ++step;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < n; ++c) almc::philox_normals_block(7, static_cast<uint64_t>(c), step, 0, (d + 3) / 4, x.p + c * d);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(st.iterations() * 4 * n * d);
}

// {chains, d}: 2^16 elements (cache), 2^22 and 2^24 (memory), and d = 64 with many chains.
void Sizes(benchmark::internal::Benchmark* b) {
  b->Args({16, 4096})->Args({1024, 4096})->Args({4096, 4096})->Args({65536, 64})->Args({64, 65536});
  b->Unit(benchmark::kMicrosecond)->UseRealTime();
}

using namespace almc;
BENCHMARK(Triad)->Apply(Sizes);
BENCHMARK(Copy)->Apply(Sizes);
BENCHMARK(FusedStep<kPriorGaussian, 1, kOpNone>)->Name("FusedStep/gauss/none")->Apply(Sizes);
BENCHMARK(FusedStep<kPriorGaussian, 1, kOpIdentity>)->Name("FusedStep/gauss/identity")->Apply(Sizes);
BENCHMARK(FusedStep<kPriorGaussian, 1, kOpMask>)->Name("FusedStep/gauss/mask")->Apply(Sizes);
BENCHMARK(FusedStep<kPriorGmm, 8, kOpMask>)->Name("FusedStep/gmm8/mask")->Apply(Sizes);
BENCHMARK(GmmResp)->Name("GmmResp/gmm8")->Apply(Sizes);
BENCHMARK(Noise)->Name("Noise/philox_normal")->Apply(Sizes);
BENCHMARK(NoiseBlock)->Name("Noise/cpu_block")->Apply(Sizes);

}  // namespace

BENCHMARK_MAIN();
