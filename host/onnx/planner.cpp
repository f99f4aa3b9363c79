// Plan building: graph inputs, the nodes in order (dispatched by op_table()), the output, then the
// fusion and arena passes (see builder.hpp for the file of each pass).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "host/backend/backend.hpp"
#include "host/onnx/builder.hpp"

namespace almc::onnx::planning {

void Builder::build() {
  // A model exported without a dynamic batch axis declares x's batch as a number: the level input
  // with that same leading dimension is taken as batched too.
  int64_t fixed_batch = -1;
  for (const auto& vi : g_.inputs)
    if (vi.name == io_.x_input && !vi.dims.empty() && vi.dims[0] > 0) fixed_batch = vi.dims[0];
  // Graph inputs: x, the level, and nothing else.
  for (const auto& vi : g_.inputs) {
    const bool is_x = vi.name == io_.x_input, is_level = vi.name == io_.level_input;
    if (!is_x && !is_level)
      throw Error(ALMC_ERR_UNSUPPORTED, "graph input '" + vi.name + "' is neither x ('" + io_.x_input +
                                            "') nor the level" + (io_.level_input.empty() ? "" : " ('" + io_.level_input + "')"));
    std::vector<int64_t> shape = vi.dims;
    if (is_x) {
      if (shape.empty()) throw Error(ALMC_ERR_UNSUPPORTED, "input x '" + vi.name + "' must have a batch dimension first");
      shape[0] = n_;
      for (size_t d = 1; d < shape.size(); ++d)
        if (shape[d] < 0)
          throw Error(ALMC_ERR_UNSUPPORTED, "input x '" + vi.name + "' has a dynamic dimension " + std::to_string(d) +
                                                ": give one sample's shape (almc sample --shape C,H,W; almc_onnx_config "
                                                "x_shape; OnnxScore(shape=...))");
    } else {
      if (!shape.empty() && fixed_batch > 1 && shape[0] == fixed_batch) shape[0] = n_;
      for (size_t d = 0; d < shape.size(); ++d)
        if (shape[d] < 0) {
          if (d != 0)
            throw Error(ALMC_ERR_UNSUPPORTED, "level input '" + vi.name + "' has a dynamic dimension " + std::to_string(d));
          shape[d] = n_;
        }
      // A level shaped [N] with a fixed N equal to... keep what the model says, batch when dynamic.
    }
    Node fake;
    fake.name = vi.name;
    fake.op = "input";
    fake.outputs = {vi.name};
    cur_ = &fake;
    if (int64_t(shape.size()) > kMaxDims) fail("rank above 8");
    // The level keeps its declared type: an int64 timestep divides as an integer (held as floats
    // at run time, as every integer tensor is).
    Val& v = def(0, shape, is_x ? DType::Float : vi.dtype);
    P.storages[size_t(v.sid)].pinned_start = true;
    BufRef r;
    r.id = v.sid;
    if (is_x) {
      P.x = r;
      P.x_count = numel(shape);
    } else {
      P.level = r;
      P.level_count = numel(shape);
      P.level_used = true;
    }
    cur_ = nullptr;
  }
  if (!vals_.count(io_.x_input)) throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no input named '" + io_.x_input + "'");
  if (!io_.level_input.empty() && !vals_.count(io_.level_input))
    throw Error(ALMC_ERR_INVALID_ARGUMENT, "the model has no input named '" + io_.level_input + "'");
  int64_t weights = 0;
  for (const auto& kv : g_.initializers) {
    if (kv.second->shape.size() > size_t(kMaxDims))
      throw Error(ALMC_ERR_UNSUPPORTED, "initializer '" + kv.first + "' has rank above the executor's limit of 8");
    Val v;
    v.dtype = kv.second->dtype;
    v.shape = kv.second->shape;
    v.c = kv.second;
    vals_[kv.first] = v;
    fold_budget_ += 2 * int64_t(kv.second->v.size());
    weights += int64_t(kv.second->v.size()) + 16;
  }
  // The weights are most of the constants: room for them at once, so that the buffer does not
  // grow by reallocation (1.5x a large model's weights at its peak, and a copy at each doubling).
  P.consts.reserve(size_t(weights));
  const std::vector<Node> nodes = recognise_gelu(g_);
  for (const auto& nd : nodes) {
    cur_ = &nd;
    node();
  }
  cur_ = nullptr;
  auto it = vals_.find(io_.output);
  if (it == vals_.end()) throw Error(ALMC_ERR_PARSE, "graph output '" + io_.output + "' was not computed");
  const Val& o = it->second;
  if (o.shape.empty() || o.shape[0] != n_)
    throw Error(ALMC_ERR_UNSUPPORTED, "graph output '" + io_.output + "' has shape " + shape_str(o.shape) +
                                          "; its first dimension must be the batch (" + std::to_string(n_) + ")");
  P.out_count = numel(o.shape);
  if (o.c || o.sid == P.x.id || (P.level_used && o.sid == P.level.id)) {
    // The output must be its own arena storage: copy a constant or an input through.
    Node fake;
    fake.name = "output_copy";
    fake.op = "Identity";
    fake.inputs = {io_.output};
    fake.outputs = {io_.output + "#copy"};
    cur_ = &fake;
    node_elementwise(EW_COPY, 1);
    cur_ = nullptr;
    P.out = ref(vals_[io_.output + "#copy"]);
  } else {
    P.out = ref(o);
  }
  P.storages[size_t(P.out.id)].pinned_end = true;
  fuse_elementwise(P);
  fuse_norm_epilogues(P);
  fuse_epilogues(P);
  collapse_elementwise(P);
  place_arena(P);
}

void Builder::node() {
  const OpInfo* info = find_op(cur_->op);
  if (!info) fail("op " + cur_->op + " is not supported");  // the loader refuses these first
  switch (info->family) {
    case OpFamily::Constant: return node_constant();
    case OpFamily::Elementwise: return node_elementwise(info->ew, info->arity);
    case OpFamily::Gemm: return node_gemm();
    case OpFamily::MatMul: return node_matmul();
    case OpFamily::Conv: return node_conv(false);
    case OpFamily::ConvTranspose: return node_conv(true);
    case OpFamily::Pool: return node_pool();
    case OpFamily::Resize: return node_resize();
    case OpFamily::Pad: return node_pad();
    case OpFamily::Reduce: return node_reduce();
    case OpFamily::Softmax: return node_softmax();
    case OpFamily::Norm: return node_norm();
    case OpFamily::Layout: return node_layout();
    case OpFamily::Composite: return node_composite();
    case OpFamily::Sequence: return node_sequence();
  }
}

}  // namespace almc::onnx::planning

namespace almc::onnx {

float* ConstAlloc::allocate(size_t n) {
  if (backend) {  // refused before allocating, as the executor refuses an arena that does not fit
    const size_t bytes = n * sizeof(float), avail = backend->available_memory();
    if (bytes > avail)
      throw Error(ALMC_ERR_OUT_OF_MEMORY, "the network's constants need " + std::to_string(bytes >> 20) + " MiB of host memory but " +
                                              std::to_string(avail >> 20) + " MiB are available");
    return static_cast<float*>(backend->alloc(bytes));  // 64-byte aligned
  }
  return static_cast<float*>(::operator new(n * sizeof(float), std::align_val_t(64)));
}
void ConstAlloc::deallocate(float* p, size_t) noexcept {
  if (backend) backend->dealloc(p);
  else ::operator delete(p, std::align_val_t(64));
}

Plan build_plan(const Graph& g, const IoSpec& io, int64_t n, Backend* host) {
  if (n <= 0 || n > planning::kMaxElems) throw Error(ALMC_ERR_INVALID_ARGUMENT, "batch size " + std::to_string(n) + " out of range");
  Plan p;
  p.consts = ConstFloats(ConstAlloc{host});
  p.n = n;
  planning::Builder b(g, io, n, p);
  try {
    b.build();
  } catch (const Error& e) {
    // A batch fixed at export (no dynamic_axes) is the likely cause of a shape error at another batch.
    for (const auto& vi : g.inputs)
      if (vi.name == io.x_input && !vi.dims.empty() && vi.dims[0] > 0 && vi.dims[0] != n)
        throw Error(e.status(), std::string(e.what()) + " (the model's input '" + vi.name + "' has a fixed batch of " +
                                    std::to_string(vi.dims[0]) + " and runs here at batch " + std::to_string(n) +
                                    ": export it with dynamic_axes={'" + vi.name + "': {0: 'batch'}, ...})");
    throw;
  }
  return p;
}

}  // namespace almc::onnx
