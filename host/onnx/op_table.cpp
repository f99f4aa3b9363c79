// The supported-op table (see op_table.hpp).
#include "host/onnx/op_table.hpp"

#include <unordered_map>

namespace almc::onnx {

const std::vector<OpInfo>& op_table() {
  using F = OpFamily;
  static const std::vector<OpInfo> table = {
      {"Constant", F::Constant}, {"Shape", F::Constant}, {"Size", F::Constant}, {"ConstantOfShape", F::Constant},
      {"Range", F::Constant}, {"Cast", F::Constant}, {"EyeLike", F::Constant},
      {"Identity", F::Elementwise, EW_COPY, 1}, {"Dropout", F::Elementwise, EW_COPY, 1},
      {"Neg", F::Elementwise, EW_NEG, 1}, {"Abs", F::Elementwise, EW_ABS, 1}, {"Sqrt", F::Elementwise, EW_SQRT, 1},
      {"Reciprocal", F::Elementwise, EW_RECIP, 1}, {"Exp", F::Elementwise, EW_EXP, 1}, {"Log", F::Elementwise, EW_LOG, 1},
      {"Sin", F::Elementwise, EW_SIN, 1}, {"Cos", F::Elementwise, EW_COS, 1}, {"Tanh", F::Elementwise, EW_TANH, 1},
      {"Sigmoid", F::Elementwise, EW_SIGMOID, 1}, {"Relu", F::Elementwise, EW_RELU, 1},
      {"LeakyRelu", F::Elementwise, EW_LEAKY_RELU, 1}, {"Elu", F::Elementwise, EW_ELU, 1},
      {"Softplus", F::Elementwise, EW_SOFTPLUS, 1}, {"Erf", F::Elementwise, EW_ERF, 1},
      {"Floor", F::Elementwise, EW_FLOOR, 1}, {"Ceil", F::Elementwise, EW_CEIL, 1}, {"Not", F::Elementwise, EW_NOT, 1},
      {"Clip", F::Elementwise, EW_CLIP, 1}, {"Add", F::Elementwise, EW_ADD, 2}, {"Sub", F::Elementwise, EW_SUB, 2},
      {"Mul", F::Elementwise, EW_MUL, 2}, {"Div", F::Elementwise, EW_DIV, 2}, {"Pow", F::Elementwise, EW_POW, 2},
      {"Max", F::Elementwise, EW_MAX, 2}, {"Min", F::Elementwise, EW_MIN, 2}, {"Equal", F::Elementwise, EW_EQUAL, 2},
      {"Less", F::Elementwise, EW_LESS, 2}, {"Greater", F::Elementwise, EW_GREATER, 2},
      {"LessOrEqual", F::Elementwise, EW_LESS_EQ, 2}, {"GreaterOrEqual", F::Elementwise, EW_GREATER_EQ, 2},
      {"And", F::Elementwise, EW_AND, 2}, {"Or", F::Elementwise, EW_OR, 2}, {"Where", F::Elementwise, EW_WHERE, 3},
      {"HardSigmoid", F::Elementwise, EW_HARD_SIGMOID, 1}, {"HardSwish", F::Elementwise, EW_HARD_SWISH, 1},
      {"Selu", F::Elementwise, EW_SELU, 1}, {"Softsign", F::Elementwise, EW_SOFTSIGN, 1},
      {"Sign", F::Elementwise, EW_SIGN, 1}, {"Round", F::Elementwise, EW_ROUND, 1}, {"Mish", F::Elementwise, EW_MISH, 1},
      {"Celu", F::Elementwise, EW_CELU, 1}, {"Tan", F::Elementwise, EW_TAN, 1}, {"Asin", F::Elementwise, EW_ASIN, 1},
      {"Acos", F::Elementwise, EW_ACOS, 1}, {"Atan", F::Elementwise, EW_ATAN, 1}, {"Sinh", F::Elementwise, EW_SINH, 1},
      {"Cosh", F::Elementwise, EW_COSH, 1}, {"Asinh", F::Elementwise, EW_ASINH, 1}, {"Acosh", F::Elementwise, EW_ACOSH, 1},
      {"Atanh", F::Elementwise, EW_ATANH, 1}, {"IsNaN", F::Elementwise, EW_ISNAN, 1}, {"IsInf", F::Elementwise, EW_ISINF, 1},
      {"Mod", F::Elementwise, EW_MOD, 2}, {"Xor", F::Composite}, {"CumSum", F::Composite},
      {"Gemm", F::Gemm}, {"MatMul", F::MatMul}, {"Conv", F::Conv}, {"ConvTranspose", F::ConvTranspose},
      {"AveragePool", F::Pool}, {"MaxPool", F::Pool}, {"Resize", F::Resize}, {"Upsample", F::Resize}, {"Pad", F::Pad},
      {"ReduceMean", F::Reduce}, {"ReduceSum", F::Reduce}, {"ReduceMax", F::Reduce}, {"ReduceMin", F::Reduce}, {"ReduceProd", F::Reduce},
      {"GlobalAveragePool", F::Reduce}, {"GlobalMaxPool", F::Reduce},
      {"Softmax", F::Softmax}, {"LogSoftmax", F::Softmax},
      {"LayerNormalization", F::Norm}, {"InstanceNormalization", F::Norm}, {"GroupNormalization", F::Norm},
      {"Concat", F::Layout}, {"Split", F::Layout}, {"Reshape", F::Layout}, {"Flatten", F::Layout},
      {"Transpose", F::Layout}, {"Unsqueeze", F::Layout}, {"Squeeze", F::Layout}, {"Gather", F::Layout},
      {"Slice", F::Layout}, {"Expand", F::Layout}, {"Tile", F::Layout},
      {"Einsum", F::Composite}, {"BatchNormalization", F::Composite}, {"DepthToSpace", F::Composite},
      {"SpaceToDepth", F::Composite}, {"PRelu", F::Composite}, {"Sum", F::Composite}, {"Mean", F::Composite},
      {"ReduceL1", F::Composite}, {"ReduceL2", F::Composite}, {"ReduceSumSquare", F::Composite},
      {"ReduceLogSumExp", F::Composite}, {"Gelu", F::Composite}, {"RMSNormalization", F::Composite},
      {"Attention", F::Composite}, {"Trilu", F::Composite}, {"GatherND", F::Composite},
      {"ScatterND", F::Composite}, {"ScatterElements", F::Composite},
      {"CastLike", F::Constant},
      {"SplitToSequence", F::Sequence}, {"SequenceAt", F::Sequence}, {"SequenceConstruct", F::Sequence},
      {"ConcatFromSequence", F::Sequence}, {"SequenceLength", F::Sequence}, {"SequenceEmpty", F::Sequence},
      {"SequenceInsert", F::Sequence}, {"SequenceErase", F::Sequence},
  };
  return table;
}

const OpInfo* find_op(const std::string& op_type) {
  static const std::unordered_map<std::string, const OpInfo*> index = [] {
    std::unordered_map<std::string, const OpInfo*> m;
    for (const auto& o : op_table()) m.emplace(o.name, &o);
    return m;
  }();
  const auto it = index.find(op_type);
  return it == index.end() ? nullptr : it->second;
}

}  // namespace almc::onnx
