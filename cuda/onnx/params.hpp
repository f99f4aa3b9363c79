// Flat parameter structs of the ONNX executor's kernels, shared by the CPU kernels
// (host/onnx/cpu_kernels.cpp) and the CUDA kernels (cuda/onnx/kernels.cu). Plain C++: no CUDA
// headers; the per-element math is marked host+device only when compiled by nvcc.
#pragma once
#include <cmath>
#include <cstdint>

#ifdef __CUDACC__
#define ALMC_OHD __host__ __device__ __forceinline__
#else
#define ALMC_OHD inline
#endif

namespace almc::onnx {

constexpr int kMaxDims = 8;     // rank limit of every runtime tensor
constexpr int kMaxEwIn = 8;     // inputs of one fused elementwise program
constexpr int kMaxEwInstr = 24; // instructions of one fused elementwise program
constexpr int kMaxEwRegs = 12;  // registers of one fused elementwise program

// Elementwise operations. Unary ops read a; binary a, b; Where reads c ? a : b.
enum EwOp : uint8_t {
  EW_COPY, EW_NEG, EW_ABS, EW_SQRT, EW_RECIP, EW_EXP, EW_LOG, EW_SIN, EW_COS, EW_TANH, EW_SIGMOID, EW_RELU,
  EW_LEAKY_RELU, EW_ELU, EW_SOFTPLUS, EW_ERF, EW_FLOOR, EW_CEIL, EW_SILU, EW_CLIP, EW_AFFINE,
  EW_ADD, EW_SUB, EW_MUL, EW_DIV, EW_POW, EW_MAX, EW_MIN, EW_EQUAL, EW_LESS, EW_GREATER, EW_LESS_EQ, EW_GREATER_EQ,
  EW_AND, EW_OR, EW_NOT, EW_WHERE,
  // Unary, with alpha/beta where the ONNX op has attributes (HardSigmoid alpha, beta; Selu alpha,
  // gamma in beta; Celu alpha).
  EW_HARD_SIGMOID, EW_HARD_SWISH, EW_SELU, EW_SOFTSIGN, EW_SIGN, EW_ROUND, EW_TRUNC, EW_MISH, EW_CELU,
  // Unary: the inverse and hyperbolic trigonometric functions; IsNaN, IsInf (detect_negative in
  // alpha, detect_positive in beta; 1 or 0, bool outputs).
  EW_TAN, EW_ASIN, EW_ACOS, EW_ATAN, EW_SINH, EW_COSH, EW_ASINH, EW_ACOSH, EW_ATANH, EW_ISNAN, EW_ISINF,
  // Binary: Mod (fmod 0: the sign of the divisor, as Python's %) and Mod with fmod 1 (C's fmod).
  EW_MOD, EW_FMOD,
  // Unary: GELU, exact (x Phi(x), through erf) and with the tanh approximation (ONNX Gelu's
  // approximate = "none" / "tanh"; the planner also recognises the subgraphs torch exports for
  // them, gelu_match.cpp).
  EW_GELU, EW_GELU_TANH,
  EW_COUNT
};

ALMC_OHD bool ew_is_binary(int op) { return (op >= EW_ADD && op <= EW_OR) || op == EW_MOD || op == EW_FMOD; }

// GELU's parts, shared with the CPU's vectorised path (cpu_kernels.cpp): exact GELU is
// gelu_from_erf(a, erf(gelu_erf_arg(a))); the tanh form is a / (1 + e^gelu_tanh_m2z(a)), as
// 0.5 a (1 + tanh z) = a / (1 + e^{-2z}) with z = sqrt(2/pi) (a + 0.044715 a^3).
template <class T>
ALMC_OHD T gelu_erf_arg(T a) {
  return a * T(0.70710678118654752440);
}
template <class T>
ALMC_OHD T gelu_from_erf(T a, T erf_arg) {
  return T(0.5) * a * (T(1) + erf_arg);
}
template <class T>
ALMC_OHD T gelu_tanh_m2z(T a) {
  return (a + T(0.044715) * a * a * a) * T(-1.5957691216057307117597842397375);
}

// Elu, Softplus and Mish around their exponential, logarithm and tanh, shared with the CPU's
// vectorised path (cpu_kernels.cpp), which computes those three by vector kernels: Elu is
// elu_from_exp(a, e^a), Softplus softplus_from_log1p(a, log1p(e^a)) (a itself above 20, where
// log1p(e^a) rounds to a), Mish a tanh(Softplus(a)).
template <class T>
ALMC_OHD T elu_from_exp(T a, T exp_a, float alpha) {
  return a >= T(0) ? a : T(alpha) * (exp_a - T(1));
}
template <class T>
ALMC_OHD T softplus_from_log1p(T a, T log1p_exp_a) {
  return a > T(20) ? a : log1p_exp_a;
}

// One op on floats; alpha/beta are the op's attributes (LeakyRelu/Elu alpha, Clip bounds, affine
// scale and shift). Shared by the CPU executor, the CUDA kernels and constant folding (in double).
template <class T>
ALMC_OHD T ew_apply(int op, T a, T b, T c, float alpha, float beta) {
  using std::ceil; using std::cos; using std::erf; using std::exp; using std::floor; using std::log;
  using std::log1p; using std::pow; using std::sin; using std::sqrt; using std::tanh; using std::tan; using std::asin;
  using std::acos; using std::atan; using std::sinh; using std::cosh; using std::asinh; using std::acosh; using std::atanh;
  using std::fmod;
  switch (op) {
    case EW_COPY: return a;
    case EW_NEG: return -a;
    case EW_ABS: return a < T(0) ? -a : a;
    case EW_SQRT: return sqrt(a);
    case EW_RECIP: return T(1) / a;
    case EW_EXP: return exp(a);
    case EW_LOG: return log(a);
    case EW_SIN: return sin(a);
    case EW_COS: return cos(a);
    case EW_TANH: return tanh(a);
    case EW_SIGMOID: return T(1) / (T(1) + exp(-a));
    case EW_RELU: return a > T(0) ? a : T(0);
    case EW_LEAKY_RELU: return a >= T(0) ? a : T(alpha) * a;
    case EW_ELU: return elu_from_exp(a, exp(a), alpha);
    case EW_SOFTPLUS: return softplus_from_log1p(a, log1p(exp(a)));
    case EW_ERF: return erf(a);
    case EW_FLOOR: return floor(a);
    case EW_CEIL: return ceil(a);
    case EW_SILU: return a / (T(1) + exp(-a));
    case EW_CLIP: return a < T(alpha) ? T(alpha) : (a > T(beta) ? T(beta) : a);
    case EW_AFFINE: return T(alpha) * a + T(beta);
    case EW_ADD: return a + b;
    case EW_SUB: return a - b;
    case EW_MUL: return a * b;
    case EW_DIV: return a / b;
    case EW_POW: return b == T(2) ? a * a : (b == T(1) ? a : pow(a, b));
    case EW_MAX: return a > b ? a : b;
    case EW_MIN: return a < b ? a : b;
    case EW_EQUAL: return a == b ? T(1) : T(0);
    case EW_LESS: return a < b ? T(1) : T(0);
    case EW_GREATER: return a > b ? T(1) : T(0);
    case EW_LESS_EQ: return a <= b ? T(1) : T(0);
    case EW_GREATER_EQ: return a >= b ? T(1) : T(0);
    case EW_AND: return (a != T(0) && b != T(0)) ? T(1) : T(0);
    case EW_OR: return (a != T(0) || b != T(0)) ? T(1) : T(0);
    case EW_NOT: return a == T(0) ? T(1) : T(0);
    case EW_WHERE: return c != T(0) ? a : b;
    case EW_HARD_SIGMOID: {
      const T v = T(alpha) * a + T(beta);
      return v < T(0) ? T(0) : (v > T(1) ? T(1) : v);
    }
    case EW_HARD_SWISH: {
      const T v = a / T(6) + T(0.5);
      return a * (v < T(0) ? T(0) : (v > T(1) ? T(1) : v));
    }
    case EW_SELU: return T(beta) * (a > T(0) ? a : T(alpha) * (exp(a) - T(1)));
    case EW_SOFTSIGN: return a / (T(1) + (a < T(0) ? -a : a));
    case EW_SIGN: return a > T(0) ? T(1) : (a < T(0) ? T(-1) : T(0));
    case EW_ROUND: {  // halves to even, like ONNX Round
      const T f = floor(a), d = a - f;
      if (d > T(0.5)) return f + T(1);
      if (d < T(0.5)) return f;
      return f - T(2) * floor(f / T(2)) != T(0) ? f + T(1) : f;
    }
    case EW_TRUNC: return a < T(0) ? ceil(a) : floor(a);
    case EW_MISH: return a * tanh(softplus_from_log1p(a, log1p(exp(a))));
    case EW_CELU: return a >= T(0) ? a : T(alpha) * (exp(a / T(alpha)) - T(1));
    case EW_TAN: return tan(a);
    case EW_ASIN: return asin(a);
    case EW_ACOS: return acos(a);
    case EW_ATAN: return atan(a);
    case EW_SINH: return sinh(a);
    case EW_COSH: return cosh(a);
    case EW_ASINH: return asinh(a);
    case EW_ACOSH: return acosh(a);
    case EW_ATANH: return atanh(a);
    case EW_ISNAN: return a != a ? T(1) : T(0);
    case EW_ISINF: {  // a - a is NaN exactly for the infinities (and NaN, excluded first)
      const bool inf = a == a && (a - a) != (a - a);
      return inf && ((a > T(0) && beta != 0.f) || (a < T(0) && alpha != 0.f)) ? T(1) : T(0);
    }
    case EW_MOD: {  // the sign of the divisor: a - floor(a / b) b, exact through fmod
      const T r = fmod(a, b);
      return r != T(0) && ((r < T(0)) != (b < T(0))) ? r + b : r;
    }
    case EW_FMOD: return fmod(a, b);
    case EW_GELU: return gelu_from_erf(a, erf(gelu_erf_arg(a)));
    case EW_GELU_TANH: return a / (T(1) + exp(gelu_tanh_m2z(a)));
    default: return a;
  }
}

struct EwInstr {
  uint8_t op, dst, a, b, c;
  float alpha, beta;
};

// out[i] = program(inputs broadcast to `shape`). Registers 0..n_in-1 hold the inputs.
struct EwParams {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t total;
  int n_in;
  const float* in[kMaxEwIn];
  int64_t stride[kMaxEwIn][kMaxDims];  // element strides, 0 on broadcast dimensions
  bool contiguous[kMaxEwIn];           // same shape as the output: linear index
  bool scalar[kMaxEwIn];               // one element
  int n_instr;
  EwInstr instr[kMaxEwInstr];
  int out_reg;
  float* out;
};

// y[b] = alpha op(A[b]) op(B[b]) (+ bias) then activation, row-major. Batch b walks up to
// kMaxDims broadcast dimensions with their own strides for A, B and C.
enum BiasKind : uint8_t { BIAS_NONE, BIAS_ROW /* bias[N], per column */, BIAS_COL /* bias[M] */, BIAS_FULL /* C[M,N] */ };
struct GemmParams {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha, beta;  // beta multiplies the bias term
  const float* A;
  const float* B;
  float* C;
  int64_t lda, ldb, ldc;
  int batch_ndim;
  int64_t batch_shape[kMaxDims];
  int64_t batch_stride_a[kMaxDims], batch_stride_b[kMaxDims], batch_stride_c[kMaxDims];
  int64_t batch;  // product of batch_shape
  BiasKind bias_kind;
  const float* bias;
  int64_t bias_ld;  // BIAS_FULL: row stride of the bias (0 broadcasts one row)
  int act;          // an EwOp applied to the result, EW_COPY for none
  float act_alpha;
};

// Convolution (groups, strides, pads, dilations) on [N, C, H, W], weight [M, C/g, KH, KW].
// ConvTranspose: weight [C, M/g, KH, KW]. `col` is workspace of col_elems floats.
struct ConvParams {
  int64_t N, C, H, W, M, KH, KW, OH, OW, group;
  int64_t sh, sw, ph, pw, dh, dw;
  const float* x;
  const float* w;
  const float* bias;  // [M] or null
  float* y;
  float* col;        // workspace: im2col and GEMM result for `chunk` images
  int64_t col_elems;
  int64_t chunk;     // images per GEMM
  int act;
  float act_alpha;
};

// Strided copy: out[out_off + sum i_k out_stride_k] = in[in_off + sum i_k in_stride_k].
struct CopyParams {
  int ndim;
  int64_t shape[kMaxDims];
  int64_t in_stride[kMaxDims];
  int64_t out_stride[kMaxDims];
  int64_t total;
  const float* in;
  float* out;
};

// out[o, j, i] = data[o, idx[j], i]; indices held as floats (negative wrap around).
struct GatherParams {
  int64_t outer, axis_len, n_idx, inner;
  const float* data;
  const float* idx;
  float* out;
};

// Softmax over the middle index of [outer, len, inner].
struct SoftmaxParams {
  int64_t outer, len, inner;
  bool log;
  const float* x;
  float* y;
};

// Normalise each row of [rows, len] and apply a per-channel affine map and an activation:
//   y = act((x - mean) / sqrt(var + eps) * scale[c] + bias[c]),  c = (e / seg) % nch,
// e = r * len + i being the element's linear index. seg divides len, so a row is whole segments of
// seg elements sharing one channel. LayerNorm: seg 1, nch len (a column's own scale);
// InstanceNorm / GroupNorm: seg len, nch groups (one per row, cycling over the batch); a fused
// affine that follows (torch's GroupNorm: per-channel Mul and Add after the reshape) makes seg the
// spatial size and nch the channels. scale / bias null: 1 / 0. act: an EwOp (EW_COPY for none)
// with its attributes act_alpha, act_beta.
struct NormParams {
  int64_t rows, len;
  int64_t seg, nch;
  float eps;
  const float* scale;
  const float* bias;
  int act;
  float act_alpha, act_beta;
  const float* x;
  float* y;
};

// Reduction (sum or mean; extreme 1: max, -1: min) over `rdims` with strides; output enumerated
// by `odims`.
struct ReduceParams {
  int ondim, rndim;
  int64_t oshape[kMaxDims], ostride[kMaxDims];
  int64_t rshape[kMaxDims], rstride[kMaxDims];
  int64_t out_total, red_total;
  bool mean;
  int extreme;
  const float* x;
  float* y;
};

// 2-D pooling on [N*C, H, W].
struct PoolParams {
  int64_t NC, H, W, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw;
  bool max, count_include_pad;
  const float* x;
  float* y;
};

// Resize of the last two dims of [NC, H, W]; the source coordinate of an output index follows
// the coordinate transformation mode `coord` at the axis's scale (output / input: the model's
// scale, or the sizes' ratio), in float32 (ops.cuh resize_source); nearest rounding mode, linear
// or cubic (Keys' kernel with coefficient cubic_a; exclude_outside drops the taps outside the input).
enum ResizeNearest : uint8_t { NEAREST_ROUND_PREFER_FLOOR, NEAREST_ROUND_PREFER_CEIL, NEAREST_FLOOR, NEAREST_CEIL };
enum ResizeCoord : uint8_t {
  COORD_HALF_PIXEL,
  COORD_PYTORCH_HALF_PIXEL,
  COORD_HALF_PIXEL_SYMMETRIC,
  COORD_ALIGN_CORNERS,
  COORD_ASYMMETRIC,
  COORD_TF_HALF_PIXEL_FOR_NN
};
struct ResizeParams {
  int64_t NC, H, W, OH, OW;
  float scale_h, scale_w;
  int coord;
  bool linear, cubic, exclude_outside;
  double cubic_a;
  int nearest_mode;
  const float* x;
  float* y;
};

// Pad with mode 0 constant, 1 reflect, 2 edge; pads_begin may be negative (crop).
struct PadParams {
  int ndim;
  int64_t ishape[kMaxDims], oshape[kMaxDims], begin[kMaxDims];
  int64_t total;
  int mode;
  float value;
  const float* x;
  float* y;
};

// The score adapter (ALGORITHMS.md Sec. 2): x_net = cx x, score = c1 net + c2 x, with the
// coefficients computed from the level's OU time t. kind: the network output kind, conv: its
// convention (almc_net_output / almc_net_convention values).
struct AdapterCoef {
  float cx, c1, c2;
};
ALMC_OHD AdapterCoef adapter_coef(int output, int convention, float t_f) {
  const double t = t_f;
  const double ab = exp(-2.0 * t);
  const double one_m_ab = -expm1(-2.0 * t);  // 1 - alpha_bar, accurate for small t
  const double sigma2 = expm1(2.0 * t);      // VE sigma^2
  AdapterCoef k{1.f, 1.f, 0.f};
  // output: 0 score, 1 eps, 2 denoiser, 3 x0; convention: 0 OU, 1 VP, 2 VE
  if (convention == 2) {
    const double et = exp(t);
    k.cx = float(et);
    if (output == 0) {
      k.c1 = float(et);
    } else if (output == 1) {
      k.c1 = float(-et / sqrt(sigma2));
    } else {
      k.c1 = float(et / sigma2);
      k.c2 = float(-et * et / sigma2);
    }
  } else {
    if (output == 1) {
      k.c1 = float(-1.0 / sqrt(one_m_ab));
    } else if (output == 2 || output == 3) {
      k.c1 = float(sqrt(ab) / one_m_ab);
      k.c2 = float(-1.0 / one_m_ab);
    }
  }
  return k;
}

// What the level input receives: level kind almc_net_level (0 t, 1 sigma, 2 log sigma, 3 index).
struct AdapterParams {
  int output, convention, level_kind;
  const float* table;  // alpha_bar table (backend memory) for the index level
  int64_t table_len;
  bool raw;            // feed raw_level, identity coefficients (almc_onnx_eval_raw)
  float raw_level;
  const float* raw_levels;  // raw with one level per sample (backend memory), or null
  // The network's own time for a continuous VP-SDE (score_sde): alpha_bar(s) = exp(-beta_min s -
  // beta_d s^2 / 2) with beta_d = beta_max - beta_min; used for the t level when vp_sde is set.
  bool vp_sde;
  float beta_min, beta_d;
  float level_scale;  // the t, sigma and log-sigma values are multiplied by this (e.g. 999); 0 means 1
};
ALMC_OHD float adapter_level_value(const AdapterParams& p, float t, float sigma, float log_sigma, float alpha_bar) {
  if (p.raw) return p.raw_level;
  switch (p.level_kind) {
    case 1: return p.level_scale > 0.f ? p.level_scale * sigma : sigma;
    case 2: return p.level_scale > 0.f ? p.level_scale * log_sigma : log_sigma;
    case 3: {
      int64_t best = 0;
      float best_d = 3.0e38f;
      for (int64_t i = 0; i < p.table_len; ++i) {
        const float dd = fabsf(p.table[i] - alpha_bar);
        if (dd < best_d) {
          best_d = dd;
          best = i;
        }
      }
      return float(best);
    }
    default: {
      float v = t;
      if (p.vp_sde) {
        // Solve beta_d s^2 / 2 + beta_min s = 2 t (alpha_bar(s) = e^{-2t}) in the form that is
        // accurate for small t: s = 4 t / (beta_min + sqrt(beta_min^2 + 4 beta_d t)).
        const float den = p.beta_min + sqrtf(p.beta_min * p.beta_min + 4.f * p.beta_d * t);
        v = den > 0.f ? 4.f * t / den : 0.f;
      }
      return p.level_scale > 0.f ? p.level_scale * v : v;
    }
  }
}

}  // namespace almc::onnx
