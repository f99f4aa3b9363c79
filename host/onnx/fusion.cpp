// Fusion passes over a lowered plan: elementwise chains, normalisation and GEMM/convolution
// epilogues, and the collapsing of elementwise dimensions.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "cuda/onnx/ops.cuh"

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

namespace {

// Whether operand k of step s is written by it.
bool is_output(const Step& s, size_t k) {
  switch (s.kind) {
    case StepKind::Ew: return k == size_t(s.ew.n_in);
    case StepKind::Gemm: return k == 2;
    case StepKind::Conv:
    case StepKind::ConvT: return k >= 3;
    case StepKind::Gather: return k == 2;
    case StepKind::Norm: return k == 3;
    case StepKind::Fill: return true;
    default: return k == 1;
  }
}

// Steps reading arena storage sid (fusion needs single-consumer intermediates).
int consumers(const Plan& P, int sid) {
  int c = 0;
  for (const auto& s : P.steps)
    for (size_t k = 0; k < s.refs.size(); ++k)
      if (!is_output(s, k) && s.refs[k].space == BufRef::Arena && s.refs[k].id == sid) ++c;
  return c;
}

int out_sid(const Step& s) { return s.refs.empty() ? -1 : s.refs[size_t(s.ew.n_in)].id; }

void drop(Plan& P, const std::vector<bool>& dead) {
  std::vector<Step> kept;
  for (size_t j = 0; j < P.steps.size(); ++j)
    if (!dead[j]) kept.push_back(std::move(P.steps[j]));
  P.steps = std::move(kept);
}

}  // namespace

// Fuse elementwise producer k into consumer j when k's result is read only by j (once) and the
// shapes agree: one program, one pass over memory.
void fuse_elementwise(Plan& P) {
  std::vector<bool> dead(P.steps.size(), false);
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (sj.kind != StepKind::Ew) continue;
    bool changed = true;
    while (changed) {
      changed = false;
      for (int i = 0; i < sj.ew.n_in; ++i) {
        const BufRef r = sj.refs[size_t(i)];
        if (r.space != BufRef::Arena || r.off != 0) continue;
        const Storage& st = P.storages[size_t(r.id)];
        if (st.pinned_start || st.pinned_end) continue;
        int k = -1;
        for (int q = int(j) - 1; q >= 0; --q)
          if (!dead[size_t(q)] && P.steps[size_t(q)].kind == StepKind::Ew && out_sid(P.steps[size_t(q)]) == r.id) {
            k = q;
            break;
          }
        if (k < 0) continue;
        Step& sk = P.steps[size_t(k)];
        if (sk.ew_shape != sj.ew_shape) continue;
        bool contiguous = true;
        auto cs = contig_strides(sj.ew_shape);
        for (int d = 0; d < sj.ew.ndim; ++d)
          if (sj.ew.shape[d] != 1 && sj.ew.stride[i][d] != cs[size_t(d)]) contiguous = false;
        if (!contiguous || consumers(P, r.id) != 1) continue;
        if (sj.ew.n_in - 1 + sk.ew.n_in > kMaxEwIn || sj.ew.n_instr + sk.ew.n_instr > kMaxEwInstr) continue;
        // New register file: j's inputs without i, then k's inputs, then k's temps, then j's temps.
        EwParams a = sj.ew, b = sk.ew;
        std::vector<BufRef> refs;
        EwParams m = a;
        m.n_in = 0;
        std::vector<int> map_a(size_t(kMaxEwRegs) + 8, -1), map_b(size_t(kMaxEwRegs) + 8, -1);
        auto add_input = [&](const EwParams& src, int idx, const BufRef& rf) {
          for (int q = 0; q < m.n_in; ++q) {
            bool same = refs[size_t(q)].space == rf.space && refs[size_t(q)].id == rf.id && refs[size_t(q)].off == rf.off;
            for (int d = 0; d < m.ndim && same; ++d) same = m.stride[q][d] == src.stride[idx][d];
            if (same) return q;
          }
          for (int d = 0; d < m.ndim; ++d) m.stride[m.n_in][d] = src.stride[idx][d];
          refs.push_back(rf);
          return m.n_in++;
        };
        for (int q = 0; q < a.n_in; ++q)
          if (q != i) map_a[size_t(q)] = add_input(a, q, sj.refs[size_t(q)]);
        for (int q = 0; q < b.n_in; ++q) map_b[size_t(q)] = add_input(b, q, sk.refs[size_t(q)]);
        int next = m.n_in;
        m.n_instr = 0;
        bool ok = true;
        for (int q = 0; q < b.n_instr; ++q) {
          EwInstr in = b.instr[q];
          in.a = uint8_t(map_b[in.a]);
          in.b = uint8_t(map_b[in.b]);
          in.c = uint8_t(map_b[in.c]);
          map_b[in.dst] = next;
          in.dst = uint8_t(next++);
          m.instr[m.n_instr++] = in;
        }
        map_a[size_t(i)] = map_b[size_t(b.out_reg)];
        for (int q = 0; q < a.n_instr; ++q) {
          EwInstr in = a.instr[q];
          in.a = uint8_t(map_a[in.a]);
          in.b = uint8_t(map_a[in.b]);
          in.c = uint8_t(map_a[in.c]);
          map_a[in.dst] = next;
          in.dst = uint8_t(next++);
          m.instr[m.n_instr++] = in;
        }
        if (next > kMaxEwRegs) ok = false;
        if (!ok) continue;
        m.out_reg = map_a[size_t(a.out_reg)];
        refs.push_back(sj.refs[size_t(a.n_in)]);
        sj.ew = m;
        sj.refs = refs;
        dead[size_t(k)] = true;
        sk.refs.clear();
        changed = true;
        break;
      }
    }
  }
  drop(P, dead);
}

namespace {

// A per-element function of a plan tensor that depends only on the "channel" (e / seg) % nch of
// the element's linear index e (see NormParams).
struct ChannelForm {
  int64_t seg = 1, nch = 1;
};

// The form of elementwise input k (its broadcast strides over the program's shape): the dims it
// varies along are d_lo .. d_hi, so it is a function of (e / prod(shape[d_hi+1:])) % prod(shape[d_lo..d_hi]).
ChannelForm input_form(const EwParams& e, int k) {
  int lo = -1, hi = -1;
  for (int d = 0; d < e.ndim; ++d)
    if (e.stride[k][d] != 0 && e.shape[d] != 1) {
      if (lo < 0) lo = d;
      hi = d;
    }
  ChannelForm f;
  if (lo < 0) return f;
  for (int d = hi + 1; d < e.ndim; ++d) f.seg *= e.shape[d];
  for (int d = lo; d <= hi; ++d) f.nch *= e.shape[d];
  return f;
}

// The coarsest form both a and b are functions of: segments of gcd(seg) elements, over a period
// of lcm(seg * nch) elements (periods are products of a tensor's trailing dimensions, below 2^31,
// so the lcm fits). Fails (false) past `cap` channels.
bool join(ChannelForm& a, const ChannelForm& b, int64_t cap) {
  const int64_t seg = std::gcd(a.seg, b.seg);
  const int64_t pa = a.seg * a.nch, pb = b.seg * b.nch;
  const int64_t period = pa / std::gcd(pa, pb) * pb;
  if (period / seg > cap) return false;
  a.seg = seg;
  a.nch = period / seg;
  return true;
}

// What a register of the program holds, as a function of the channel c (arrays over nch), with
// z = (x - mean) * rstd the normalised value: a constant v[c], an affine map a[c] z + b[c], or an
// activation of one (op applied to the affine map; `src`/`ver` name the register it read).
struct Sym {
  enum Kind { Bad, Const, Aff, Act } kind = Bad;
  std::vector<double> v, a, b;
  int op = EW_COPY, src = -1, ver = -1;
  float alpha = 0.f, beta = 0.f;
};

bool is_activation(int op) {
  return op != EW_COPY && op != EW_NEG && op != EW_AFFINE && op != EW_WHERE && op != EW_NOT && !ew_is_binary(op);
}

// The program of elementwise step e applied to the normalised register `xin` (initial affine map
// a0, b0), every other input constant (values over the channels in cv): the combined per-channel
// affine map and activation, or Bad.
Sym fold_program(const EwParams& e, int xin, const std::vector<double>& a0, const std::vector<double>& b0,
                 const std::vector<std::vector<double>>& cv) {
  const size_t n = a0.size();
  std::vector<Sym> reg(static_cast<size_t>(kMaxEwRegs));
  std::vector<int> ver(static_cast<size_t>(kMaxEwRegs), 0);
  int next_ver = 1;
  for (int k = 0; k < e.n_in; ++k) {
    Sym& r = reg[size_t(k)];
    if (k == xin) {
      r.kind = Sym::Aff;
      r.a = a0;
      r.b = b0;
    } else {
      r.kind = Sym::Const;
      r.v = cv[size_t(k)];
    }
    ver[size_t(k)] = next_ver++;
  }
  for (int q = 0; q < e.n_instr; ++q) {
    const EwInstr& in = e.instr[q];
    const Sym& A = reg[in.a];
    const Sym& B = reg[in.b];
    const Sym& C = reg[in.c];
    const bool bin = ew_is_binary(in.op);
    Sym out;
    if (A.kind == Sym::Const && (!bin || B.kind == Sym::Const) && (in.op != EW_WHERE || (B.kind == Sym::Const && C.kind == Sym::Const))) {
      out.kind = Sym::Const;
      out.v.resize(n);
      for (size_t c = 0; c < n; ++c)
        out.v[c] = ew_apply<double>(in.op, A.v[c], bin || in.op == EW_WHERE ? B.v[c] : 0.0,
                                    in.op == EW_WHERE ? C.v[c] : 0.0, in.alpha, in.beta);
    } else if (A.kind == Sym::Aff && (in.op == EW_COPY || in.op == EW_NEG || in.op == EW_AFFINE)) {
      const double m = in.op == EW_COPY ? 1.0 : in.op == EW_NEG ? -1.0 : double(in.alpha);
      const double t = in.op == EW_AFFINE ? double(in.beta) : 0.0;
      out = A;
      for (size_t c = 0; c < n; ++c) {
        out.a[c] = m * A.a[c];
        out.b[c] = m * A.b[c] + t;
      }
    } else if (A.kind == Sym::Aff && is_activation(in.op)) {
      out.kind = Sym::Act;
      out.a = A.a;
      out.b = A.b;
      out.op = in.op;
      out.alpha = in.alpha;
      out.beta = in.beta;
      out.src = in.a;
      out.ver = ver[in.a];
    } else if (in.op == EW_MUL && ((A.kind == Sym::Aff && B.kind == Sym::Act && B.op == EW_SIGMOID && B.src == in.a &&
                                    B.ver == ver[in.a]) ||
                                   (B.kind == Sym::Aff && A.kind == Sym::Act && A.op == EW_SIGMOID && A.src == in.b &&
                                    A.ver == ver[in.b]))) {
      out = A.kind == Sym::Act ? A : B;  // z sigmoid(z) = SiLU(z)
      out.op = EW_SILU;
    } else if ((in.op == EW_ADD || in.op == EW_SUB || in.op == EW_MUL || in.op == EW_DIV) &&
               ((A.kind == Sym::Aff && B.kind == Sym::Const) || (A.kind == Sym::Const && B.kind == Sym::Aff && in.op != EW_DIV))) {
      const bool aff_first = A.kind == Sym::Aff;
      const Sym& F = aff_first ? A : B;
      const std::vector<double>& k = aff_first ? B.v : A.v;
      out = F;
      for (size_t c = 0; c < n; ++c) {
        switch (in.op) {
          case EW_ADD: out.b[c] = F.b[c] + k[c]; break;
          case EW_SUB:
            out.a[c] = aff_first ? F.a[c] : -F.a[c];
            out.b[c] = aff_first ? F.b[c] - k[c] : k[c] - F.b[c];
            break;
          case EW_MUL:
            out.a[c] = F.a[c] * k[c];
            out.b[c] = F.b[c] * k[c];
            break;
          default:
            out.a[c] = F.a[c] / k[c];
            out.b[c] = F.b[c] / k[c];
            break;
        }
      }
    }
    reg[in.dst] = std::move(out);
    ver[in.dst] = next_ver++;
  }
  const Sym& r = reg[size_t(e.out_reg)];
  if (r.kind != Sym::Aff && r.kind != Sym::Act) return Sym{};
  return r;
}

}  // namespace

// A normalisation whose result only an elementwise program reads, that program computing an
// activation of a per-channel affine map of it from constants (torch's GroupNorm: Mul and Add
// after the reshape, then SiLU; a LayerNorm followed by ReLU; ...): the affine map is composed
// with the normalisation's own scale and bias, the activation applied as the rows are written, and
// the program dropped. One pass over the tensor instead of two.
void fuse_norm_epilogues(Plan& P) {
  constexpr int64_t kMaxChannels = int64_t(1) << 22;
  std::vector<bool> dead(P.steps.size(), false);
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (sj.kind != StepKind::Ew) continue;
    const EwParams& e = sj.ew;
    // The one input read from the arena must be a normalisation's whole output, element for element.
    int xin = -1;
    bool ok = true;
    for (int k = 0; k < e.n_in && ok; ++k) {
      if (sj.refs[size_t(k)].space == BufRef::Const) continue;
      if (xin >= 0) ok = false;
      xin = k;
    }
    if (!ok || xin < 0) continue;
    const BufRef r = sj.refs[size_t(xin)];
    if (r.off != 0 || P.storages[size_t(r.id)].pinned_start || P.storages[size_t(r.id)].pinned_end) continue;
    const auto cs = contig_strides(sj.ew_shape);
    for (int d = 0; d < e.ndim; ++d)
      if (e.shape[d] != 1 && e.stride[xin][d] != cs[size_t(d)]) ok = false;
    if (!ok || consumers(P, r.id) != 1) continue;
    int k = -1;
    for (int q = int(j) - 1; q >= 0; --q)
      if (!dead[size_t(q)] && P.steps[size_t(q)].kind == StepKind::Norm && P.steps[size_t(q)].refs[3].id == r.id &&
          P.steps[size_t(q)].refs[3].off == 0) {
        k = q;
        break;
      }
    if (k < 0) continue;
    Step& sk = P.steps[size_t(k)];
    NormParams& np = sk.norm;
    int64_t total = 1;
    for (int d = 0; d < e.ndim; ++d) total *= e.shape[d];
    if (np.act != EW_COPY || total != np.rows * np.len) continue;
    const BufRef scale = sk.refs[1], bias = sk.refs[2];
    if ((scale.id != -2 && scale.space != BufRef::Const) || (bias.id != -2 && bias.space != BufRef::Const)) continue;
    // The channel form of the result: the normalisation's own and every constant input's.
    ChannelForm form{np.seg, np.nch};
    for (int q = 0; q < e.n_in && ok; ++q)
      if (q != xin) ok = join(form, input_form(e, q), kMaxChannels);
    if (!ok) continue;
    const size_t n = size_t(form.nch);
    std::vector<double> a0(n), b0(n);
    std::vector<std::vector<double>> cv(size_t(e.n_in));
    for (size_t c = 0; c < n; ++c) {
      const int64_t el = int64_t(c) * form.seg, nc = (el / np.seg) % np.nch;  // the norm's channel
      a0[c] = scale.id == -2 ? 1.0 : double(P.consts[size_t(scale.off + nc)]);
      b0[c] = bias.id == -2 ? 0.0 : double(P.consts[size_t(bias.off + nc)]);
    }
    for (int q = 0; q < e.n_in; ++q) {
      if (q == xin) continue;
      cv[size_t(q)].resize(n);
      for (size_t c = 0; c < n; ++c)
        cv[size_t(q)][c] = double(P.consts[size_t(sj.refs[size_t(q)].off +
                                                  strided_offset(int64_t(c) * form.seg, e.ndim, e.shape, e.stride[q]))]);
    }
    const Sym f = fold_program(e, xin, a0, b0, cv);
    if (f.kind == Sym::Bad) continue;
    auto add_const = [&](const std::vector<double>& v) {
      BufRef c;
      c.space = BufRef::Const;
      c.off = append_consts(P, int64_t(v.size()));
      std::transform(v.begin(), v.end(), P.consts.begin() + c.off, [](double x) { return float(x); });
      return c;
    };
    np.seg = form.seg;
    np.nch = form.nch;
    np.act = f.kind == Sym::Act ? f.op : EW_COPY;
    np.act_alpha = f.alpha;
    np.act_beta = f.beta;
    sk.refs[1] = add_const(f.a);
    sk.refs[2] = add_const(f.b);
    sk.refs[3] = sj.refs[size_t(e.n_in)];
    dead[j] = true;
    sj.refs.clear();
  }
  drop(P, dead);
}

// An activation program reading only a GEMM/convolution result becomes that step's epilogue.
void fuse_epilogues(Plan& P) {
  std::vector<bool> dead(P.steps.size(), false);
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (dead[j] || sj.kind != StepKind::Ew) continue;
    const EwParams& e = sj.ew;
    int act = -1;
    if (e.n_in == 1 && e.n_instr == 1 && e.instr[0].op != EW_COPY &&
        (e.instr[0].op <= EW_ELU || e.instr[0].op == EW_GELU || e.instr[0].op == EW_GELU_TANH))
      act = e.instr[0].op;
    if (e.n_in == 1 && e.n_instr == 2 && e.instr[0].op == EW_SIGMOID && e.instr[0].a == 0 && e.instr[1].op == EW_MUL &&
        ((e.instr[1].a == 0 && e.instr[1].b == 1) || (e.instr[1].a == 1 && e.instr[1].b == 0)))
      act = EW_SILU;
    if (act < 0) continue;
    const BufRef r = sj.refs[0];
    if (r.space != BufRef::Arena || r.off != 0 || P.storages[size_t(r.id)].pinned_end || consumers(P, r.id) != 1) continue;
    for (int q = int(j) - 1; q >= 0; --q) {
      Step& sk = P.steps[size_t(q)];
      if (dead[size_t(q)]) continue;
      int oidx = sk.kind == StepKind::Gemm ? 2 : (sk.kind == StepKind::Conv || sk.kind == StepKind::ConvT) ? 3 : -1;
      if (oidx < 0 || sk.refs[size_t(oidx)].id != r.id) continue;
      int& a = sk.kind == StepKind::Gemm ? sk.gemm.act : sk.conv.act;
      if (a != EW_COPY) break;
      a = act;
      (sk.kind == StepKind::Gemm ? sk.gemm.act_alpha : sk.conv.act_alpha) = e.instr[0].alpha;
      sk.refs[size_t(oidx)] = sj.refs[1];
      dead[j] = true;
      sj.refs.clear();
      break;
    }
  }
  drop(P, dead);
}

// Collapse elementwise dimensions and mark contiguous / scalar inputs.
void collapse_elementwise(Plan& P) {
  for (auto& s : P.steps) {
    if (s.kind != StepKind::Ew) continue;
    EwParams& e = s.ew;
    EwParams c = e;
    c.ndim = 0;
    for (int d = 0; d < e.ndim; ++d) {
      if (e.shape[d] == 1) continue;
      bool merge = c.ndim > 0;
      for (int k = 0; k < e.n_in && merge; ++k)
        merge = c.stride[k][c.ndim - 1] == e.stride[k][d] * e.shape[d];
      if (merge) {
        c.shape[c.ndim - 1] *= e.shape[d];
        for (int k = 0; k < e.n_in; ++k) c.stride[k][c.ndim - 1] = e.stride[k][d];
      } else {
        c.shape[c.ndim] = e.shape[d];
        for (int k = 0; k < e.n_in; ++k) c.stride[k][c.ndim] = e.stride[k][d];
        ++c.ndim;
      }
    }
    c.total = 1;
    for (int d = 0; d < c.ndim; ++d) c.total *= c.shape[d];
    for (int k = 0; k < c.n_in; ++k) {
      c.scalar[k] = true;
      c.contiguous[k] = true;
      int64_t want = 1;
      for (int d = c.ndim - 1; d >= 0; --d) {
        if (c.stride[k][d] != 0) c.scalar[k] = false;
        if (c.stride[k][d] != want) c.contiguous[k] = false;
        want *= c.shape[d];
      }
      if (c.scalar[k]) c.contiguous[k] = false;
    }
    e = c;
  }

}

}  // namespace almc::onnx::planning
