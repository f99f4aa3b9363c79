// The ONNX operators the executor runs: ONE table, read by the loader (its refusal message names
// every node whose op is not here), the planner (which lowering handles each op) and the tests
// (which check that the README lists exactly these ops).
#pragma once
#include <string>
#include <vector>

#include "cuda/onnx/params.hpp"

namespace almc::onnx {

// How the planner lowers an op (host/onnx/lower_*.cpp, fold.cpp).
enum class OpFamily {
  Constant,     // folded when the model is loaded: Constant, Shape, Size, ConstantOfShape, Range, Cast
  Elementwise,  // one EwOp (fused into chains later)
  Gemm,
  MatMul,
  Conv,
  ConvTranspose,
  Pool,
  Resize,
  Pad,
  Reduce,
  Softmax,
  Norm,
  Layout,  // data movement: Concat, Split, Reshape, Flatten, Transpose, (Un)squeeze, Gather, Slice, Expand, Tile
  Composite,  // rewritten as other ops (lower_composite.cpp): Einsum, BatchNormalization, DepthToSpace, ...
  Sequence,   // tensor sequences, resolved while planning into lists of tensors (lower_layout.cpp)
};

struct OpInfo {
  const char* name;
  OpFamily family;
  EwOp ew = EW_COPY;  // Elementwise only
  int arity = 0;      // Elementwise only: inputs read
};

const std::vector<OpInfo>& op_table();
// The table's row for an ONNX op type, or null when the executor does not run it.
const OpInfo* find_op(const std::string& op_type);

}  // namespace almc::onnx
