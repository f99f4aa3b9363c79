// The ONNX executor's CPU GEMM (host/onnx/cpu_gemm.hpp): every kernel this CPU can run against a
// double-precision product, and the contract the executor's batch and thread invariance rests on:
// an element's bits do not depend on the sub-rectangle it was computed in.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "host/onnx/cpu_gemm.hpp"
#include "cuda/onnx/ops.cuh"

using almc::onnx::GemmView;

namespace {

using TileFn = void (*)(const GemmView&, int64_t, int64_t, int64_t, int64_t);

struct Named {
  const char* name;
  TileFn fn;
};

// Of one kernel's three builds, those this CPU can run (the portable one always).
template <class Fn>
std::vector<std::pair<const char*, Fn>> runnable_builds(Fn generic, Fn avx2, Fn avx512) {
  std::vector<std::pair<const char*, Fn>> k{{"generic", generic}};
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) k.push_back({"avx2", avx2});
  if (__builtin_cpu_supports("avx512f")) k.push_back({"avx512", avx512});
#endif
  return k;
}

std::vector<Named> runnable() {
  std::vector<Named> k;
  for (const auto& [name, fn] : runnable_builds<TileFn>(almc::onnx::gemm_isa::tile_generic, almc::onnx::gemm_isa::tile_avx2,
                                                        almc::onnx::gemm_isa::tile_avx512))
    k.push_back({name, fn});
  return k;
}

struct Problem {
  int64_t M, N, K;
  bool trans_a;
  int bias;  // 0 none, 1 per column (a row of N), 2 per row (M values), 3 full [M, N]
  std::vector<float> A, B, bias_v;
  std::vector<int64_t> koff;  // B's rows through an offset table (reversed, overlapping) when set
  GemmView view(float* C) const {
    GemmView g;
    g.M = M;
    g.N = N;
    g.K = K;
    g.A = A.data();
    g.a_rs = trans_a ? 1 : K + 3;  // padded leading dimensions
    g.a_ks = trans_a ? M + 2 : 1;
    g.B = B.data();
    g.ldb = N + 5;
    if (!koff.empty()) g.b_koff = koff.data();
    g.C = C;
    g.ldc = N + 1;
    g.alpha = 0.75f;
    if (bias) {
      g.bias = bias_v.data();
      g.beta = 1.5f;
      g.bias_rs = bias == 1 ? 0 : bias == 2 ? 1 : N;
      g.bias_cs = bias == 2 ? 0 : 1;
    }
    return g;
  }
};

Problem make(int64_t M, int64_t N, int64_t K, bool trans_a, int bias, unsigned seed, bool koff = false) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  Problem p{M, N, K, trans_a, bias, {}, {}, {}, {}};
  // Row k of B at (K-1-k) * ldb / 2 + k % 3: rows overlap and start unaligned, like the shifted
  // views of a padded image.
  if (koff)
    for (int64_t k = 0; k < K; ++k) p.koff.push_back((K - 1 - k) * (N + 5) / 2 + k % 3);
  p.A.resize(size_t(trans_a ? K * (M + 2) : M * (K + 3)));
  p.B.resize(size_t(K * (N + 5)));
  p.bias_v.resize(size_t(M * N));
  for (auto* v : {&p.A, &p.B, &p.bias_v})
    for (float& x : *v) x = u(rng);
  return p;
}

std::vector<float> run(const Problem& p, TileFn fn, const std::vector<int64_t>& row_cuts, const std::vector<int64_t>& col_cuts) {
  std::vector<float> C(size_t(p.M * (p.N + 1)), NAN);
  const GemmView g = p.view(C.data());
  for (size_t r = 0; r + 1 < row_cuts.size(); ++r)
    for (size_t c = 0; c + 1 < col_cuts.size(); ++c) fn(g, row_cuts[r], row_cuts[r + 1], col_cuts[c], col_cuts[c + 1]);
  return C;
}

std::vector<int64_t> random_cuts(int64_t n, std::mt19937& rng) {
  std::vector<int64_t> cuts{0};
  std::uniform_int_distribution<int64_t> step(1, 11);
  while (cuts.back() < n) cuts.push_back(std::min(n, cuts.back() + step(rng)));
  return cuts;
}

}  // namespace

TEST(CpuGemm, KernelsMatchDoubleProduct) {
  for (const Named& k : runnable()) {
    SCOPED_TRACE(k.name);
    for (auto [M, N, K, ta, bias, ko] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool, int, bool>>{
             {1, 1, 1, false, 0, false}, {37, 75, 53, false, 1, false}, {9, 130, 7, true, 2, false},
             {64, 33, 300, false, 3, false}, {5, 17, 0, false, 1, false}, {19, 70, 45, false, 2, true}, {2, 40, 9, false, 0, true}}) {
      const Problem p = make(M, N, K, ta, bias, unsigned(M * 131 + N), ko);
      const auto C = run(p, k.fn, {0, M}, {0, N});
      const GemmView g = p.view(nullptr);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double ref = 0, mag = 0;
          for (int64_t t = 0; t < K; ++t) {
            const int64_t row = g.b_koff ? g.b_koff[t] : t * g.ldb;
            const double prod = double(g.A[i * g.a_rs + t * g.a_ks]) * double(g.B[row + j]);
            ref += prod;
            mag += std::fabs(prod);
          }
          ref *= g.alpha;
          if (bias) ref += double(g.beta) * g.bias[i * g.bias_rs + j * g.bias_cs];
          // Float accumulation of K products: error below K * 2^-24 of the magnitude sum; 1e-5
          // relative leaves margin for the epilogue's two roundings and stays far below any real
          // error (a lost, doubled or misplaced product is O(1e-2) or more here).
          EXPECT_NEAR(C[size_t(i * (N + 1) + j)], ref, 1e-5 * (mag + 1.0)) << M << "x" << N << "x" << K << " at " << i << "," << j;
        }
    }
  }
}

TEST(CpuGemm, ElementBitsIndependentOfTiling) {
  std::mt19937 rng(7);
  for (const Named& k : runnable()) {
    SCOPED_TRACE(k.name);
    for (auto [M, N, K, ta, bias, ko] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool, int, bool>>{
             {37, 75, 53, false, 1, false}, {16, 384, 96, false, 1, false}, {23, 41, 200, true, 2, false},
             {12, 100, 27, false, 3, false}, {21, 90, 36, false, 2, true}}) {
      const Problem p = make(M, N, K, ta, bias, unsigned(K), ko);
      const auto whole = run(p, k.fn, {0, M}, {0, N});
      std::vector<int64_t> rows_one{0}, cols_one{0};
      for (int64_t i = 1; i <= M; ++i) rows_one.push_back(i);
      for (int64_t j = 1; j <= N; ++j) cols_one.push_back(j);
      for (int rep = 0; rep < 4; ++rep) {
        const auto tiled = run(p, k.fn, random_cuts(M, rng), random_cuts(N, rng));
        EXPECT_EQ(std::memcmp(tiled.data(), whole.data(), whole.size() * sizeof(float)), 0) << M << "x" << N << "x" << K << " random tiles";
      }
      EXPECT_EQ(std::memcmp(run(p, k.fn, rows_one, {0, N}).data(), whole.data(), whole.size() * sizeof(float)), 0) << "row by row";
      EXPECT_EQ(std::memcmp(run(p, k.fn, {0, M}, cols_one).data(), whole.data(), whole.size() * sizeof(float)), 0) << "column by column";
    }
  }
}

// A segmented view (GemmView::seg: a convolution's output rows, each from its own shift of the
// image) is, bit for bit, the plain product of each segment, whatever the column tiling; the gaps
// between segments in C are never written. Segments of whole vectors and not, rows through an
// offset table (the one-pass path) and by ldb (segment by segment), biases by row and by column.
TEST(CpuGemm, SegmentedViewIsEachSegmentsPlainProduct) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (const Named& k : runnable()) {
    SCOPED_TRACE(k.name);
    for (int64_t seg : {8, 16, 24, 5, 32})
      for (bool ko : {true, false})
        for (int bias : {1, 2})
          for (int64_t M : {1, 16, 23}) {
            const int64_t S = 5, K = 37, b_seg = seg + 3, c_seg = seg + 2, ldb = S * b_seg + 1, ldc = S * c_seg + 1;
            std::vector<float> A(size_t(M * K)), B(size_t(K * ldb)), bias_v(size_t(std::max(M, S * seg)));
            for (auto* v : {&A, &B, &bias_v})
              for (float& x : *v) x = u(rng);
            std::vector<int64_t> koff;
            for (int64_t t = 0; t < K; ++t) koff.push_back((K - 1 - t) * ldb);  // rows in reverse
            GemmView g;
            g.M = M, g.N = S * seg, g.K = K;
            g.A = A.data(), g.a_rs = K, g.a_ks = 1;
            g.B = B.data(), g.ldb = ko ? 0 : ldb;
            if (ko) g.b_koff = koff.data();
            else {  // the same rows in reverse through a negative stride
              g.B = B.data() + (K - 1) * ldb;
              g.ldb = -ldb;
            }
            g.ldc = ldc;
            g.alpha = 0.75f, g.beta = 1.5f;
            g.bias = bias_v.data();
            g.bias_rs = bias == 2 ? 1 : 0;
            g.bias_cs = bias == 2 ? 0 : 1;
            std::vector<float> want(size_t(M * ldc), NAN), got(want.size(), NAN), tiled(want.size(), NAN);
            for (int64_t s = 0; s < S; ++s) {
              GemmView v = g;
              v.N = seg;
              v.B = g.B + s * b_seg;
              v.C = want.data() + s * c_seg;
              v.bias = g.bias + s * seg * g.bias_cs;
              k.fn(v, 0, M, 0, seg);
            }
            g.seg = seg, g.b_seg = b_seg, g.c_seg = c_seg;
            g.C = got.data();
            k.fn(g, 0, M, 0, g.N);
            g.C = tiled.data();
            const std::vector<int64_t> rows = random_cuts(M, rng), cols = random_cuts(g.N, rng);
            for (size_t r = 0; r + 1 < rows.size(); ++r)
              for (size_t c = 0; c + 1 < cols.size(); ++c) k.fn(g, rows[r], rows[r + 1], cols[c], cols[c + 1]);
            const std::string what = "seg " + std::to_string(seg) + (ko ? " koff" : " ldb") + " bias " + std::to_string(bias) + " M " + std::to_string(M);
            EXPECT_EQ(std::memcmp(got.data(), want.data(), want.size() * sizeof(float)), 0) << what;
            EXPECT_EQ(std::memcmp(tiled.data(), want.data(), want.size() * sizeof(float)), 0) << what << " tiled";
            int64_t gaps = 0;
            for (int64_t i = 0; i < M; ++i)
              for (int64_t t = 0; t < ldc; ++t) gaps += (t >= S * c_seg || t % c_seg >= seg) && !std::isnan(got[size_t(i * ldc + t)]);
            EXPECT_EQ(gaps, 0) << what << ": written between segments";
          }
  }
}

// A product split along k (GemmView::c_in / c_raw: the first part from zero, stored raw, the
// next ones continuing from C, the last with the epilogue) is the whole product bit for bit, for
// every kernel, with rows by ldb or an offset table, a bias, and parts of any size.
TEST(CpuGemm, ProductSplitAlongKIsTheWholeProduct) {
  std::mt19937 rng(5);
  for (const Named& k : runnable()) {
    SCOPED_TRACE(k.name);
    for (auto [M, N, K, ko] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
             {16, 40, 300, false}, {7, 33, 129, true}, {23, 64, 64, false}, {1, 9, 50, false}}) {
      const Problem p = make(M, N, K, false, 2, unsigned(K + M), ko);
      const auto whole = run(p, k.fn, {0, M}, {0, N});
      std::vector<float> parts(whole.size(), NAN);
      GemmView g = p.view(parts.data());
      const std::vector<int64_t> cuts = random_cuts(K, rng);
      for (size_t c = 0; c + 1 < cuts.size(); ++c) {
        GemmView v = g;
        v.K = cuts[c + 1] - cuts[c];
        v.A = g.A + cuts[c] * g.a_ks;
        if (ko) v.b_koff = g.b_koff + cuts[c];
        else v.B = g.B + cuts[c] * g.ldb;
        v.c_in = c > 0;
        v.c_raw = c + 2 < cuts.size();
        k.fn(v, 0, M, 0, N);
      }
      EXPECT_EQ(std::memcmp(parts.data(), whole.data(), whole.size() * sizeof(float)), 0) << M << "x" << N << "x" << K;
    }
  }
}

TEST(CpuGemm, VectorExpWithinTwoUlpAndPositionIndependent) {
  using ExpFn = void (*)(const float*, float*, int64_t);
  std::vector<std::pair<const char*, ExpFn>> fns{{"generic", almc::onnx::gemm_isa::exp_generic}};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) fns.push_back({"avx2", almc::onnx::gemm_isa::exp_avx2});
  if (__builtin_cpu_supports("avx512f")) fns.push_back({"avx512", almc::onnx::gemm_isa::exp_avx512});
#endif
  std::vector<float> x;
  for (int i = 0; i <= 200000; ++i) x.push_back(-87.3f + 176.0f * float(i) / 200000.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 0.5f, -0.5f, 0.34657359f, 88.72f}) x.push_back(v);
  for (const auto& [name, fn] : fns) {
    SCOPED_TRACE(name);
    std::vector<float> y(x.size());
    fn(x.data(), y.data(), int64_t(x.size()));
    int bad = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = std::exp(double(x[i]));
      // Two units in the last place of the float result (2^-22 relative): the degree-7 polynomial
      // and the two-part ln 2 add well under one; a wrong coefficient or reduction is far above.
      if (!(std::fabs(double(y[i]) - ref) <= ref * 2.4e-7) && ++bad <= 5) ADD_FAILURE() << "e^" << x[i] << " = " << y[i] << ", want " << ref;
    }
    const float special[] = {NAN, INFINITY, -INFINITY, 89.f, -100.f, 1000.f, -1000.f};
    float out[7];
    fn(special, out, 7);
    EXPECT_TRUE(std::isnan(out[0]));
    EXPECT_EQ(out[1], INFINITY);
    EXPECT_EQ(out[2], 0.f);
    EXPECT_EQ(out[3], INFINITY);
    EXPECT_LT(out[4], 1e-37f);
    EXPECT_EQ(out[5], INFINITY);
    EXPECT_EQ(out[6], 0.f);
    // An element's value does not depend on where it sits (full vector or masked tail).
    for (int64_t off : {1, 3, 7, 13}) {
      std::vector<float> z(x.size() - size_t(off));
      fn(x.data() + off, z.data(), int64_t(z.size()));
      EXPECT_EQ(std::memcmp(z.data(), y.data() + off, z.size() * sizeof(float)), 0) << "offset " << off;
    }
  }
}

// vsilu is SiLU's formula x / (1 + e^-x) with that kernel's e^x: per kernel, bit for bit what the
// exp kernel of the negated input followed by the float formula gives, at every position (a
// changed order, a reciprocal instead of the quotient or a lost negation fails).
TEST(CpuGemm, VectorSiluIsTheFormulaOnTheKernelsExp) {
  using Fn = void (*)(const float*, float*, int64_t);
  struct K {
    const char* name;
    Fn exp, silu;
  };
  std::vector<K> ks{{"generic", almc::onnx::gemm_isa::exp_generic, almc::onnx::gemm_isa::silu_generic}};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    ks.push_back({"avx2", almc::onnx::gemm_isa::exp_avx2, almc::onnx::gemm_isa::silu_avx2});
  if (__builtin_cpu_supports("avx512f")) ks.push_back({"avx512", almc::onnx::gemm_isa::exp_avx512, almc::onnx::gemm_isa::silu_avx512});
#endif
  std::vector<float> x;
  for (int i = 0; i <= 20000; ++i) x.push_back(-100.f + 200.f * float(i) / 20000.f);
  for (float v : {0.f, -0.f, 1e-30f, -1e-30f, 88.f, -88.f, 89.f, -89.f, INFINITY, -INFINITY}) x.push_back(v);
  for (const auto& k : ks) {
    SCOPED_TRACE(k.name);
    std::vector<float> neg(x.size()), e(x.size()), want(x.size()), got(x.size());
    for (size_t i = 0; i < x.size(); ++i) neg[i] = -x[i];
    k.exp(neg.data(), e.data(), int64_t(x.size()));
    for (size_t i = 0; i < x.size(); ++i) want[i] = x[i] / (1.f + e[i]);
    for (int64_t off : {0, 1, 5, 11}) {
      const int64_t n = int64_t(x.size()) - off;
      k.silu(x.data() + off, got.data(), n);
      int bad = 0;
      for (int64_t i = 0; i < n; ++i)
        if (std::memcmp(&got[size_t(i)], &want[size_t(i + off)], sizeof(float)) != 0 && ++bad <= 3)
          ADD_FAILURE() << "offset " << off << ": silu(" << x[size_t(i + off)] << ") = " << got[size_t(i)] << ", want "
                        << want[size_t(i + off)];
    }
    // Values: silu(0) = 0, silu(x) -> x for large x, -> -0 for very negative x.
    const float special[] = {0.f, 30.f, -200.f, NAN};
    float out[4];
    k.silu(special, out, 4);
    EXPECT_EQ(out[0], 0.f);
    EXPECT_NEAR(out[1], 30.f, 1e-5f);
    EXPECT_EQ(out[2], 0.f);
    EXPECT_TRUE(std::isnan(out[3]));
  }
}

TEST(CpuGemm, ChosenKernelIsNamed) {
  const std::string name = almc::onnx::gemm_kernel_name();
  EXPECT_TRUE(name == "avx512" || name == "avx2" || name == "generic") << name;
  // The cap the onnx_cpu_gemm_* ctest entries set is honoured (else they would test avx512 again).
  if (const char* cap = std::getenv("ALMC_CPU_GEMM")) {
    if (std::string(cap) == "generic") EXPECT_EQ(name, "generic");
    if (std::string(cap) == "avx2") EXPECT_NE(name, "avx512");
  }
}

namespace {

using VecFn = void (*)(const float*, float*, int64_t);

// The erf kernels this CPU can run, the generic one (std::erf) included.
std::vector<std::pair<const char*, VecFn>> erf_kernels() {
  return runnable_builds<VecFn>(almc::onnx::gemm_isa::erf_generic, almc::onnx::gemm_isa::erf_avx2,
                                almc::onnx::gemm_isa::erf_avx512);
}

// Every erf kernel against double-precision erf over [-6, 6] in steps of ~1.2e-5 plus the special
// values. Tolerance: 3 ulp of the result (the polynomials were measured at 2.4 ulp; GELU networks
// compare with torch at 1e-4, far looser). An odd length exercises the masked last vector.
TEST(CpuErf, EveryKernelWithinThreeUlpOfDoubleErf) {
  const int64_t n = 1000003;
  std::vector<float> x(size_t(n) + 6), y(x.size());
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = -6.f + 12.f * float(i) / float(n - 1);
  const float special[6] = {0.f, -0.f, 4.f, -4.f, 1e-30f, 3.999f};
  for (int k = 0; k < 6; ++k) x[size_t(n + k)] = special[k];
  for (const auto& [name, fn] : erf_kernels()) {
    fn(x.data(), y.data(), int64_t(x.size()));
    double worst = 0;
    int64_t at = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = std::erf(double(x[i]));
      const double ulp = std::nextafter(std::fabs(float(ref)), INFINITY) - std::fabs(float(ref));
      const double err = std::fabs(double(y[i]) - ref) / std::max(ulp, 1e-45);
      if (err > worst) {
        worst = err;
        at = int64_t(i);
      }
    }
    EXPECT_LE(worst, 3.0) << name << " at x = " << x[size_t(at)] << ": " << y[size_t(at)] << " vs "
                          << std::erf(double(x[size_t(at)]));
    // Odd, saturating, and NaN, infinities handled.
    const float odd[4] = {0.3f, -0.3f, 2.5f, -2.5f};
    float r[4];
    fn(odd, r, 4);
    EXPECT_EQ(r[0], -r[1]) << name;
    EXPECT_EQ(r[2], -r[3]) << name;
    const float edge[3] = {NAN, INFINITY, -INFINITY};
    float e[3];
    fn(edge, e, 3);
    EXPECT_TRUE(std::isnan(e[0])) << name;
    EXPECT_EQ(e[1], 1.f) << name;
    EXPECT_EQ(e[2], -1.f) << name;
  }
}

// The worst error of fn(x) against the double function ref, in units in the last place of the
// float nearest ref (the erf test's measure), and the x it happens at.
template <class Ref>
std::pair<double, float> worst_ulp(VecFn fn, const std::vector<float>& x, Ref ref) {
  std::vector<float> y(x.size());
  fn(x.data(), y.data(), int64_t(x.size()));
  double worst = 0;
  float at = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double r = ref(double(x[i]));
    const double ulp = std::nextafter(std::fabs(float(r)), INFINITY) - std::fabs(float(r));
    const double err = std::fabs(double(y[i]) - r) / std::max(ulp, 1e-45);
    if (err > worst) {
      worst = err;
      at = x[i];
    }
  }
  return {worst, at};
}

// An element's value does not depend on where it sits (full vector or masked tail).
void expect_position_independent(VecFn fn, const std::vector<float>& x) {
  std::vector<float> y(x.size());
  fn(x.data(), y.data(), int64_t(x.size()));
  for (int64_t off : {1, 3, 7, 13}) {
    std::vector<float> z(x.size() - size_t(off));
    fn(x.data() + off, z.data(), int64_t(z.size()));
    EXPECT_EQ(std::memcmp(z.data(), y.data() + off, z.size() * sizeof(float)), 0) << "offset " << off;
  }
}

// vtanh's kernels against double tanh over [-10, 10] in steps of ~2e-5 (both sides of the 0.625
// switch of formula, and past 9.1 where tanh rounds to 1), plus tiny values. Tolerance 2.5 ulp
// (measured: 1.32 on AVX2, 1.99 for glibc's tanhf); the special values exactly.
TEST(CpuMath, TanhKernelsWithinTwoUlpOfDoubleTanh) {
  std::vector<float> x;
  for (int i = 0; i <= 1000001; ++i) x.push_back(-10.f + 20.f * float(i) / 1000001.f);
  for (float v : {1e-30f, -1e-30f, 1e-5f, 0.625f, -0.625f, 0.62499994f, 44.f, 100.f}) x.push_back(v);
  for (const auto& [name, fn] : runnable_builds<VecFn>(almc::onnx::gemm_isa::tanh_generic, almc::onnx::gemm_isa::tanh_avx2,
                                                       almc::onnx::gemm_isa::tanh_avx512)) {
    SCOPED_TRACE(name);
    const auto [worst, at] = worst_ulp(fn, x, [](double v) { return std::tanh(v); });
    EXPECT_LE(worst, 2.5) << "at x = " << at;
    const float special[7] = {0.f, -0.f, NAN, INFINITY, -INFINITY, 1000.f, -1000.f};
    float r[7];
    fn(special, r, 7);
    EXPECT_EQ(r[0], 0.f);
    EXPECT_TRUE(std::signbit(r[1]));
    EXPECT_TRUE(std::isnan(r[2]));
    EXPECT_EQ(r[3], 1.f);
    EXPECT_EQ(r[4], -1.f);
    EXPECT_EQ(r[5], 1.f);
    EXPECT_EQ(r[6], -1.f);
    const float odd[4] = {0.3f, -0.3f, 2.5f, -2.5f};
    fn(odd, r, 4);
    EXPECT_EQ(r[0], -r[1]);
    EXPECT_EQ(r[2], -r[3]);
    expect_position_independent(fn, x);
  }
}

// vlog's kernels against double log on a geometric grid from 2^-140 (subnormal) to 3e38, ratio
// 1 + 1e-4, and every float within 2000 steps of 1 (where the result is smallest); 1 ulp
// (measured 0.80 on AVX2, as glibc's logf). vlog1p's on [-0.9999, 1e6] (Softplus feeds it e^x)
// and around 0; 3 ulp (measured 2.25 on AVX2). Special values exactly.
TEST(CpuMath, LogKernelsWithinAnUlpOfDoubleLog) {
  std::vector<float> x;
  for (double v = std::ldexp(1.0, -140); v < 3e38; v *= 1.0001) x.push_back(float(v));
  for (float v = 1.f, w = 1.f, k = 0; k < 2000; ++k) {
    v = std::nextafter(v, 2.f);
    w = std::nextafter(w, 0.f);
    x.push_back(v);
    x.push_back(w);
  }
  for (const auto& [name, fn] : runnable_builds<VecFn>(almc::onnx::gemm_isa::log_generic, almc::onnx::gemm_isa::log_avx2,
                                                       almc::onnx::gemm_isa::log_avx512)) {
    SCOPED_TRACE(name);
    const auto [worst, at] = worst_ulp(fn, x, [](double v) { return std::log(v); });
    EXPECT_LE(worst, 1.0) << "at x = " << at;
    const float special[6] = {0.f, -0.f, -1.f, NAN, INFINITY, 1.f};
    float r[6];
    fn(special, r, 6);
    EXPECT_EQ(r[0], -INFINITY);
    EXPECT_EQ(r[1], -INFINITY);
    EXPECT_TRUE(std::isnan(r[2]));
    EXPECT_TRUE(std::isnan(r[3]));
    EXPECT_EQ(r[4], INFINITY);
    EXPECT_EQ(r[5], 0.f);
    expect_position_independent(fn, x);
  }
  std::vector<float> u;
  for (int i = 0; i <= 400000; ++i) u.push_back(-0.9999f + 2.9999f * float(i) / 400000.f);
  for (double v = 2.0; v < 1e6; v *= 1.0001) u.push_back(float(v));
  for (double v = 1e-30; v < 1e-3; v *= 1.001) {
    u.push_back(float(v));
    u.push_back(float(-v));
  }
  for (const auto& [name, fn] : runnable_builds<VecFn>(almc::onnx::gemm_isa::log1p_generic, almc::onnx::gemm_isa::log1p_avx2,
                                                       almc::onnx::gemm_isa::log1p_avx512)) {
    SCOPED_TRACE(std::string("log1p ") + name);
    const auto [worst, at] = worst_ulp(fn, u, [](double v) { return std::log1p(v); });
    EXPECT_LE(worst, 3.0) << "at x = " << at;
    const float special[5] = {0.f, -1.f, NAN, INFINITY, -2.f};
    float r[5];
    fn(special, r, 5);
    EXPECT_EQ(r[0], 0.f);
    EXPECT_EQ(r[1], -INFINITY);
    EXPECT_TRUE(std::isnan(r[2]));
    EXPECT_EQ(r[3], INFINITY);
    EXPECT_TRUE(std::isnan(r[4]));
    expect_position_independent(fn, u);
  }
}

}  // namespace

// im2col_row (cuda/onnx/ops.cuh, both backends) against its definition, element by element: column
// ow of row (c, kh, kw, b, oh) is x[c, oh*sh - ph + kh*dh, ow*sw - pw + kw*dw], zero outside the
// image, for strides 1-3, dilations 1-2, pads 0-3 and widths where the last window ends inside,
// on and past the edge (an off-by-one in the clipped column range fails).
TEST(OnnxIm2col, RowsMatchTheDefinition) {
  int checked = 0;
  for (int64_t W : {1, 5, 8, 9})
    for (int64_t sw : {1, 2, 3})
      for (int64_t dw : {1, 2})
        for (int64_t pw : {0, 1, 3})
          for (int64_t KW : {1, 3}) {
            const int64_t H = 3, C = 2, KH = 2, sh = 1, dh = 1, ph = 1;
            const int64_t ew = W + 2 * pw - dw * (KW - 1) - 1;
            if (ew < 0) continue;
            almc::onnx::ConvParams p{};
            p.N = 1, p.C = C, p.H = H, p.W = W, p.M = 1, p.KH = KH, p.KW = KW, p.group = 1;
            p.sh = sh, p.sw = sw, p.ph = ph, p.pw = pw, p.dh = dh, p.dw = dw;
            p.OH = (H + 2 * ph - dh * (KH - 1) - 1) / sh + 1;
            p.OW = ew / sw + 1;
            std::vector<float> x(size_t(C * H * W));
            for (size_t i = 0; i < x.size(); ++i) x[i] = float(i + 1);
            p.x = x.data();
            std::vector<float> col(size_t(C * KH * KW * p.OH * p.OW), -1.f);
            for (int64_t c = 0; c < C; ++c)
              for (int64_t kh = 0; kh < KH; ++kh)
                for (int64_t kw = 0; kw < KW; ++kw)
                  for (int64_t oh = 0; oh < p.OH; ++oh) {
                    almc::onnx::im2col_row(p, col.data(), 0, 1, 0, c, kh, kw, 0, oh, 0, p.OW);
                    const float* row = col.data() + ((c * KH + kh) * KW + kw) * p.OH * p.OW + oh * p.OW;
                    for (int64_t ow = 0; ow < p.OW; ++ow, ++checked) {
                      const int64_t ih = oh * sh - ph + kh * dh, iw = ow * sw - pw + kw * dw;
                      const float want = ih >= 0 && ih < H && iw >= 0 && iw < W ? x[size_t((c * H + ih) * W + iw)] : 0.f;
                      ASSERT_EQ(row[ow], want) << "W " << W << " sw " << sw << " dw " << dw << " pw " << pw << " KW " << KW
                                               << " kw " << kw << " ow " << ow;
                    }
                  }
          }
  EXPECT_GT(checked, 1000);
}

// A batched GEMM's offsets collapse to one stride exactly when they are that stride times the flat
// batch index (the CUDA backend then issues one strided-batched call): checked against the
// per-item offsets for contiguous, padded, broadcast and extent-1 batch dimensions.
TEST(CpuGemm, UniformBatchStrideOnlyWhenEveryOffsetIsLinear) {
  using almc::onnx::GemmParams;
  struct Case {
    std::vector<int64_t> shape, stride;
    int64_t expect;  // the collapsed stride, or -1
  };
  const Case cases[] = {
      {{4, 8}, {8 * 64, 64}, 64},          // [n, heads] contiguous: one stride
      {{4, 1, 8}, {8 * 64, 7, 64}, 64},    // an extent-1 dimension's stride is never used
      {{4, 8}, {0, 0}, 0},                 // broadcast over the whole batch
      {{4, 8}, {64, 0}, -1},               // broadcast over heads only
      {{4, 8}, {0, 64}, -1},               // broadcast over n only
      {{4, 8}, {9 * 64, 64}, -1},          // padded between n
      {{4, 8}, {64, 4 * 64}, -1},          // transposed batch dimensions
      {{5}, {33}, 33},
      {{1, 1}, {5, 9}, 0},                 // a batch of one
  };
  for (const Case& k : cases) {
    GemmParams p{};
    p.batch_ndim = int(k.shape.size());
    p.batch = 1;
    for (size_t i = 0; i < k.shape.size(); ++i) {
      p.batch_shape[i] = k.shape[i];
      p.batch_stride_a[i] = p.batch_stride_b[i] = p.batch_stride_c[i] = k.stride[i];
      p.batch *= k.shape[i];
    }
    const int64_t got = almc::onnx::gemm_uniform_batch_stride(p, p.batch_stride_a);
    EXPECT_EQ(got, k.expect) << "case with " << k.shape.size() << " dims, first stride " << k.stride[0];
    int64_t first = 0, ob, oc;  // item 1's offset: the only stride a linear layout can have
    if (p.batch > 1) almc::onnx::gemm_batch_offsets(p, 1, first, ob, oc);
    bool linear = true;
    for (int64_t b = 0; b < p.batch; ++b) {
      int64_t oa;
      almc::onnx::gemm_batch_offsets(p, b, oa, ob, oc);
      if (got >= 0) EXPECT_EQ(oa, b * got) << "item " << b;
      linear = linear && oa == b * first;
    }
    if (got < 0) EXPECT_FALSE(linear) << "a linear layout was not collapsed";
  }
}
