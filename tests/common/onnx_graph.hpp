// Small ONNX graphs written by hand in tests: a float32 input or output with a free batch
// dimension, a node, an int64 initializer.
#pragma once

#include <onnx/onnx_pb.h>

#include <cstdint>
#include <string>
#include <vector>

namespace onnx_graph {

// v is a float32 tensor `name` of shape [batch, dims...] (batch a free dimension so named).
inline void float_value(::onnx::ValueInfoProto* v, const std::string& name, const std::vector<int64_t>& dims,
                        const std::string& batch = "n") {
  v->set_name(name);
  auto* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(::onnx::TensorProto::FLOAT);
  t->mutable_shape()->add_dim()->set_dim_param(batch);
  for (int64_t d : dims) t->mutable_shape()->add_dim()->set_dim_value(d);
}

// A node `op` of g reading `in` and writing `out`.
inline ::onnx::NodeProto* node(::onnx::GraphProto* g, const std::string& op, const std::vector<std::string>& in,
                               const std::string& out) {
  auto* n = g->add_node();
  n->set_op_type(op);
  for (const auto& s : in) n->add_input(s);
  n->add_output(out);
  return n;
}

// A 1-D int64 initializer of g.
inline void ints(::onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& v) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(::onnx::TensorProto::INT64);
  t->add_dims(int64_t(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

}  // namespace onnx_graph
