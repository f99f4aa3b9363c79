// Loading an ONNX model into almc::onnx::Graph (see graph.hpp).
#include "host/onnx/graph.hpp"

#include "host/core/parse_count.hpp"
#include "host/io/file.hpp"
#include "host/onnx/op_table.hpp"

#include <google/protobuf/unknown_field_set.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace almc::onnx {
namespace {

const char* dtype_name(int t) {
  switch (t) {
    case ::onnx::TensorProto::FLOAT: return "float32";
    case ::onnx::TensorProto::UINT8: return "uint8";
    case ::onnx::TensorProto::INT8: return "int8";
    case ::onnx::TensorProto::UINT16: return "uint16";
    case ::onnx::TensorProto::INT16: return "int16";
    case ::onnx::TensorProto::INT32: return "int32";
    case ::onnx::TensorProto::INT64: return "int64";
    case ::onnx::TensorProto::STRING: return "string";
    case ::onnx::TensorProto::BOOL: return "bool";
    case ::onnx::TensorProto::FLOAT16: return "float16";
    case ::onnx::TensorProto::DOUBLE: return "float64";
    case ::onnx::TensorProto::BFLOAT16: return "bfloat16";
    default: return "an unknown type";
  }
}

// The dtypes a tensor may have: float32 data (float16 and bfloat16 are widened to it: a model
// exported in half precision runs in float32), int64/int32 shapes and indices, bool masks.
DType map_dtype(int t, const std::string& what) {
  switch (t) {
    case ::onnx::TensorProto::FLOAT:
    case ::onnx::TensorProto::FLOAT16:
    case ::onnx::TensorProto::BFLOAT16: return DType::Float;
    case ::onnx::TensorProto::INT64:
    case ::onnx::TensorProto::INT32: return DType::Int64;
    case ::onnx::TensorProto::BOOL: return DType::Bool;
    default:
      throw Error(ALMC_ERR_UNSUPPORTED, what + " has data type " + dtype_name(t) +
                                            "; the executor runs float32 tensors (float16 and bfloat16 widened to float32, int64/int32 for shapes and "
                                            "indices, bool masks)");
  }
}

// IEEE binary16 and bfloat16 bit patterns as the float32 they denote (exact).
double from_half(uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double sign = (h & 0x8000) ? -1.0 : 1.0;
  if (e == 0x1f) return m ? NAN : sign * INFINITY;
  return sign * (e ? std::ldexp(1024.0 + m, e - 25) : std::ldexp(double(m), -24));
}
double from_bf16(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return double(f);
}

// The n values of type T in raw (little-endian, as ONNX stores them) converted by `convert`.
template <class T, class Out, class Convert>
void read_raw(const std::string& raw, int64_t n, std::vector<Out>& out, const std::string& what, Convert convert) {
  if (int64_t(raw.size()) != n * int64_t(sizeof(T)))
    throw Error(ALMC_ERR_PARSE, what + ": raw data holds " + std::to_string(raw.size()) + " bytes, its shape needs " +
                                    std::to_string(n * int64_t(sizeof(T))));
  out.resize(size_t(n));
  for (int64_t i = 0; i < n; ++i) {
    T v;
    std::memcpy(&v, raw.data() + i * sizeof(T), sizeof(T));
    out[size_t(i)] = Out(convert(v));
  }
}
template <class T>
void read_raw(const std::string& raw, int64_t n, std::vector<double>& out, const std::string& what) {
  read_raw<T>(raw, n, out, what, [](T v) { return double(v); });
}

// Weights kept outside the model file (ONNX external data: torch.onnx.export's dynamo exporter
// writes model.onnx + model.onnx.data by default). Files are read once per load, only from the
// model's own folder or below it.
class ExternalData {
 public:
  explicit ExternalData(std::string dir) : dir_(std::move(dir)) {}
  // The bytes of tensor `what`'s external_data entries (location, offset, length).
  std::string bytes(const ::onnx::TensorProto& tp, const std::string& what) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      auto number = [&](const std::string& v) {
        uint64_t n = 0;
        if (!parse_count(v, n) || n > uint64_t(INT64_MAX))
          throw Error(ALMC_ERR_PARSE, what + ": external data " + kv.key() + " '" + v + "' is not a byte count");
        return int64_t(n);
      };
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = number(kv.value());
      else if (kv.key() == "length") length = number(kv.value());
    }
    if (dir_.empty())
      throw Error(ALMC_ERR_UNSUPPORTED, what + " uses external data, which needs the model loaded from its file");
    if (location.empty()) throw Error(ALMC_ERR_PARSE, what + " uses external data without a location");
    if (location[0] == '/' || location.find('\\') != std::string::npos || ("/" + location + "/").find("/../") != std::string::npos)
      throw Error(ALMC_ERR_PARSE, what + ": external data location '" + location +
                                      "' is not a relative path inside the model's folder");
    auto it = files_.find(location);
    if (it == files_.end()) {
      std::vector<unsigned char> b;
      try {
        b = io::read_regular_file(dir_ + "/" + location, io::kMaxArrayFileBytes);
      } catch (const io::IoError& e) {
        throw Error(ALMC_ERR_IO, what + ": external data " + e.what());
      }
      it = files_.emplace(location, std::string(b.begin(), b.end())).first;
    }
    const std::string& f = it->second;
    if (offset > int64_t(f.size()) || (length >= 0 && length > int64_t(f.size()) - offset))
      throw Error(ALMC_ERR_PARSE, what + ": external data '" + location + "' holds " + std::to_string(f.size()) +
                                      " bytes; the tensor's offset " + std::to_string(offset) +
                                      (length >= 0 ? " and length " + std::to_string(length) : "") + " reach past its end");
    return f.substr(size_t(offset), length >= 0 ? size_t(length) : std::string::npos);
  }

 private:
  std::string dir_;
  std::map<std::string, std::string> files_;
};

// A constant tensor (initializer or attribute). float64 constants are accepted (torch writes them
// without constant folding): their values are kept in double for folding and read as float32 by
// runtime ops; a runtime cast to float64 computes in float32 (fold.cpp).
ConstPtr convert_tensor(const ::onnx::TensorProto& tp, const std::string& what, ExternalData& ext) {
  auto t = std::make_shared<HostTensor>();
  const bool external = tp.data_location() == ::onnx::TensorProto::EXTERNAL;
  const bool f64 = tp.data_type() == ::onnx::TensorProto::DOUBLE;
  t->dtype = f64 ? DType::Float : map_dtype(tp.data_type(), what);
  int64_t n = 1;
  for (auto d : tp.dims()) {
    if (d < 0 || d > (int64_t(1) << 31)) throw Error(ALMC_ERR_PARSE, what + " has an invalid dimension " + std::to_string(d));
    n *= d;
    if (n > (int64_t(1) << 31)) throw Error(ALMC_ERR_PARSE, what + " is too large");
    t->shape.push_back(d);
  }
  const int dt = tp.data_type();
  // float32, float16 and bfloat16 values are stored as float32 (exactly), the rest as double.
  const bool half = dt == ::onnx::TensorProto::FLOAT16 || dt == ::onnx::TensorProto::BFLOAT16;
  auto widen = [dt](uint16_t b) { return dt == ::onnx::TensorProto::FLOAT16 ? from_half(b) : from_bf16(b); };
  if (external || tp.has_raw_data()) {
    const std::string ext_raw = external ? ext.bytes(tp, what) : std::string();
    const std::string& raw = external ? ext_raw : tp.raw_data();
    std::vector<float> f;
    std::vector<double> d;
    if (dt == ::onnx::TensorProto::FLOAT) read_raw<float>(raw, n, f, what, [](float v) { return v; });
    else if (half) read_raw<uint16_t>(raw, n, f, what, widen);
    else if (f64) read_raw<double>(raw, n, d, what);
    else if (dt == ::onnx::TensorProto::INT64) read_raw<int64_t>(raw, n, d, what);
    else if (dt == ::onnx::TensorProto::INT32) read_raw<int32_t>(raw, n, d, what);
    else read_raw<uint8_t>(raw, n, d, what);
    if (dt == ::onnx::TensorProto::FLOAT || half) t->v = Values::of_floats(std::move(f));
    else t->v = std::move(d);
  } else {
    int64_t have = 0;
    if (dt == ::onnx::TensorProto::FLOAT) {
      have = tp.float_data_size();
      t->v = Values::of_floats(std::vector<float>(tp.float_data().begin(), tp.float_data().end()));
    } else if (f64) {
      have = tp.double_data_size();
      for (double v : tp.double_data()) t->v.push_back(v);
    } else if (dt == ::onnx::TensorProto::INT64) {
      have = tp.int64_data_size();
      for (auto v : tp.int64_data()) t->v.push_back(double(v));
    } else if (half) {  // the bits in int32_data
      have = tp.int32_data_size();
      std::vector<float> f;
      for (auto v : tp.int32_data()) f.push_back(float(widen(uint16_t(v))));
      t->v = Values::of_floats(std::move(f));
    } else {
      have = tp.int32_data_size();
      for (auto v : tp.int32_data()) t->v.push_back(double(v));
    }
    if (have != n)
      throw Error(ALMC_ERR_PARSE, what + " holds " + std::to_string(have) + " values, its shape needs " + std::to_string(n));
  }
  return t;
}

ValueInfo convert_value_info(const ::onnx::ValueInfoProto& vi, const std::string& what) {
  ValueInfo out;
  out.name = vi.name();
  if (!vi.type().has_tensor_type()) throw Error(ALMC_ERR_UNSUPPORTED, what + " '" + vi.name() + "' is not a tensor");
  const auto& tt = vi.type().tensor_type();
  // A float64 graph input or output (a level declared as double, say) is fed and read as float32,
  // as a runtime cast to float64 computes in float32.
  out.dtype = tt.elem_type() == ::onnx::TensorProto::DOUBLE ? DType::Float : map_dtype(tt.elem_type(), what + " '" + vi.name() + "'");
  if (tt.has_shape()) {
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0 || d.dim_value() > (int64_t(1) << 31))
          throw Error(ALMC_ERR_PARSE, what + " '" + vi.name() + "' has an invalid dimension " + std::to_string(d.dim_value()));
        out.dims.push_back(d.dim_value());
      } else {
        out.dims.push_back(-1);
      }
      out.dim_names.push_back(d.has_dim_param() ? d.dim_param() : std::string());
    }
  }
  return out;
}

// Fields newer than Debian's libonnx 1.12 (IR 8) reach it as unknown fields: a string field's
// values by field number (FunctionProto.overload 13 and attribute_proto 11, NodeProto.overload 8).
std::vector<std::string> unknown_bytes(const google::protobuf::Message& m, int field) {
  std::vector<std::string> r;
  const auto& u = m.GetReflection()->GetUnknownFields(m);
  for (int i = 0; i < u.field_count(); ++i)
    if (u.field(i).number() == field && u.field(i).type() == google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED)
      r.push_back(u.field(i).length_delimited());
  return r;
}
std::string overload_of(const google::protobuf::Message& m, int field) {
  const auto v = unknown_bytes(m, field);
  return v.empty() ? std::string() : v.back();
}

}  // namespace

// Model-local functions (ModelProto.functions, IR 8 and later; torch's exporters can write them,
// e.g. export_modules_as_functions, and onnxscript does): every call is replaced by the function's
// body, its inputs and outputs renamed to the call's, its other values given a prefix unique to
// the call, and attribute references (ref_attr_name) given the call's attribute or the function's
// default. Calls inside bodies are expanded too, to a depth of 16; the result is bounded in size.
void inline_functions(::onnx::ModelProto& model, int64_t opset, const std::string& what) {
  if (model.functions_size() == 0) return;
  std::map<std::string, const ::onnx::FunctionProto*> fns;
  auto key = [](const std::string& domain, const std::string& name, const std::string& overload) {
    return domain + '\n' + name + '\n' + overload;
  };
  for (const auto& f : model.functions()) {
    if (!fns.emplace(key(f.domain(), f.name(), overload_of(f, 13)), &f).second)
      throw Error(ALMC_ERR_PARSE, what + ": function '" + f.domain() + "." + f.name() + "' is defined twice");
    for (const auto& op : f.opset_import())
      if ((op.domain().empty() || op.domain() == "ai.onnx") && op.version() != opset)
        throw Error(ALMC_ERR_UNSUPPORTED, what + ": function '" + f.name() + "' imports opset " + std::to_string(op.version()) +
                                              " and the model opset " + std::to_string(opset) + " (one opset per model is supported)");
  }
  constexpr int kMaxDepth = 16;
  constexpr int kMaxNodes = 1 << 18;
  google::protobuf::RepeatedPtrField<::onnx::NodeProto> out;
  int64_t calls = 0;
  std::function<void(const ::onnx::NodeProto&, int)> expand = [&](const ::onnx::NodeProto& n, int depth) {
    auto it = fns.find(key(n.domain(), n.op_type(), overload_of(n, 8)));
    if (it == fns.end()) {
      if (out.size() >= kMaxNodes) throw Error(ALMC_ERR_UNSUPPORTED, what + ": more than 2^18 nodes once its functions are expanded");
      *out.Add() = n;
      return;
    }
    const ::onnx::FunctionProto& f = *it->second;
    if (depth >= kMaxDepth)
      throw Error(ALMC_ERR_PARSE, what + ": function calls nested deeper than " + std::to_string(kMaxDepth) + " (a recursive function?) at '" +
                                      f.name() + "'");
    if (n.input_size() > f.input_size() || n.output_size() > f.output_size())
      throw Error(ALMC_ERR_PARSE, what + ": node '" + n.name() + "' calls function '" + f.name() + "' with " +
                                      std::to_string(n.input_size()) + " inputs and " + std::to_string(n.output_size()) +
                                      " outputs; it has " + std::to_string(f.input_size()) + " and " + std::to_string(f.output_size()));
    const std::string prefix = (n.name().empty() ? f.name() : n.name()) + "::" + std::to_string(calls++) + "::";
    std::unordered_map<std::string, std::string> rename;
    for (int i = 0; i < f.input_size(); ++i) rename[f.input(i)] = i < n.input_size() ? n.input(i) : std::string();
    for (int i = 0; i < f.output_size(); ++i)
      rename[f.output(i)] = i < n.output_size() && !n.output(i).empty() ? n.output(i) : prefix + f.output(i);
    std::map<std::string, ::onnx::AttributeProto> attrs;
    for (const auto& bytes : unknown_bytes(f, 11)) {  // defaults (IR 9)
      ::onnx::AttributeProto a;
      if (!a.ParseFromString(bytes)) throw Error(ALMC_ERR_PARSE, what + ": function '" + f.name() + "' has an unreadable attribute default");
      attrs[a.name()] = a;
    }
    for (const auto& a : n.attribute()) attrs[a.name()] = a;
    for (const auto& body : f.node()) {
      ::onnx::NodeProto c = body;
      c.set_name(prefix + body.name());
      for (auto& v : *c.mutable_input())
        if (!v.empty()) {
          auto r = rename.find(v);
          v = r != rename.end() ? r->second : prefix + v;
        }
      for (auto& v : *c.mutable_output())
        if (!v.empty()) {
          auto r = rename.find(v);
          v = r != rename.end() ? r->second : prefix + v;
        }
      google::protobuf::RepeatedPtrField<::onnx::AttributeProto> resolved;
      for (const auto& a : body.attribute()) {
        if (a.ref_attr_name().empty()) {
          *resolved.Add() = a;
          continue;
        }
        auto v = attrs.find(a.ref_attr_name());
        if (v == attrs.end()) continue;  // neither given nor defaulted: the attribute is absent
        ::onnx::AttributeProto& r = *resolved.Add();
        r = v->second;
        r.set_name(a.name());
        r.clear_ref_attr_name();
      }
      c.mutable_attribute()->Swap(&resolved);
      expand(c, depth + 1);
    }
  };
  for (const auto& n : model.graph().node()) expand(n, 0);
  model.mutable_graph()->mutable_node()->Swap(&out);
}

std::string Node::label() const { return op + " '" + name + "'"; }
int64_t Node::geti(const std::string& k, int64_t def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.i;
}
float Node::getf(const std::string& k, float def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.f;
}
std::string Node::gets(const std::string& k, const std::string& def) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? def : it->second.s;
}
std::vector<int64_t> Node::getints(const std::string& k) const {
  auto it = attrs.find(k);
  return it == attrs.end() ? std::vector<int64_t>{} : it->second.ints;
}

bool op_supported(const std::string& op) { return find_op(op) != nullptr; }

Graph load_graph_from_bytes(std::string bytes, const std::string& what, const std::string& dir) {
  ::onnx::ModelProto model;
  if (bytes.empty()) throw Error(ALMC_ERR_PARSE, what + " is empty");
  if (bytes.size() > (size_t(1) << 31) || !model.ParseFromString(bytes))
    throw Error(ALMC_ERR_PARSE, what + " is not a valid ONNX model (protobuf parsing failed: truncated or not ONNX)");
  std::string().swap(bytes);  // the file's bytes are in `model` now: not held while converting
  if (!model.has_graph() || model.graph().node_size() == 0)
    throw Error(ALMC_ERR_PARSE, what + " holds no graph (truncated or not an ONNX model)");

  Graph g;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") g.opset = op.version();
  if (g.opset == 0) throw Error(ALMC_ERR_PARSE, what + " imports no default-domain opset");
  // Opsets 19 to 25 changed the supported ops' types only, except where the lowering reads the
  // opset itself (GroupNormalization 21's per-channel scale) or an attribute a later opset added
  // (AveragePool 19's dilations, Resize 18's axes / antialias / keep_aspect_ratio_policy and 19's
  // half_pixel_symmetric, Pad 18's axes and 19's wrap mode, Cast 19's saturate and 24's round_mode,
  // which only concern float8 types).
  if (g.opset < kMinOpset || g.opset > kMaxOpset)
    throw Error(ALMC_ERR_UNSUPPORTED, what + " uses opset " + std::to_string(g.opset) + "; the executor supports " +
                                          std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset));

  inline_functions(model, g.opset, what);
  const auto& gp = model.graph();
  // Structural checks first: they give clearer messages than the checker's.
  std::unordered_set<std::string> known;
  for (const auto& init : gp.initializer()) known.insert(init.name());
  for (const auto& in : gp.input()) known.insert(in.name());
  std::unordered_map<std::string, int> producer;
  for (int i = 0; i < gp.node_size(); ++i)
    for (const auto& o : gp.node(i).output())
      if (!o.empty()) {
        if (producer.count(o) || known.count(o))
          throw Error(ALMC_ERR_PARSE, what + ": tensor '" + o + "' is produced twice (node '" + gp.node(i).name() + "')");
        producer[o] = i;
      }
  for (int i = 0; i < gp.node_size(); ++i)
    for (const auto& in : gp.node(i).input())
      if (!in.empty() && !known.count(in) && !producer.count(in))
        throw Error(ALMC_ERR_PARSE, what + ": input '" + in + "' of node " + gp.node(i).op_type() + " '" +
                                        gp.node(i).name() + "' is not produced by any node, initializer or graph input");
  for (const auto& o : gp.output())
    if (!known.count(o.name()) && !producer.count(o.name()))
      throw Error(ALMC_ERR_PARSE, what + ": graph output '" + o.name() + "' is not produced by any node");

  // Kahn's topological order (the checker requires sorted nodes; we sort anyway and name a cycle).
  std::vector<int> indeg(size_t(gp.node_size()), 0);
  std::vector<std::vector<int>> users(size_t(gp.node_size()));
  for (int i = 0; i < gp.node_size(); ++i)
    for (const auto& in : gp.node(i).input()) {
      auto it = producer.find(in);
      if (!in.empty() && it != producer.end()) {
        ++indeg[size_t(i)];
        users[size_t(it->second)].push_back(i);
      }
    }
  std::vector<int> order, ready;
  for (int i = gp.node_size() - 1; i >= 0; --i)
    if (indeg[size_t(i)] == 0) ready.push_back(i);
  while (!ready.empty()) {
    int i = ready.back();
    ready.pop_back();
    order.push_back(i);
    for (int u : users[size_t(i)])
      if (--indeg[size_t(u)] == 0) ready.push_back(u);
  }
  if (int(order.size()) != gp.node_size()) {
    std::string names;
    for (int i = 0; i < gp.node_size(); ++i)
      if (indeg[size_t(i)] > 0) names += (names.empty() ? "" : ", ") + gp.node(i).op_type() + " '" + gp.node(i).name() + "'";
    throw Error(ALMC_ERR_PARSE, what + ": the graph has a cycle through nodes " + names);
  }

  // One message naming every unsupported operator and node.
  std::string unsupported;
  for (const auto& n : gp.node()) {
    const bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (!default_domain || !op_supported(n.op_type()))
      unsupported += std::string(unsupported.empty() ? "" : ", ") + (default_domain ? "" : n.domain() + ".") + n.op_type() +
                     " (node '" + n.name() + "')";
  }
  if (!unsupported.empty())
    throw Error(ALMC_ERR_UNSUPPORTED, what + " uses operators the built-in executor does not implement: " + unsupported);

  // libonnx checks only the IR versions and opsets it knows (Debian 12's 1.12: IR 8, opsets to
  // 17). Newer exporters write IR 9 to 11 and opsets 18 and later (torch 2.x's); such a model skips
  // libonnx's checker, whose older schemas would misread the newer forms (ReduceMean's axes as an
  // input, Split's num_outputs) or not know the op (Gelu). The loader's own checks above and in
  // convert_tensor, and the planner's checks of every op it lowers, still apply.
  const auto& ranges = ::onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  const auto range = ranges.find(::onnx::ONNX_DOMAIN);
  const bool libonnx_knows =
      model.ir_version() <= ::onnx::IR_VERSION && range != ranges.end() && g.opset <= range->second.second;
  // With external data, the initializers are read first: a missing or misplaced data file is
  // named as such, before the checker (which looks for it relative to the working directory)
  // would report it. Without, the checker runs first, so that each initializer's bytes can be
  // released as soon as they are converted (a large model was held twice while loading).
  bool external = false;
  for (const auto& init : gp.initializer()) external = external || init.data_location() == ::onnx::TensorProto::EXTERNAL;
  auto check = [&] {
    if (libonnx_knows) try {
        if (!external) {
          ::onnx::checker::check_model(model);
        } else {  // the checker only tests that each data file exists: give it the paths from here
          ::onnx::ModelProto copy = model;
          for (auto& init : *copy.mutable_graph()->mutable_initializer())
            for (auto& kv : *init.mutable_external_data())
              if (kv.key() == "location") kv.set_value(dir + "/" + kv.value());
          ::onnx::checker::check_model(copy);
        }
      } catch (const std::exception& e) {
        throw Error(ALMC_ERR_PARSE, what + " fails the ONNX checker: " + e.what());
      }
  };
  if (!external) check();
  ExternalData ext(dir);
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    g.initializers[init.name()] = convert_tensor(init, "initializer '" + init.name() + "'", ext);
    if (!external) std::string().swap(*init.mutable_raw_data());
  }
  if (external) check();
  // libonnx's shape inference is not run: the planner computes every shape itself (and refuses
  // bad convolution weights, strides, dilations and groups), while inference could be made to
  // stop the process: a 1-D convolution weight read past its end, a pooling stride of 0 divided
  // by, and a 10 KB file (a Reshape to a 3e18-long axis whose Shape fed an Expand) made it build
  // a shape of 3e18 dimensions, 23 GB before the kernel killed it (all found by fuzz_onnx).
  // Output shapes a model does not declare stay unknown until planning.
  for (const auto& in : gp.input())
    if (!g.initializers.count(in.name())) g.inputs.push_back(convert_value_info(in, "graph input"));
  for (const auto& out : gp.output()) g.outputs.push_back(convert_value_info(out, "graph output"));
  if (g.outputs.empty()) throw Error(ALMC_ERR_PARSE, what + " has no output");

  for (int i : order) {
    const auto& np = gp.node(i);
    Node n;
    n.name = np.name().empty() ? np.op_type() + "_" + std::to_string(i) : np.name();
    n.op = np.op_type();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const auto& a : np.attribute()) {
      Attr at;
      at.i = a.i();
      at.f = a.f();
      at.s = a.s();
      at.ints.assign(a.ints().begin(), a.ints().end());
      at.floats.assign(a.floats().begin(), a.floats().end());
      if (a.has_t()) at.t = convert_tensor(a.t(), "attribute '" + a.name() + "' of node " + n.label(), ext);
      n.attrs[a.name()] = std::move(at);
    }
    g.nodes.push_back(std::move(n));
  }
  return g;
}

Graph load_graph(const std::string& path) {
  std::string bytes;
  try {
    const std::vector<unsigned char> b = io::read_regular_file(path, io::kMaxModelFileBytes);
    bytes.assign(b.begin(), b.end());
  } catch (const io::IoError& e) {
    throw Error(ALMC_ERR_IO, std::string("ONNX model ") + e.what());
  }
  const size_t slash = path.find_last_of('/');
  return load_graph_from_bytes(std::move(bytes), "ONNX model '" + path + "'", slash == std::string::npos ? "." : path.substr(0, slash + 1));
}

}  // namespace almc::onnx
