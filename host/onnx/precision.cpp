// The network's BF16 precision (ExecConfig::precision): a plan's GEMM and convolution steps are
// marked BF16 and their constant weights converted once, appended to the plan's constant buffer;
// activations are converted when the step runs. Every other step stays fp32.
//   CPU (cpu_gemm.hpp's BF16 GEMM): weights packed into BF16 pairs (pack_rows/cols_bf16).
//   CUDA (cuda/onnx/kernels.cu, cuBLAS BF16 GEMMs with fp32 compute): weights as plain bfloat16
//   arrays in their fp32 layout, and a scratch region at the end of the arena where a step
//   converts its runtime operands (shared by all steps: they run one after the other).
#include <algorithm>

#include "host/onnx/cpu_gemm.hpp"
#include "host/onnx/plan.hpp"

namespace almc::onnx {
namespace {

// Appends `words` floats to the constant buffer for `pack` to fill; returns their offset.
template <class F>
int64_t append(Plan& p, int64_t words, F&& pack) {
  const int64_t off = int64_t(p.consts.size());
  p.consts.resize(size_t(off + std::max<int64_t>(words, 1)));
  pack(p.consts.data() + off);
  return off;
}

// The batch offsets of one GEMM operand are all zero (one matrix shared by every batch entry).
bool shared_operand(const GemmParams& g, const int64_t* stride) {
  for (int d = 0; d < g.batch_ndim; ++d)
    if (g.batch_shape[d] > 1 && stride[d] != 0) return false;
  return true;
}

// Offsets in the constant buffer and the scratch region start on 256-byte boundaries.
int64_t align64(int64_t floats) { return (floats + 63) / 64 * 64; }

// One past the last element of a GEMM operand over the whole batch: rows x cols with leading
// dimension ld, shifted by the batch strides.
int64_t operand_extent(const GemmParams& g, int64_t rows, int64_t cols, int64_t ld, const int64_t* stride) {
  int64_t e = rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
  for (int d = 0; d < g.batch_ndim; ++d) e += (g.batch_shape[d] - 1) * stride[d];
  return e;
}

// fp32 values as a bfloat16 array (element e in bytes 2e, 2e+1), appended to the constant buffer.
int64_t append_bf16(Plan& p, int64_t src_off, int64_t n) {
  p.consts.resize(size_t(align64(int64_t(p.consts.size()))));
  return append(p, (n + 1) / 2, [&](float* out) {
    const float* src = p.consts.data() + src_off;
    for (int64_t e = 0; e < n; e += 2) out[e / 2] = bf16_pair(to_bf16(src[e]), e + 1 < n ? to_bf16(src[e + 1]) : 0);
  });
}

// CUDA: weights converted in their layout; the scratch each step needs (bfloat16 elements: its
// runtime operands, the first region's size rounded up to 128 elements).
void use_bf16_cuda(Plan& p) {
  int64_t scratch = 0;
  for (Step& s : p.steps) {
    if (s.kind != StepKind::Gemm && s.kind != StepKind::Conv && s.kind != StepKind::ConvT) continue;
    s.bf16 = true;
    s.w16_off = -1;
    const bool w_const = s.refs[1].space == BufRef::Const;
    int64_t first = 0, second = 0;
    if (s.kind == StepKind::Gemm) {
      const GemmParams& g = s.gemm;
      const int64_t ea = operand_extent(g, g.trans_a ? g.K : g.M, g.trans_a ? g.M : g.K, g.lda, g.batch_stride_a);
      const int64_t eb = operand_extent(g, g.trans_b ? g.N : g.K, g.trans_b ? g.K : g.N, g.ldb, g.batch_stride_b);
      const int64_t a1 = g.trans_a ? g.K : g.M, b1 = g.trans_b ? g.N : g.K;  // one batch entry's rows
      if (w_const) {
        s.w16_side = 1;
        s.w16_off = append_bf16(p, s.refs[1].off, eb);
      } else if (s.refs[0].space == BufRef::Const) {
        s.w16_side = 0;
        s.w16_off = append_bf16(p, s.refs[0].off, ea);
      }
      // Runtime operands are converted one batch entry at a time.
      if (s.w16_off < 0 || s.w16_side != 0) first = a1 > 0 ? (a1 - 1) * g.lda + (g.trans_a ? g.M : g.K) : 0;
      if (s.w16_off < 0 || s.w16_side != 1) second = b1 > 0 ? (b1 - 1) * g.ldb + (g.trans_b ? g.K : g.N) : 0;
    } else {
      const ConvParams& c = s.conv;
      const int64_t Cg = c.C / c.group, Mg = c.M / c.group, KK = c.KH * c.KW;
      const int64_t wn = s.kind == StepKind::Conv ? c.M * Cg * KK : c.C * Mg * KK;
      first = s.kind == StepKind::Conv ? Cg * KK * c.chunk * c.OH * c.OW : Cg * c.chunk * c.H * c.W;
      if (w_const) s.w16_off = append_bf16(p, s.refs[1].off, wn);
      else second = wn;
    }
    scratch = std::max(scratch, (first + 127) / 128 * 128 + second);
  }
  if (scratch == 0) return;
  p.scratch16_off = align64(p.arena_floats);
  p.arena_floats = p.scratch16_off + (scratch + 1) / 2;
}

}  // namespace

void use_bf16(Plan& p, bool cuda) {
  if (cuda) return use_bf16_cuda(p);
  for (Step& s : p.steps) {
    if (s.kind != StepKind::Gemm && s.kind != StepKind::Conv && s.kind != StepKind::ConvT) continue;
    s.bf16 = true;
    s.w16_off = -1;
    const BufRef& w = s.refs[1];
    if (s.kind == StepKind::Gemm) {
      const GemmParams& g = s.gemm;
      GemmView v;
      v.M = g.M;
      v.N = g.N;
      v.K = g.K;
      const int64_t Kp = (g.K + 1) / 2;
      if (w.space == BufRef::Const && !g.trans_b && shared_operand(g, g.batch_stride_b)) {
        s.w16_side = 1;  // B [K, N]: pairs of rows, N per pair
        s.w16_off = append(p, Kp * g.N, [&](float* out) {
          v.B = p.consts.data() + w.off;
          v.ldb = g.ldb;
          pack_cols_bf16(v, 0, g.N, out, g.N);
        });
      } else if (s.refs[0].space == BufRef::Const && shared_operand(g, g.batch_stride_a)) {
        s.w16_side = 0;  // A [M, K] (op(A)): pairs along each row
        s.w16_off = append(p, g.M * Kp, [&](float* out) {
          v.A = p.consts.data() + s.refs[0].off;
          v.a_rs = g.trans_a ? 1 : g.lda;
          v.a_ks = g.trans_a ? g.lda : 1;
          pack_rows_bf16(v, 0, g.M, out, Kp);
        });
      }
      continue;
    }
    if (w.space != BufRef::Const) continue;
    const ConvParams& c = s.conv;
    const int64_t G = c.group, Cg = c.C / G, Mg = c.M / G, KK = c.KH * c.KW;
    if (s.kind == StepKind::Conv) {
      // weight [M, Cg*KK]: the A of every group, rows g*Mg .. (g+1)*Mg-1.
      GemmView v;
      v.K = Cg * KK;
      const int64_t Kp = (v.K + 1) / 2;
      s.w16_off = append(p, c.M * Kp, [&](float* out) {
        v.A = p.consts.data() + w.off;
        v.a_rs = v.K;
        v.a_ks = 1;
        pack_rows_bf16(v, 0, c.M, out, Kp);
      });
    } else {
      // weight [C, Mg*KK]: group g's A is its block [Cg, Mg*KK] transposed, rows Mg*KK.
      GemmView v;
      v.K = Cg;
      const int64_t Kp = (Cg + 1) / 2;
      s.w16_off = append(p, G * Mg * KK * Kp, [&](float* out) {
        for (int64_t g = 0; g < G; ++g) {
          v.A = p.consts.data() + w.off + g * Cg * Mg * KK;
          v.a_rs = 1;
          v.a_ks = Mg * KK;
          pack_rows_bf16(v, 0, Mg * KK, out + g * Mg * KK * Kp, Kp);
        }
      });
    }
  }
}

}  // namespace almc::onnx
