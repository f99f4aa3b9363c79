// The CPU GEMM (cpu_gemm.hpp) with AVX-512F, compiled with -mavx512f -mfma and called only when
// the CPU has them. Only intrinsics and cpu_gemm_tile.hpp's templates (internal linkage through
// Vec) are used here: no shared inline code the linker could take from this file for another.
#include <immintrin.h>

#include "host/onnx/cpu_gemm_tile.hpp"

namespace almc::onnx::gemm_isa {
namespace {

#include "host/onnx/cpu_gemm_vec512.hpp"  // struct Vec, inside this unnamed namespace

}  // namespace

void tile_avx512(const GemmView& g, int64_t i0, int64_t i1, int64_t j0, int64_t j1) { tiles::tile<Vec>(g, i0, i1, j0, j1); }
void exp_avx512(const float* x, float* y, int64_t n) { tiles::exp_n<Vec>(x, y, n); }
void erf_avx512(const float* x, float* y, int64_t n) { tiles::erf_n<Vec>(x, y, n); }
void silu_avx512(const float* x, float* y, int64_t n) { tiles::silu_n<Vec>(x, y, n); }
void tanh_avx512(const float* x, float* y, int64_t n) { tiles::tanh_n<Vec>(x, y, n); }
void log_avx512(const float* x, float* y, int64_t n) { tiles::log_n<Vec>(x, y, n); }
void log1p_avx512(const float* x, float* y, int64_t n) { tiles::log1p_n<Vec>(x, y, n); }
int64_t padded_cols_avx512(int64_t rows, int64_t cols) { return tiles::padded_cols<Vec>(rows, cols); }
int64_t vector_cols_avx512() { return Vec::kW; }

}  // namespace almc::onnx::gemm_isa
