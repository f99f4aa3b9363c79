// The ONNX graph as the executor sees it: nodes with parsed attributes, constant tensors, inputs
// and outputs. Loading parses the protobuf, runs the ONNX checker and shape inference (after
// refusing convolution weights whose inference would read out of bounds), checks the graph
// (dtypes, references, cycles) and refuses unsupported operators in one message.
#pragma once
#include <almc/almc.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <iterator>
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

// The values of a constant tensor, read as double: exact for float32 and for every int64 a shape
// computation produces (|v| < 2^53; larger values such as INT64_MAX in Slice ends only need to
// compare as "huge" and are clamped where they are used). float32 values read from the model
// (its weights: nearly all of a large model's memory) and float32 results of constant folding are
// stored as float32, everything else as double. Writing through a non-const accessor stores
// doubles (a float32 store is widened once, then written), so a store never rounds what is
// written to it.
class Values {
 public:
  Values() = default;
  Values(std::initializer_list<double> l) : d_(l) {}
  Values& operator=(std::initializer_list<double> l) { return *this = std::vector<double>(l); }
  Values& operator=(std::vector<double> v) {
    std::vector<float>().swap(f_);
    floats_ = false;
    d_ = std::move(v);
    return *this;
  }
  static Values of_floats(std::vector<float> f) {
    Values r;
    r.floats_ = true;
    r.f_ = std::move(f);
    return r;
  }

  size_t size() const { return floats_ ? f_.size() : d_.size(); }
  bool empty() const { return size() == 0; }
  double operator[](size_t i) const { return floats_ ? double(f_[i]) : d_[i]; }
  double& operator[](size_t i) { return doubles()[i]; }
  // The float32 store, or null when the values are stored as double.
  const float* floats() const { return floats_ ? f_.data() : nullptr; }
  // The double store (a float32 store is widened first).
  std::vector<double>& doubles() {
    if (floats_) {
      d_.assign(f_.begin(), f_.end());
      std::vector<float>().swap(f_);
      floats_ = false;
    }
    return d_;
  }
  // The double store of values stored as double (an internal error otherwise: use floats()).
  const double* double_data() const {
    if (floats_) throw Error(ALMC_ERR_INTERNAL, "internal: float32 constant read as double storage");
    return d_.data();
  }
  double* data() { return doubles().data(); }
  void resize(size_t n) { doubles().resize(n); }
  void assign(size_t n, double x) { doubles().assign(n, x); }
  void push_back(double x) { doubles().push_back(x); }
  std::vector<double>::iterator begin() { return doubles().begin(); }
  std::vector<double>::iterator end() { return doubles().end(); }

  class const_iterator {  // reads values as double, whichever the store
   public:
    using iterator_category = std::random_access_iterator_tag;
    using value_type = double;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = double;
    const_iterator(const Values* o, size_t i) : o_(o), i_(i) {}
    double operator*() const { return (*o_)[i_]; }
    double operator[](difference_type k) const { return (*o_)[size_t(difference_type(i_) + k)]; }
    const_iterator& operator++() { ++i_; return *this; }
    const_iterator operator++(int) { const_iterator r = *this; ++i_; return r; }
    const_iterator& operator--() { --i_; return *this; }
    const_iterator& operator+=(difference_type k) { i_ = size_t(difference_type(i_) + k); return *this; }
    const_iterator operator+(difference_type k) const { const_iterator r = *this; return r += k; }
    difference_type operator-(const const_iterator& o) const { return difference_type(i_) - difference_type(o.i_); }
    bool operator==(const const_iterator& o) const { return i_ == o.i_; }
    bool operator!=(const const_iterator& o) const { return i_ != o.i_; }
    bool operator<(const const_iterator& o) const { return i_ < o.i_; }

   private:
    const Values* o_;
    size_t i_;
  };
  const_iterator begin() const { return const_iterator(this, 0); }
  const_iterator end() const { return const_iterator(this, size()); }

 private:
  bool floats_ = false;
  std::vector<float> f_;
  std::vector<double> d_;
};

// A constant tensor on the host.
struct HostTensor {
  DType dtype = DType::Float;
  std::vector<int64_t> shape;
  Values v;
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
