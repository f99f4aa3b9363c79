// The CPU GEMM's portable kernel and the choice of kernel (see cpu_gemm.hpp).
#include "host/onnx/cpu_gemm.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace almc::onnx {

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);  // NaN: kept, quiet
  uint32_t r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;                     // to nearest even
  if ((r & 0x7F80u) == 0) r &= 0x8000u;                                     // no subnormals
  return uint16_t(r);
}

float bf16_pair(uint16_t lo, uint16_t hi) {
  const uint32_t w = uint32_t(lo) | (uint32_t(hi) << 16);
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

namespace gemm_isa {

// Plain C++: each element's products and sums are separate float operations in increasing k (the
// build keeps the compiler from contracting them), so vectorised and scalar code round alike.
void tile_generic(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if (g.seg)
    return for_each_segment(g, j0, j1, [&](const GemmView& v, int64_t t0, int64_t t1) { tile_generic(v, i0, i1, t0, t1); });
  constexpr int64_t kCols = 64;
  float acc[kCols];
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; j += kCols) {
      const int64_t n = j1 - j < kCols ? j1 - j : kCols;
      float* c = g.C + i * g.ldc + j;
      for (int64_t t = 0; t < n; ++t) acc[t] = g.c_in ? c[t] : 0.f;
      const float* a = g.K > 0 ? g.A + i * g.a_rs : nullptr;  // K == 0: A may be empty (null)
      for (int64_t k = 0; k < g.K; ++k, a += g.a_ks) {
        const float* b = g.B + (g.b_koff ? g.b_koff[k] : k * g.ldb) + j;
        const float av = *a;
        for (int64_t t = 0; t < n; ++t) {
          const float prod = av * b[t];
          acc[t] = acc[t] + prod;
        }
      }
      if (g.c_raw) {
        for (int64_t t = 0; t < n; ++t) c[t] = acc[t];
        continue;
      }
      for (int64_t t = 0; t < n; ++t) {
        float y = acc[t] * g.alpha;
        if (g.bias) y = y + g.beta * g.bias[i * g.bias_rs + (j + t) * g.bias_cs];
        c[t] = y;
      }
    }
}

int64_t padded_cols_generic(int64_t, int64_t cols) { return cols; }  // no vectors, no masks
int64_t vector_cols_generic() { return 1; }

void exp_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void erf_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::erf(x[i]);
}

void silu_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] / (1.f + std::exp(-x[i]));
}

void tanh_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::tanh(x[i]);
}

void log_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::log(x[i]);
}

void log1p_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::log1p(x[i]);
}

void pack_rows_bf16_generic(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs) {
  const int64_t Kp = (g.K + 1) / 2;
  for (int64_t r = 0; r < rows && Kp > 0; ++r) {
    const float* a = g.A + (i0 + r) * g.a_rs;
    for (int64_t p = 0; p < Kp; ++p) {
      const uint16_t hi = 2 * p + 1 < g.K ? to_bf16(a[(2 * p + 1) * g.a_ks]) : 0;
      out[r * out_rs + p] = bf16_pair(to_bf16(a[2 * p * g.a_ks]), hi);
    }
  }
}

void pack_cols_bf16_generic(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld) {
  const int64_t Kp = (g.K + 1) / 2;
  auto row = [&](int64_t k) { return g.B + (g.b_koff ? g.b_koff[k] : k * g.ldb) + j0; };
  for (int64_t p = 0; p < Kp; ++p) {
    const float* lo = row(2 * p);
    const float* hi = 2 * p + 1 < g.K ? row(2 * p + 1) : nullptr;
    for (int64_t t = 0; t < cols; ++t) out[p * out_ld + t] = bf16_pair(to_bf16(lo[t]), hi ? to_bf16(hi[t]) : 0);
  }
}

namespace {

// One BF16 member of a pair word, as the float it stands for.
float member(float word, bool high) {
  uint32_t w;
  std::memcpy(&w, &word, 4);
  w = high ? (w & 0xFFFF0000u) : (w << 16);
  float f;
  std::memcpy(&f, &w, 4);
  return f;
}

// acc (+) a b (cpu_gemm.hpp): the exact sum rounded to 24 significant bits, to nearest even, as if
// the exponent range were unbounded; a result below 2^-126 in magnitude becomes a zero of its sign.
// a b is exact in double (8-bit significands, exponents far inside double's range), and rounding
// acc + a b first to double and then to 24 bits is the correct single rounding: double carries
// more than twice 24 bits and both operands have at most 24 (Figueroa). Near the threshold the
// 24-bit rounding is done on the sum scaled by 2^64, where float is normal.
float dp_step(float acc, float a, float b) {
  const double p = double(a) * double(b), s = double(acc) + p;
  if (std::fabs(s) < 0x1p-100 && std::fabs(float(s * 0x1p64)) < 0x1p-62f) return std::signbit(s) ? -0.f : 0.f;
  return float(s);
}

}  // namespace

// Element by element, each exactly as cpu_gemm.hpp specifies (a pair's odd member first).
void tile_bf16_generic(const GemmView& w, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; ++j) {
      float acc = 0.f;
      for (int64_t p = 0; p < w.K; ++p) {
        const float a = w.A[i * w.a_rs + p], b = w.B[p * w.ldb + j];
        acc = dp_step(acc, member(a, true), member(b, true));
        acc = dp_step(acc, member(a, false), member(b, false));
      }
      float y = acc * w.alpha;
      if (w.bias) y = y + w.beta * w.bias[i * w.bias_rs + j * w.bias_cs];
      w.C[i * w.ldc + j] = y;
    }
}


// BF16: the operands not packed in advance are packed here (A's rows once, B by panels of
// columns), then the kernel runs on pair words. Packing changes no value, so the element bits are
// those of cpu_gemm.hpp's formula whatever the panels.
void tile_bf16(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1, TileFn tile, PackFn pack_rows,
               PackFn pack_cols) {
  if (g.seg)
    return for_each_segment(g, j0, j1, [&](const GemmView& v, int64_t t0, int64_t t1) {
      tile_bf16(v, i0, i1, t0, t1, tile, pack_rows, pack_cols);
    });
  constexpr int64_t kPanel = 64;
  thread_local std::vector<float> abuf, bbuf;  // per thread, grown once
  const int64_t Kp = (g.K + 1) / 2, rows = i1 - i0, cols = j1 - j0;
  GemmView w;  // rows i0.., columns j0.. of g as rows and columns 0..
  w.M = rows;
  w.N = cols;
  w.K = Kp;
  w.C = g.C + i0 * g.ldc + j0;
  w.ldc = g.ldc;
  w.alpha = g.alpha;
  w.beta = g.beta;
  w.bias = g.bias ? g.bias + i0 * g.bias_rs + j0 * g.bias_cs : nullptr;
  w.bias_rs = g.bias_rs;
  w.bias_cs = g.bias_cs;
  if (g.A16) {
    w.A = g.A16 + i0 * g.a16_rs;
    w.a_rs = g.a16_rs;
  } else {
    abuf.resize(size_t(std::max<int64_t>(1, rows * Kp)));
    pack_rows(g, i0, rows, abuf.data(), Kp);
    w.A = abuf.data();
    w.a_rs = Kp;
  }
  if (g.B16) {
    w.B = g.B16 + j0;
    w.ldb = g.b16_ld;
    return tile(w, 0, rows, 0, cols);
  }
  bbuf.resize(size_t(std::max<int64_t>(1, Kp * kPanel)));
  for (int64_t j = 0; j < cols; j += kPanel) {
    const int64_t n = std::min(kPanel, cols - j);
    pack_cols(g, j0 + j, n, bbuf.data(), n);
    GemmView p = w;
    p.N = n;
    p.B = bbuf.data();
    p.ldb = n;
    p.C = w.C + j;
    if (w.bias) p.bias = w.bias + j * g.bias_cs;
    tile(p, 0, rows, 0, n);
  }
}

}  // namespace gemm_isa

namespace {

using ExpFn = void (*)(const float*, float*, int64_t);

struct Kernel {
  gemm_isa::TileFn fn;
  ExpFn exp, erf, silu, tanh, log, log1p;
  const char* name;
  int64_t (*padded)(int64_t, int64_t);
  int64_t (*vector)();
};

Kernel choose() {
  const char* cap = std::getenv("ALMC_CPU_GEMM");
  const bool allow512 = !cap || !std::strcmp(cap, "avx512");
  const bool allow2 = allow512 || !std::strcmp(cap, "avx2");
#if defined(__x86_64__) && defined(ALMC_CPU_GEMM_X86)
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f")) return {gemm_isa::tile_avx512, gemm_isa::exp_avx512, gemm_isa::erf_avx512, gemm_isa::silu_avx512, gemm_isa::tanh_avx512, gemm_isa::log_avx512, gemm_isa::log1p_avx512, "avx512", gemm_isa::padded_cols_avx512, gemm_isa::vector_cols_avx512};
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {gemm_isa::tile_avx2, gemm_isa::exp_avx2, gemm_isa::erf_avx2, gemm_isa::silu_avx2, gemm_isa::tanh_avx2, gemm_isa::log_avx2, gemm_isa::log1p_avx2, "avx2", gemm_isa::padded_cols_avx2, gemm_isa::vector_cols_avx2};
#else
  (void)allow2;
#endif
  return {gemm_isa::tile_generic, gemm_isa::exp_generic, gemm_isa::erf_generic, gemm_isa::silu_generic, gemm_isa::tanh_generic, gemm_isa::log_generic, gemm_isa::log1p_generic, "generic", gemm_isa::padded_cols_generic, gemm_isa::vector_cols_generic};
}

const Kernel& kernel() {
  static const Kernel k = choose();
  return k;
}

struct Bf16Kernel {
  gemm_isa::TileFn tile;
  gemm_isa::PackFn rows, cols;
  const char* name;
};

Bf16Kernel choose_bf16() {
  const char* cap = std::getenv("ALMC_CPU_GEMM");
  const bool allow512 = !cap || !std::strcmp(cap, "avx512");
#if defined(__x86_64__) && defined(ALMC_CPU_GEMM_X86)
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"))
    return {gemm_isa::tile_bf16_avx512, gemm_isa::pack_rows_bf16_avx512, gemm_isa::pack_cols_bf16_avx512, "avx512bf16"};
#else
  (void)allow512;
#endif
  return {gemm_isa::tile_bf16_generic, gemm_isa::pack_rows_bf16_generic, gemm_isa::pack_cols_bf16_generic, "generic"};
}

const Bf16Kernel& kernel_bf16() {
  static const Bf16Kernel k = choose_bf16();
  return k;
}

}  // namespace

void gemm_tile(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if (i0 >= i1 || j0 >= j1) return;
  if (g.bf16) {
    const Bf16Kernel& k = kernel_bf16();
    return gemm_isa::tile_bf16(g, i0, i1, j0, j1, k.tile, k.rows, k.cols);
  }
  kernel().fn(g, i0, i1, j0, j1);
}

const char* gemm_kernel_name() { return kernel().name; }

int64_t gemm_padded_cols(int64_t rows, int64_t cols) { return kernel().padded(rows, cols); }
int64_t gemm_vector_cols() { return kernel().vector(); }
const char* gemm_bf16_kernel_name() { return kernel_bf16().name; }

void pack_rows_bf16(const GemmView& g, int64_t i0, int64_t rows, float* out, int64_t out_rs) {
  kernel_bf16().rows(g, i0, rows, out, out_rs);
}
void pack_cols_bf16(const GemmView& g, int64_t j0, int64_t cols, float* out, int64_t out_ld) {
  kernel_bf16().cols(g, j0, cols, out, out_ld);
}

void vexp(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().exp(x, y, n);
}

void verf(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().erf(x, y, n);
}

void vsilu(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().silu(x, y, n);
}

void vtanh(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().tanh(x, y, n);
}

void vlog(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().log(x, y, n);
}

void vlog1p(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().log1p(x, y, n);
}

}  // namespace almc::onnx
