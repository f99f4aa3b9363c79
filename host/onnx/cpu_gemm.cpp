// The CPU GEMM's portable kernel and the choice of kernel (see cpu_gemm.hpp).
#include "host/onnx/cpu_gemm.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>

namespace almc::onnx {
namespace gemm_isa {

// Plain C++: each element's products and sums are separate float operations in increasing k (the
// build keeps the compiler from contracting them), so vectorised and scalar code round alike.
void tile_generic(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  constexpr int64_t kCols = 64;
  float acc[kCols];
  for (int64_t i = i0; i < i1; ++i)
    for (int64_t j = j0; j < j1; j += kCols) {
      const int64_t n = j1 - j < kCols ? j1 - j : kCols;
      for (int64_t t = 0; t < n; ++t) acc[t] = 0.f;
      const float* a = g.A + i * g.a_rs;
      for (int64_t k = 0; k < g.K; ++k, a += g.a_ks) {
        const float* b = g.B + (g.b_koff ? g.b_koff[k] : k * g.ldb) + j;
        const float av = *a;
        for (int64_t t = 0; t < n; ++t) {
          const float prod = av * b[t];
          acc[t] = acc[t] + prod;
        }
      }
      float* c = g.C + i * g.ldc + j;
      for (int64_t t = 0; t < n; ++t) {
        float y = acc[t] * g.alpha;
        if (g.bias) y = y + g.beta * g.bias[i * g.bias_rs + (j + t) * g.bias_cs];
        c[t] = y;
      }
    }
}

void exp_generic(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

}  // namespace gemm_isa

namespace {

using TileFn = void (*)(const GemmView&, int64_t, int64_t, int64_t, int64_t);
using ExpFn = void (*)(const float*, float*, int64_t);

struct Kernel {
  TileFn fn;
  ExpFn exp;
  const char* name;
};

Kernel choose() {
  const char* cap = std::getenv("ALMC_CPU_GEMM");
  const bool allow512 = !cap || !std::strcmp(cap, "avx512");
  const bool allow2 = allow512 || !std::strcmp(cap, "avx2");
#if defined(__x86_64__) && defined(ALMC_CPU_GEMM_X86)
  __builtin_cpu_init();
  if (allow512 && __builtin_cpu_supports("avx512f")) return {gemm_isa::tile_avx512, gemm_isa::exp_avx512, "avx512"};
  if (allow2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return {gemm_isa::tile_avx2, gemm_isa::exp_avx2, "avx2"};
#else
  (void)allow2;
#endif
  return {gemm_isa::tile_generic, gemm_isa::exp_generic, "generic"};
}

const Kernel& kernel() {
  static const Kernel k = choose();
  return k;
}

}  // namespace

void gemm_tile(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
  if (i0 >= i1 || j0 >= j1) return;
  kernel().fn(g, i0, i1, j0, j1);
}

const char* gemm_kernel_name() { return kernel().name; }

void vexp(const float* x, float* y, int64_t n) {
  if (n > 0) kernel().exp(x, y, n);
}

}  // namespace almc::onnx
