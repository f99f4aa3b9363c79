// The ONNX graph as the executor sees it: nodes with parsed attributes, constant tensors, inputs
// and outputs. Loading parses the protobuf, runs the ONNX checker and shape inference (after
// refusing convolution weights whose inference would read out of bounds), checks the graph
// (dtypes, references, cycles) and refuses unsupported operators in one message.
#pragma once
#include <almc/almc.h>

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "host/core/error.hpp"

namespace almc::onnx {

// Every failure of loading, planning or running is the engine's error (its status() is what the
// C API returns), whichever backend it comes from.
using Error = almc::Error;

enum class DType { Float, Int64, Bool };

// A constant tensor on the host. Values are held as double: exact for float32 and for every int64
// a shape computation produces (|v| < 2^53; larger values such as INT64_MAX in Slice ends only
// need to compare as "huge" and are clamped where they are used).
struct HostTensor {
  DType dtype = DType::Float;
  std::vector<int64_t> shape;
  std::vector<double> v;
  int64_t numel() const { return int64_t(v.size()); }
};
using ConstPtr = std::shared_ptr<const HostTensor>;

struct Attr {
  int64_t i = 0;
  float f = 0.f;
  std::string s;
  std::vector<int64_t> ints;
  std::vector<float> floats;
  ConstPtr t;
};

struct Node {
  std::string name, op;
  std::vector<std::string> inputs, outputs;  // "" marks an omitted optional input
  std::map<std::string, Attr> attrs;
  std::string label() const;  // "Op 'name'" for messages

  bool has(const std::string& k) const { return attrs.count(k) != 0; }
  int64_t geti(const std::string& k, int64_t def) const;
  float getf(const std::string& k, float def) const;
  std::string gets(const std::string& k, const std::string& def) const;
  std::vector<int64_t> getints(const std::string& k) const;
};

struct ValueInfo {
  std::string name;
  DType dtype = DType::Float;
  std::vector<int64_t> dims;  // -1: not fixed (a named or absent dimension)
  std::vector<std::string> dim_names;  // per dimension, its symbolic name ("" for none)
};

// The default-domain opsets the loader accepts.
constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxOpset = 25;

struct Graph {
  std::vector<Node> nodes;  // topologically sorted
  std::map<std::string, ConstPtr> initializers;
  std::vector<ValueInfo> inputs;  // runtime inputs (initializers excluded)
  std::vector<ValueInfo> outputs;
  int64_t opset = 0;
};

// Parse, check and validate a model from memory; `what` names it in messages. Weights stored as
// external data are read from files in `dir` (the model's folder; "" refuses external data).
Graph load_graph_from_bytes(std::string bytes, const std::string& what, const std::string& dir = "");
Graph load_graph(const std::string& path);

// The op types the executor implements (domain "" / "ai.onnx").
bool op_supported(const std::string& op);

}  // namespace almc::onnx

namespace onnx {
class ModelProto;
}

namespace almc::onnx {

// Replaces every call of a model-local function (ModelProto.functions) in the model's graph by the
// function's body (load_graph does this first; `almc inspect` too). `opset` is the model's
// default-domain opset; `what` names the model in messages.
void inline_functions(::onnx::ModelProto& model, int64_t opset, const std::string& what);

}  // namespace almc::onnx
