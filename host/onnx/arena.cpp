// The arena: storage liveness, best-fit placement, resolution of operand offsets, and binding a
// placed plan to the memory it runs in.
#include <algorithm>
#include <vector>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void place_arena(Plan& P) {
  for (size_t j = 0; j < P.steps.size(); ++j)
    for (const auto& r : P.steps[j].refs)
      if (r.space == BufRef::Arena && r.id >= 0) {
        Storage& st = P.storages[size_t(r.id)];
        st.first = std::min(st.first, int(j));
        st.last = std::max(st.last, int(j));
      }
  const int end = int(P.steps.size()) + 1;
  for (auto& st : P.storages) {
    if (st.pinned_start) st.first = -1;
    if (st.pinned_end) st.last = end;
  }
  std::vector<int> order;
  for (size_t i = 0; i < P.storages.size(); ++i)
    if (P.storages[i].last >= P.storages[i].first) order.push_back(int(i));
  std::sort(order.begin(), order.end(), [&](int a, int b) { return P.storages[size_t(a)].size > P.storages[size_t(b)].size; });
  std::vector<int> placed;
  P.arena_floats = 0;
  for (int id : order) {
    Storage& s = P.storages[size_t(id)];
    const int64_t sz = (s.size + 63) / 64 * 64;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int q : placed) {
      const Storage& o = P.storages[size_t(q)];
      if (o.first <= s.last && s.first <= o.last) busy.push_back({o.offset, o.offset + (o.size + 63) / 64 * 64});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto& b : busy) {
      if (off + sz <= b.first) break;
      off = std::max(off, b.second);
    }
    s.offset = off;
    placed.push_back(id);
    P.arena_floats = std::max(P.arena_floats, off + sz);
  }
  auto resolve = [&](BufRef& r) {
    if (r.space == BufRef::Arena && r.id >= 0) {
      r.off += P.storages[size_t(r.id)].offset;
      r.id = -1;
    }
  };
  for (auto& s : P.steps)
    for (auto& r : s.refs) resolve(r);
  resolve(P.x);
  resolve(P.out);
  if (P.level_used) resolve(P.level);
}

}  // namespace almc::onnx::planning

namespace almc::onnx {

void bind_plan(Plan& p, float* arena, const float* consts) {
  auto R = [&](const BufRef& r) -> float* {
    if (r.id == -2) return nullptr;  // an absent optional operand
    return r.space == BufRef::Const ? const_cast<float*>(consts) + r.off : arena + r.off;
  };
  for (auto& s : p.steps) {
    auto& f = s.refs;
    s.w16 = s.w16_off >= 0 ? consts + s.w16_off : nullptr;
    s.bp = s.bp_off >= 0 ? consts + s.bp_off : nullptr;
    s.scratch16 = s.bf16 && p.scratch16_off >= 0 ? arena + p.scratch16_off : nullptr;
    switch (s.kind) {
      case StepKind::Ew:
        for (int k = 0; k < s.ew.n_in; ++k) s.ew.in[k] = R(f[size_t(k)]);
        s.ew.out = R(f[size_t(s.ew.n_in)]);
        break;
      case StepKind::Gemm:
        s.gemm.A = R(f[0]);
        s.gemm.B = R(f[1]);
        s.gemm.C = R(f[2]);
        s.gemm.bias = f.size() > 3 ? R(f[3]) : nullptr;
        break;
      case StepKind::Conv:
      case StepKind::ConvT:
        s.conv.x = R(f[0]);
        s.conv.w = R(f[1]);
        s.conv.bias = R(f[2]);
        s.conv.y = R(f[3]);
        s.conv.col = R(f[4]);
        break;
      case StepKind::Copy:
        s.copy.in = R(f[0]);
        s.copy.out = R(f[1]);
        break;
      case StepKind::Gather:
        s.gather.data = R(f[0]);
        s.gather.idx = R(f[1]);
        s.gather.out = R(f[2]);
        break;
      case StepKind::Softmax:
        s.softmax.x = R(f[0]);
        s.softmax.y = R(f[1]);
        break;
      case StepKind::Norm:
        s.norm.x = R(f[0]);
        s.norm.scale = R(f[1]);
        s.norm.bias = R(f[2]);
        s.norm.y = R(f[3]);
        break;
      case StepKind::Reduce:
        s.reduce.x = R(f[0]);
        s.reduce.y = R(f[1]);
        break;
      case StepKind::Pool:
        s.pool.x = R(f[0]);
        s.pool.y = R(f[1]);
        break;
      case StepKind::Resize:
        s.resize.x = R(f[0]);
        s.resize.y = R(f[1]);
        break;
      case StepKind::Pad:
        s.pad.x = R(f[0]);
        s.pad.y = R(f[1]);
        break;
      case StepKind::Fill:
        s.fill_ptr = R(f[0]);
        break;
    }
  }
}

}  // namespace almc::onnx
