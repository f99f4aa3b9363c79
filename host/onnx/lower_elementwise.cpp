// Lowering of the elementwise ops: one single-instruction program each (fusion.cpp merges chains).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void Builder::emit_ew(EwOp op, const std::vector<const Val*>& ins, size_t out_i, float alpha, float beta, DType out_dt) {
  std::vector<int64_t> shape;
  for (auto* v : ins) shape = bcast(shape, v->shape, this);
  Val& o = def(out_i, shape, out_dt);
  Step& s = push(StepKind::Ew);
  s.ew_shape = shape;
  EwParams& p = s.ew;
  p.ndim = int(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) p.shape[d] = shape[d];
  p.n_in = int(ins.size());
  for (size_t k = 0; k < ins.size(); ++k) {
    auto st = bstrides(ins[k]->shape, shape);
    for (size_t d = 0; d < st.size(); ++d) p.stride[k][d] = st[d];
    s.refs.push_back(ref(*ins[k]));
  }
  EwInstr in{};
  in.op = uint8_t(op);
  in.dst = uint8_t(ins.size());
  in.alpha = alpha;
  in.beta = beta;
  if (op == EW_WHERE) {
    in.c = 0;
    in.a = 1;
    in.b = 2;
  } else {
    in.a = 0;
    in.b = ins.size() > 1 ? 1 : 0;
  }
  p.instr[0] = in;
  p.n_instr = 1;
  p.out_reg = int(ins.size());
  BufRef r;
  r.id = o.sid;
  s.refs.push_back(r);
}

void Builder::node_elementwise(EwOp op_in, int arity) {
  const Node& nd = *cur_;
  std::vector<const Val*> ins;
  for (size_t i = 0; i < nd.inputs.size(); ++i)
    if (!nd.inputs[i].empty()) ins.push_back(&need(i));
  if (nd.op == "Dropout") {  // inference: the identity (ratio and training_mode are inputs from opset 12)
    if (const Val* tm = in(2)) {
      if (!tm->c || tm->c->v.size() != 1) fail("training_mode must be a constant");
      if (tm->c->v[0] != 0) fail("training_mode 1 (random dropout); export the model in eval mode (model.eval())");
    }
    ins.resize(1);
  }
  if ((op_in == EW_MAX || op_in == EW_MIN) && ins.size() != 2) return node_composite();  // variadic: a chain
  // Attribute defaults per op (ONNX's).
  const float alpha_def = op_in == EW_LEAKY_RELU ? 0.01f : op_in == EW_HARD_SIGMOID ? 0.2f : op_in == EW_SELU ? 1.67326319217681884765625f : 1.0f;
  float alpha = nd.getf("alpha", alpha_def), beta = 0.f;
  if (op_in == EW_HARD_SIGMOID) beta = nd.getf("beta", 0.5f);
  if (op_in == EW_SELU) beta = nd.getf("gamma", 1.05070102214813232421875f);
  EwOp op = op_in;
  if (op == EW_ISINF) {
    alpha = float(nd.geti("detect_negative", 1) != 0);
    beta = float(nd.geti("detect_positive", 1) != 0);
  }
  if (op == EW_MOD && nd.geti("fmod", 0) != 0) op = EW_FMOD;
  if (op == EW_MOD && ins.size() == 2 && ins[0]->dtype == DType::Float && !(ins[0]->c && ins[1]->c))
    fail("Mod of floats needs fmod = 1 (the operator defines fmod = 0 for integers only)", ALMC_ERR_PARSE);
  if (op == EW_CLIP) {
    alpha = nd.getf("min", -3.4e38f);  // attributes up to opset 10, inputs after
    beta = nd.getf("max", 3.4e38f);
    if (const Val* lo = in(1)) {
      if (!lo->c || lo->c->v.size() != 1) fail("Clip bounds must be constant scalars");
      alpha = float(lo->c->v[0]);
    }
    if (const Val* hi = in(2)) {
      if (!hi->c || hi->c->v.size() != 1) fail("Clip bounds must be constant scalars");
      beta = float(hi->c->v[0]);
    }
    ins.resize(1);
  }
  if (int(ins.size()) != arity) fail("expects " + std::to_string(arity) + " inputs", ALMC_ERR_PARSE);
  DType out_dt = is_compare(op) ? DType::Bool : (op == EW_WHERE ? ins[1]->dtype : ins[0]->dtype);
  bool all_const = true;
  for (auto* v : ins) all_const = all_const && v->c;
  if (all_const) {
    std::vector<ConstPtr> cs;
    for (auto* v : ins) cs.push_back(v->c);
    set_const(0, fold_ew(op, cs, alpha, beta, out_dt));
    return;
  }
  if (op == EW_DIV && out_dt == DType::Int64) {
    // Integer division truncates toward zero (as fold_ew does for constants): the quotient of the
    // values (integers held as floats) as a float, then truncated by a Cast.
    Attr to_float, to_int;
    to_float.i = 1;
    to_int.i = 7;
    const std::string a = sub("Cast", {nd.inputs[0]}, {{"to", to_float}});
    sub("Cast", {sub("Div", {a, nd.inputs[1]})}, {{"to", to_int}}, nd.outputs[0]);
    return;
  }
  if (op == EW_COPY) {  // Identity / Dropout: a view
    alias(0, *ins[0], ins[0]->shape);
    return;
  }
  emit_ew(op, ins, 0, alpha, beta, out_dt);
}

}  // namespace almc::onnx::planning
