// The network's BF16 precision (issue 11, item 4): the CPU GEMM's BF16 formula (cpu_gemm.hpp) in
// both kernels, bit for bit; the executor's BF16 plans against fp32 on every fixture within a
// tolerance from bfloat16's 8-bit significand; batch and thread invariance of BF16 results;
// fp32 results untouched by the option; the C API's refusals.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "host/onnx/cpu_gemm.hpp"
#include "host/onnx/executor.hpp"
#include "tests/cpu/test_onnx_util.hpp"

using almc::onnx::ExecConfig;
using almc::onnx::Executor;
using almc::onnx::GemmView;
using onnx_test::data_dir;
using onnx_test::read_npy;
namespace isa = almc::onnx::gemm_isa;

namespace {

bool cpu_has_bf16() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

// x rounded to an 8-bit significand, to nearest even, computed independently of to_bf16 (through
// frexp and nearbyint, double). Normal range only (the tests' values are).
float round8(float x) {
  int e;
  const double m = std::frexp(double(x), &e);  // x = m 2^e, 0.5 <= |m| < 1
  return float(std::ldexp(std::nearbyint(std::ldexp(m, 8)), e - 8));
}

struct Problem {
  int64_t M, N, K;
  bool trans_a, koff;
  int bias;  // 0 none, 1 per column, 2 per row
  std::vector<float> A, B, bias_v;
  std::vector<int64_t> offs;
  float alpha = 0.75f;
  GemmView view(float* C) const {
    GemmView g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.A = A.data();
    g.a_rs = trans_a ? 1 : K + 3;
    g.a_ks = trans_a ? M + 2 : 1;
    g.B = B.data();
    g.ldb = N + 5;
    if (koff) g.b_koff = offs.data();
    g.C = C;
    g.ldc = N + 1;
    g.alpha = alpha;
    if (bias) {
      g.bias = bias_v.data();
      g.beta = 1.5f;
      g.bias_rs = bias == 1 ? 0 : 1;
      g.bias_cs = bias == 1 ? 1 : 0;
    }
    g.bf16 = true;
    return g;
  }
};

// wide: values spread over 2^-60 .. 2^60 (products near float's limits, sums that cancel).
Problem make(int64_t M, int64_t N, int64_t K, bool trans_a, int bias, bool koff, unsigned seed, bool wide = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::uniform_int_distribution<int> ex(-60, 60);
  Problem p{M, N, K, trans_a, koff, bias, {}, {}, {}, {}};
  for (int64_t k = 0; k < K; ++k) p.offs.push_back((K - 1 - k) * (N + 5) / 2 + k % 3);
  p.A.resize(size_t(trans_a ? K * (M + 2) : M * (K + 3)));
  p.B.resize(size_t(K * (N + 5)));
  p.bias_v.resize(size_t(std::max(M, N)));
  for (auto* v : {&p.A, &p.B, &p.bias_v})
    for (float& x : *v) x = wide ? std::ldexp(u(rng), ex(rng)) : u(rng);
  return p;
}

using Driver = std::vector<float> (*)(const Problem&, const std::vector<int64_t>&, const std::vector<int64_t>&);

template <bool HW>
std::vector<float> run(const Problem& p, const std::vector<int64_t>& rows, const std::vector<int64_t>& cols) {
  std::vector<float> C(size_t(p.M * (p.N + 1)), NAN);
  const GemmView g = p.view(C.data());
  for (size_t r = 0; r + 1 < rows.size(); ++r)
    for (size_t c = 0; c + 1 < cols.size(); ++c) {
      if (HW)
        isa::tile_bf16(g, rows[r], rows[r + 1], cols[c], cols[c + 1], isa::tile_bf16_avx512, isa::pack_rows_bf16_avx512,
                       isa::pack_cols_bf16_avx512);
      else
        isa::tile_bf16(g, rows[r], rows[r + 1], cols[c], cols[c + 1], isa::tile_bf16_generic, isa::pack_rows_bf16_generic,
                       isa::pack_cols_bf16_generic);
    }
  return C;
}

std::vector<std::pair<const char*, Driver>> drivers() {
  std::vector<std::pair<const char*, Driver>> d{{"generic", run<false>}};
  if (cpu_has_bf16()) d.push_back({"avx512bf16", run<true>});
  return d;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

const std::vector<std::tuple<int64_t, int64_t, int64_t, bool, int, bool>> kShapes{
    {1, 1, 1, false, 0, false},   {37, 75, 53, false, 1, false}, {9, 130, 7, true, 2, false}, {64, 33, 300, false, 2, false},
    {5, 17, 0, false, 1, false},  {19, 70, 45, false, 2, true},  {2, 40, 9, false, 0, true},  {16, 384, 96, false, 1, false},
    {3, 200, 64, false, 0, false}};

}  // namespace

TEST(CpuGemmBf16, RoundingToBf16) {
  using almc::onnx::to_bf16;
  EXPECT_EQ(to_bf16(1.f), 0x3F80);
  EXPECT_EQ(to_bf16(1.f + 0x1p-8f), 0x3F80);            // a tie: to the even neighbour 1
  EXPECT_EQ(to_bf16(1.f + 3 * 0x1p-8f), 0x3F82);        // a tie: to the even neighbour 1 + 2^-6
  EXPECT_EQ(to_bf16(1.f + 0x1p-8f + 0x1p-20f), 0x3F81); // above the tie
  EXPECT_EQ(to_bf16(-2.5f), 0xC020);
  EXPECT_EQ(to_bf16(3.4028235e38f), 0x7F80);            // FLT_MAX rounds up to infinity
  EXPECT_EQ(to_bf16(-INFINITY), 0xFF80);
  EXPECT_EQ(to_bf16(1e-40f), 0x0000);                   // a subnormal: zero of its sign
  EXPECT_EQ(to_bf16(-1e-40f), 0x8000);
  EXPECT_EQ(to_bf16(0x1p-126f), 0x0080);                // the smallest normal stays
  EXPECT_EQ(to_bf16(NAN) & 0x7FC0, 0x7FC0);             // NaN stays NaN
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int i = 0; i < 10000; ++i) {
    const float x = std::ldexp(u(rng), int(rng() % 200) - 100);
    const uint32_t bits = uint32_t(to_bf16(x)) << 16;
    float back;
    std::memcpy(&back, &bits, 4);
    ASSERT_EQ(back, round8(x)) << x;
  }
}

// Both kernels against a double sum of the exactly rounded operands' products: the remaining error
// is float accumulation alone (K sums, each within 2^-24 of the running magnitude), and against
// the unrounded fp32 operands the error is that of bfloat16 (2^-9 relative per operand).
TEST(CpuGemmBf16, KernelsComputeProductsOfRoundedInputsWithFloatSums) {
  for (const auto& [name, run_fn] : drivers()) {
    SCOPED_TRACE(name);
    for (auto [M, N, K, ta, bias, ko] : kShapes) {
      const Problem p = make(M, N, K, ta, bias, ko, unsigned(M * 131 + N));
      const auto C = run_fn(p, {0, M}, {0, N});
      const GemmView g = p.view(nullptr);
      double worst_bf16 = 0, worst_fp32 = 0;
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double ref = 0, ref32 = 0, mag = 0;
          for (int64_t t = 0; t < K; ++t) {
            const float a = g.A[i * g.a_rs + t * g.a_ks], b = g.B[(ko ? g.b_koff[t] : t * g.ldb) + j];
            ref += double(round8(a)) * double(round8(b));
            ref32 += double(a) * double(b);
            mag += std::fabs(double(a) * double(b));
          }
          const double extra = bias ? double(g.beta) * g.bias[i * g.bias_rs + j * g.bias_cs] : 0.0;
          const double c = C[size_t(i * (N + 1) + j)];
          worst_bf16 = std::max(worst_bf16, std::fabs(c - (ref * g.alpha + extra)) / (mag + 1.0));
          worst_fp32 = std::max(worst_fp32, std::fabs(c - (ref32 * g.alpha + extra)) / (mag + 1.0));
        }
      // K float additions: <= K 2^-24 of the magnitude sum; 1e-5 covers K = 300 with margin.
      EXPECT_LE(worst_bf16, 1e-5) << M << "x" << N << "x" << K;
      // Two operands rounded to 8 bits: <= 2 * 2^-9 per product.
      EXPECT_LE(worst_fp32, 4e-3) << M << "x" << N << "x" << K;
      if (K >= 7) EXPECT_GT(worst_fp32, 1e-5) << "the operands were not rounded to bfloat16";
    }
  }
}

// The instruction (where the CPU has it) and the portable kernel give the same bits, on ordinary
// and on wide-range values (products near float's limits, cancelling sums), and both keep every
// element's bits whatever the tiles; operands packed in advance give the same bits as packed per
// tile.
TEST(CpuGemmBf16, KernelsAgreeBitForBitAndIgnoreTiling) {
  if (!cpu_has_bf16()) std::printf("note: this CPU has no AVX512_BF16: only the portable kernel is tested\n");
  std::mt19937 rng(9);
  auto cuts = [&](int64_t n) {
    std::vector<int64_t> c{0};
    std::uniform_int_distribution<int64_t> step(1, 11);
    while (c.back() < n) c.push_back(std::min(n, c.back() + step(rng)));
    return c;
  };
  for (bool wide : {false, true})
    for (auto [M, N, K, ta, bias, ko] : kShapes) {
      SCOPED_TRACE(std::to_string(M) + "x" + std::to_string(N) + "x" + std::to_string(K) + (wide ? " wide" : ""));
      const Problem p = make(M, N, K, ta, bias, ko, unsigned(K + 17 * wide), wide);
      const auto ref = run<false>(p, {0, M}, {0, N});
      if (cpu_has_bf16()) EXPECT_TRUE(same_bits(run<true>(p, {0, M}, {0, N}), ref)) << "instruction vs portable kernel";
      for (const auto& [name, run_fn] : drivers()) {
        EXPECT_TRUE(same_bits(run_fn(p, cuts(M), cuts(N)), ref)) << name << ", random tiles";
      }
      // Packed in advance (as use_bf16 packs a network's weights) through the public gemm_tile.
      const int64_t Kp = (K + 1) / 2;
      std::vector<float> a16(size_t(std::max<int64_t>(1, M * Kp))), b16(size_t(std::max<int64_t>(1, Kp * N)));
      std::vector<float> C(ref.size(), NAN);
      GemmView g = p.view(C.data());
      almc::onnx::pack_rows_bf16(g, 0, M, a16.data(), Kp);
      almc::onnx::pack_cols_bf16(g, 0, N, b16.data(), N);
      g.A16 = a16.data();
      g.a16_rs = Kp;
      almc::onnx::gemm_all(g);
      EXPECT_TRUE(same_bits(C, ref)) << "A packed in advance";
      g.B16 = b16.data();
      g.b16_ld = N;
      std::fill(C.begin(), C.end(), NAN);
      almc::onnx::gemm_all(g);
      EXPECT_TRUE(same_bits(C, ref)) << "A and B packed in advance";
      if (cpu_has_bf16()) {
        std::vector<float> c1(size_t(std::max<int64_t>(1, Kp * N))), c2 = c1;
        isa::pack_cols_bf16_generic(g, 0, N, c1.data(), N);
        isa::pack_cols_bf16_avx512(g, 0, N, c2.data(), N);
        EXPECT_TRUE(same_bits(c1, c2)) << "column packers";
        std::vector<float> r1(size_t(std::max<int64_t>(1, M * Kp))), r2 = r1;
        isa::pack_rows_bf16_generic(g, 0, M, r1.data(), Kp);
        isa::pack_rows_bf16_avx512(g, 0, M, r2.data(), Kp);
        EXPECT_TRUE(same_bits(r1, r2)) << "row packers";
      }
    }
}

// A pair's odd member is added first, and a sum is rounded to 24 bits as if the exponent were
// unbounded, then flushed to zero below 2^-126: the pair (a0 b0, a1 b1) = (-1.5 2^-151, 2^-126)
// gives 2^-126 - 0.75 2^-150, which rounds to 2^-126 - 2^-150 and flushes to 0. The even member
// first would give 2^-126 (its tiny product flushed alone), and a rounding on float's subnormal
// grid (spacing 2^-149) would give 2^-126 too. With +1.5 2^-151 the result is 2^-126.
TEST(CpuGemmBf16, PairOrderAndFlushAfterUnboundedRounding) {
  for (const auto& [name, run_fn] : drivers()) {
    SCOPED_TRACE(name);
    for (float sign : {-1.f, 1.f}) {
      Problem p{1, 1, 2, false, false, 0, {}, {}, {}, {}};
      p.alpha = 1.f;
      p.A = {sign * 0x1.8p-76f, 0x1p-63f, 0.f, 0.f, 0.f};  // a(0, 0), a(0, 1) (row stride K + 3)
      p.B.assign(12, 0.f);
      p.B[0] = 0x1p-75f;  // b(0, 0)
      p.B[6] = 0x1p-63f;  // b(1, 0) (ldb = N + 5)
      const auto C = run_fn(p, {0, 1}, {0, 1});
      EXPECT_EQ(C[0], sign < 0 ? 0.f : 0x1p-126f) << "sign " << sign;
    }
  }
}

// ------------------------------------------------------------------ the executor

namespace {

// The CPU backend the executors of these tests run on.
almc::Backend& cpu() {
  static const std::unique_ptr<almc::Backend> be = almc::make_cpu_backend(0);
  return *be;
}

std::unique_ptr<Executor> load(const std::string& name, int precision) {
  ExecConfig cfg;
  cfg.precision = precision;
  return std::make_unique<Executor>(almc::onnx::load_graph(data_dir() + name + ".onnx"), cfg, cpu());
}

std::vector<float> eval(Executor& ex, const std::vector<float>& x, const std::vector<float>& lv, int64_t n, int64_t d) {
  std::vector<float> out(size_t(n * d), NAN);
  ex.run_raw_levels(x.data(), out.data(), n, lv.data());
  return out;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

}  // namespace

// Tolerance: relative L2 error <= 2 * 2^-9 * sqrt(L), L the fixture's GEMM and convolution steps.
// Rounding an operand to bfloat16 changes it by at most 2^-9 relative (8-bit significand), about
// 2^-9/sqrt(3) RMS; a product carries two such errors (~1.6e-3 RMS relative per layer), and L
// layers in sequence add independent errors about in quadrature. 2 * 2^-9 per layer (3.9e-3,
// more than twice the RMS figure) leaves room for layers that amplify errors; a wrong kernel
// (a lost pair, swapped members, unrounded sums) is far outside it.
TEST(OnnxBf16, FixturesWithinBf16ToleranceOfFp32) {
  for (const char* name : onnx_test::kFixtures) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    const int64_t n = x.shape[0], d = int64_t(x.v.size()) / n;
    auto f32 = load(name, ALMC_PRECISION_FP32);
    auto b16 = load(name, ALMC_PRECISION_BF16);
    const auto ref = eval(*f32, x.v, lv.v, n, d), out = eval(*b16, x.v, lv.v, n, d);
    const double layers = double(b16->bf16_steps());
    const double err = rel_l2(out, ref), tol = 2 * 0x1p-9 * std::sqrt(layers);
    std::printf("%-18s BF16 vs fp32: relative L2 %.3e (tolerance %.3e, %g GEMM/conv steps)\n", name, err, tol, layers);
    if (layers == 0) {  // nothing to round (an analytic network of elementwise ops): fp32 bits
      EXPECT_TRUE(same_bits(out, ref));
      continue;
    }
    EXPECT_LE(err, tol);
    EXPECT_GT(err, 0.0) << "the BF16 path did not run";
  }
}

// BF16 results keep the CPU executor's promise: a sample's bits depend neither on the batch size
// nor on the thread count (mirrors Onnx.CpuRowsBitwiseIndependentOfBatchAndThreads).
TEST(OnnxBf16, RowsBitwiseIndependentOfBatchAndThreads) {
  const int saved = omp_get_max_threads();
  for (const char* name : {"mlp_embed", "resmlp", "unet", "misc_ops"}) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    const int64_t d = int64_t(x.v.size()) / x.shape[0], N = 41;
    std::vector<float> xs(static_cast<size_t>(N * d)), ls(static_cast<size_t>(N));
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = x.v[i % x.v.size()] * (1.f + 0.01f * float(i / x.v.size()));
    for (size_t i = 0; i < ls.size(); ++i) ls[i] = lv.v[i % lv.v.size()] * (1.f + 0.01f * float(i / lv.v.size()));
    auto ex = load(name, ALMC_PRECISION_BF16);
    auto at = [&](int64_t n, int threads) {
      omp_set_num_threads(threads);
      return eval(*ex, xs, ls, n, d);
    };
    const auto ref = at(N, 1);
    for (auto [n, threads] : std::vector<std::pair<int64_t, int>>{{1, 1}, {4, 2}, {17, 2}, {33, 3}, {41, 2}, {41, 4}}) {
      const auto out = at(n, threads);
      EXPECT_EQ(std::memcmp(out.data(), ref.data(), out.size() * sizeof(float)), 0) << "batch " << n << ", " << threads << " threads";
    }
  }
  omp_set_num_threads(saved);
}

// fp32 stays what it was: the default, explicit FP32 and TF32 (no effect on the CPU) give the same
// bits, before and after BF16 plans ran in the same process (they share per-thread buffers).
TEST(OnnxBf16, Fp32ResultsUnchangedByTheOption) {
  for (const char* name : {"mlp_embed", "unet", "misc_ops"}) {
    SCOPED_TRACE(name);
    auto x = read_npy(data_dir() + name + "_x.npy");
    auto lv = read_npy(data_dir() + name + "_level.npy");
    const int64_t n = x.shape[0], d = int64_t(x.v.size()) / n;
    auto def = std::make_unique<Executor>(almc::onnx::load_graph(data_dir() + name + ".onnx"), ExecConfig{}, cpu());
    const auto before = eval(*def, x.v, lv.v, n, d);
    EXPECT_EQ(def->bf16_steps(), 0);
    auto b16 = load(name, ALMC_PRECISION_BF16);
    const auto bf = eval(*b16, x.v, lv.v, n, d);
    EXPECT_FALSE(same_bits(bf, before));
    EXPECT_TRUE(same_bits(eval(*def, x.v, lv.v, n, d), before)) << "default after BF16";
    EXPECT_TRUE(same_bits(eval(*load(name, ALMC_PRECISION_FP32), x.v, lv.v, n, d), before)) << "explicit FP32";
    EXPECT_TRUE(same_bits(eval(*load(name, ALMC_PRECISION_TF32), x.v, lv.v, n, d), before)) << "TF32 on the CPU";
  }
}

TEST(OnnxBf16, CApiPrecisionSettingAndRefusals) {
  almc_context_config cc = almc_context_config_default();
  cc.backend = ALMC_BACKEND_CPU;
  almc_context_t ctx = nullptr;
  ASSERT_EQ(almc_context_create(&cc, &ctx), ALMC_OK);
  auto x = read_npy(data_dir() + "resmlp_x.npy");
  auto lv = read_npy(data_dir() + "resmlp_level.npy");
  const int64_t d = 24;
  const std::string model = data_dir() + "resmlp.onnx";
  almc_onnx_config cfg = almc_onnx_config_default();
  EXPECT_EQ(cfg.precision, ALMC_PRECISION_FP32);
  std::vector<float> f32(size_t(2 * d)), b16(size_t(2 * d));
  ASSERT_EQ(almc_onnx_eval_raw(ctx, model.c_str(), &cfg, x.v.data(), 2, d, lv.v[0], f32.data()), ALMC_OK);
  cfg.precision = ALMC_PRECISION_BF16;
  ASSERT_EQ(almc_onnx_eval_raw(ctx, model.c_str(), &cfg, x.v.data(), 2, d, lv.v[0], b16.data()), ALMC_OK)
      << almc_context_last_error(ctx);
  EXPECT_FALSE(same_bits(f32, b16));
  EXPECT_LE(rel_l2(b16, f32), 1e-2);
  cfg.allow_tf32 = 1;  // BF16 and TF32 at once
  EXPECT_EQ(almc_onnx_eval_raw(ctx, model.c_str(), &cfg, x.v.data(), 2, d, lv.v[0], b16.data()), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx)).find("allow_tf32"), std::string::npos);
  cfg.allow_tf32 = 0;
  cfg.precision = static_cast<almc_precision>(7);
  EXPECT_EQ(almc_onnx_eval_raw(ctx, model.c_str(), &cfg, x.v.data(), 2, d, lv.v[0], b16.data()), ALMC_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(almc_context_last_error(ctx)).find("unknown precision 7"), std::string::npos);
  almc_context_destroy(ctx);
}
