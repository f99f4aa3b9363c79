// Fusion passes over a lowered plan: elementwise chains, GEMM/convolution epilogues, and the
// collapsing of elementwise dimensions.
#include <algorithm>
#include <vector>

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

// An activation program reading only a GEMM/convolution result becomes that step's epilogue.
void fuse_epilogues(Plan& P) {
  std::vector<bool> dead(P.steps.size(), false);
  for (size_t j = 0; j < P.steps.size(); ++j) {
    Step& sj = P.steps[j];
    if (dead[j] || sj.kind != StepKind::Ew) continue;
    const EwParams& e = sj.ew;
    int act = -1;
    if (e.n_in == 1 && e.n_instr == 1 && e.instr[0].op <= EW_ELU && e.instr[0].op != EW_COPY) act = e.instr[0].op;
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
