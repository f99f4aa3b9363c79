// The execution plan of an ONNX graph for one batch size: kernel steps in topological order,
// with every runtime tensor at a fixed offset of one arena (liveness-based) and every constant
// the kernels read at a fixed offset of one constant buffer. Running a plan allocates nothing.
#pragma once
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <string>
#include <vector>

#include "cuda/onnx/params.hpp"
#include "host/onnx/graph.hpp"

namespace almc {
class Backend;
}

namespace almc::onnx {

enum class StepKind { Ew, Gemm, Conv, ConvT, Copy, Gather, Softmax, Norm, Reduce, Pool, Resize, Pad, Fill };

// Where a kernel operand lives: an arena storage (resolved to an offset after allocation) or the
// constant buffer. `off` is in floats.
struct BufRef {
  enum Space : uint8_t { Arena, Const } space = Arena;
  int id = -1;      // storage id (Arena) before resolution
  int64_t off = 0;  // element offset within the storage / the constant buffer
};

struct Step {
  StepKind kind = StepKind::Ew;
  std::string node;  // the ONNX node, for messages and profiles
  EwParams ew{};
  GemmParams gemm{};
  ConvParams conv{};
  CopyParams copy{};
  GatherParams gather{};
  SoftmaxParams softmax{};
  NormParams norm{};
  ReduceParams reduce{};
  PoolParams pool{};
  ResizeParams resize{};
  PadParams pad{};
  float fill_value = 0.f;
  int64_t fill_count = 0;
  float* fill_ptr = nullptr;
  // Operands in the order bind_step() assigns them to the params' pointers.
  std::vector<BufRef> refs;
  // Ew only: the shape before dimension collapsing (fusion compares it).
  std::vector<int64_t> ew_shape;
  // Gemm, Conv, ConvT of a plan for ALMC_PRECISION_BF16 (use_bf16): BF16 products, the constant
  // operand packed once at w16_off of the constant buffer (-1: none packed; Gemm: w16_side 1 is B
  // as pack_cols_bf16 [ceil(K/2), N], 0 is op(A) as pack_rows_bf16 [M, ceil(K/2)]; Conv: the weight
  // [M, ceil(Cg*KH*KW/2)]; ConvT: per group [Mg*KH*KW, ceil(Cg/2)]). w16 is bound by bind_plan.
  // CUDA: w16 holds the operand as a plain bfloat16 array in its fp32 layout, and scratch16 (bound
  // to the plan's scratch16_off) is where the step converts its runtime operands.
  bool bf16 = false;
  int w16_side = 1;
  int64_t w16_off = -1;
  const float* w16 = nullptr;
  float* scratch16 = nullptr;
  // Gemm of a CPU plan whose constant fp32 B is wide (cpu_pack_weights): B packed once at bp_off
  // of the constant buffer in the panels the kernel reads (-1: none), bound to bp by bind_plan.
  // bp_off may be B's own offset (packed in place): B is then read through bp only. fp32 ConvT
  // with a constant weight: its stride phases' weights (convt_phases.hpp), appended.
  int64_t bp_off = -1;
  const float* bp = nullptr;
};

struct Storage {
  int64_t size = 0;  // floats
  int first = 1 << 30, last = -1;
  int64_t offset = -1;
  bool pinned_start = false, pinned_end = false;  // graph inputs / the output
};

struct IoSpec {
  std::string x_input, level_input, output;  // level_input empty: none
  // Convolution workspace budget (floats): images are processed in chunks that fit it. The CPU
  // wants it cache-sized, CUDA wants few, large GEMMs.
  int64_t conv_workspace = int64_t(1) << 18;
};

// The allocator of a plan's constants: a host backend's memory when build_plan is given one (the
// executor then runs the plan on that buffer, with no second copy in backend memory), 64-byte
// aligned host memory otherwise (a CUDA plan's host copy, tests).
struct ConstAlloc {
  using value_type = float;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  template <class U>
  struct rebind {
    static_assert(std::is_same<U, float>::value, "constants are floats");
    using other = ConstAlloc;
  };
  Backend* backend = nullptr;
  float* allocate(size_t n);
  void deallocate(float* p, size_t n) noexcept;
  bool operator==(const ConstAlloc& o) const { return backend == o.backend; }
  bool operator!=(const ConstAlloc& o) const { return backend != o.backend; }
};
using ConstFloats = std::vector<float, ConstAlloc>;

struct Plan {
  int64_t n = 0;
  std::vector<Step> steps;
  std::vector<Storage> storages;
  ConstFloats consts;
  int64_t arena_floats = 0;
  int64_t scratch16_off = -1;  // CUDA BF16 plans: the scratch region's arena offset (use_bf16)
  BufRef x, level, out;  // resolved arena offsets
  int64_t x_count = 0, level_count = 0, out_count = 0;
  bool level_used = false;
};

// Room for `floats` more constants at the end of the plan's constant buffer, from the next
// 16-float (64-byte) boundary: returns their offset (the buffer may have moved).
inline int64_t append_consts(Plan& p, int64_t floats) {
  const int64_t off = (int64_t(p.consts.size()) + 15) / 16 * 16;
  p.consts.resize(size_t(off + floats));
  return off;
}

// Build the plan for batch size n (throws Error naming the node that cannot run).
// host: a host backend whose memory holds the plan's constants (see ConstAlloc), or null.
Plan build_plan(const Graph& g, const IoSpec& io, int64_t n, Backend* host = nullptr);

// Mark the plan's GEMM and convolution steps BF16 and convert their constant weights, for the CPU
// kernels or for CUDA (precision.cpp). After build_plan, before the buffers are allocated.
void use_bf16(Plan& p, bool cuda);

// Point the params of every step at arena + offsets and consts + offsets.
void bind_plan(Plan& p, float* arena, const float* consts);

// CPU execution of one bound step (host/onnx/cpu_kernels.cpp).
void cpu_run_step(const Step& s);
// CPU plans (before binding): every wide constant fp32 GEMM operand B packed once (Step::bp_off),
// so that no call copies it (cpu_kernels.cpp, gemm_packed_b): in place of the constant when no
// other step reads it (a Linear layer's weight: one copy), else appended to the constant buffer;
// and every fp32 ConvTranspose's constant weight as its stride phases' GEMM operands (appended).
void cpu_pack_weights(Plan& p);


// Reference helpers shared with constant folding (double) and the CPU kernels (float).
template <class T>
void cpu_copy(const CopyParams& p, const T* in, T* out);
template <class T>
void cpu_gather(const GatherParams& p, const T* data, const T* idx, T* out);

}  // namespace almc::onnx
