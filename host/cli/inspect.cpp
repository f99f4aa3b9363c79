// `almc inspect model.onnx`: what a model takes and gives (names, shapes, dtypes), its opset, the
// operators it uses and whether the built-in executor implements each, and the adapter flags the
// command would guess for it, checked by loading the model with them.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "host/cli/commands.hpp"
#include "host/io/file.hpp"
#include "host/onnx/graph.hpp"

namespace almc::cli {
namespace {

using json = nlohmann::json;

struct InspectOptions {
  std::string model;
  JsonReport json;
};

struct Tensor {
  std::string name, dtype;
  std::vector<std::string> dims;  // a number, or the name of a free dimension ("?" when unnamed)
  int64_t per_sample = -1;         // product of the dims after the first (-1 if any is free)
};

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// ONNX's own name of an element type, in lower case, with float spelled float32.
std::string dtype_text(int t) {
  if (!::onnx::TensorProto_DataType_IsValid(t)) return "unknown";
  const std::string n = lower(::onnx::TensorProto_DataType_Name(static_cast<::onnx::TensorProto_DataType>(t)));
  return n == "float" ? "float32" : n == "double" ? "float64" : n;
}

// A free dimension's name that says nothing: torch's TorchScript exporter names the free
// dimensions of a node's output "<op type><output name>_dim_<k>" ("Reshapeeps_dim_1" for the
// Reshape that makes `eps`), which read as garbage beside the names a user gave ("batch").
bool generated_dim_name(const std::string& name) {
  const size_t at = name.rfind("_dim_");
  if (at == std::string::npos || at == 0 || at + 5 == name.size()) return false;
  for (size_t i = at + 5; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  return std::isupper(static_cast<unsigned char>(name[0]));  // op types are CamelCase
}

Tensor tensor_of(const ::onnx::ValueInfoProto& v) {
  Tensor t;
  t.name = v.name();
  const auto& tt = v.type().tensor_type();
  t.dtype = dtype_text(tt.elem_type());
  t.per_sample = 1;
  for (int i = 0; i < tt.shape().dim_size(); ++i) {
    const auto& d = tt.shape().dim(i);
    if (d.has_dim_value()) {
      t.dims.push_back(std::to_string(d.dim_value()));
      if (i > 0) t.per_sample *= d.dim_value();
    } else {
      t.dims.push_back(d.dim_param().empty() || generated_dim_name(d.dim_param()) ? "?" : d.dim_param());
      if (i > 0) t.per_sample = -1;
    }
    if (t.per_sample < 0 && i > 0) t.per_sample = -1;
  }
  return t;
}

std::string dims_text(const Tensor& t) {
  std::string s = "[";
  for (size_t i = 0; i < t.dims.size(); ++i) s += (i ? ", " : "") + t.dims[i];
  return s + "]";
}

bool contains(const std::string& hay, const char* needle) { return lower(hay).find(needle) != std::string::npos; }

void run_inspect(const InspectOptions& o) {
  // --json=FILE naming the model replaced the model with the report.
  check_distinct_files({{"--json", o.json.file()}}, {{"model", o.model}});
  o.json.prepare();
  // A regular file within the loader's cap: a device (/dev/zero) would be read until memory runs
  // out, a FIFO would block.
  std::vector<unsigned char> bytes;
  try {
    bytes = almc::io::read_regular_file(o.model, almc::io::kMaxModelFileBytes);
  } catch (const almc::io::IoError& e) {
    throw CliError(e.what());
  }
  if (bytes.size() > static_cast<size_t>(INT32_MAX)) throw CliError(o.model + ": too large for an ONNX model (2 GiB at most)");
  ::onnx::ModelProto model;
  if (bytes.empty() || !model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) || !model.has_graph())
    throw CliError(o.model + ": not an ONNX model (protobuf parsing failed)");
  int64_t opset = 0;
  for (const auto& op : model.opset_import())
    if (op.domain().empty() || op.domain() == "ai.onnx") opset = op.version();
  const int n_functions = model.functions_size();
  try {  // the operators counted are those of the graph with its local functions expanded
    almc::onnx::inline_functions(model, opset, o.model);
  } catch (const almc::Error& e) {
    throw CliError(e.what());
  }
  const auto& g = model.graph();
  std::set<std::string> init_names;
  for (const auto& i : g.initializer()) init_names.insert(i.name());
  std::vector<Tensor> inputs, outputs;
  for (const auto& v : g.input())
    if (!init_names.count(v.name())) inputs.push_back(tensor_of(v));
  for (const auto& v : g.output()) outputs.push_back(tensor_of(v));
  std::map<std::string, int> ops;
  std::vector<std::string> unsupported;
  for (const auto& n : g.node()) {
    const bool std_domain = n.domain().empty() || n.domain() == "ai.onnx";
    const std::string key = std_domain ? n.op_type() : n.domain() + "." + n.op_type();
    if (ops[key]++ == 0 && !(std_domain && almc::onnx::op_supported(n.op_type()))) unsupported.push_back(key);
  }
  int64_t params = 0;
  for (const auto& i : g.initializer()) {
    int64_t c = 1;
    for (auto d : i.dims()) c *= d;
    params += c;
  }
  // The report needs nothing more from the file: its bytes and parsed weights are not held while
  // the executor loads the model again below (a large model was held three times).
  const int n_nodes = g.node_size();
  std::vector<unsigned char>().swap(bytes);
  ::onnx::ModelProto().Swap(&model);  // freed, not kept for reuse as Clear() would

  // ---- guessed adapter flags
  std::vector<std::string> flags, notes;
  const Tensor* x = nullptr;
  for (const auto& t : inputs)
    if ((t.dtype == "float32" || t.dtype == "float64") && t.per_sample != 1) {
      x = &t;
      break;
    }
  if (!x && !inputs.empty()) x = &inputs[0];
  const Tensor* lv = nullptr;
  for (const auto& t : inputs)
    if (&t != x) {
      lv = &t;
      break;
    }
  if (x && !inputs.empty() && x != &inputs[0]) flags.push_back("--x-input " + x->name);
  if (lv && inputs.size() > 2) flags.push_back("--level-input " + lv->name);
  std::string level = "t";
  if (!lv) {
    level = "none";
  } else if (lv->dtype == "int64" || lv->dtype == "int32") {
    level = "index";
    notes.push_back("the level input '" + lv->name + "' is an integer timestep: give the model's alpha_bar table with --alpha-bar FILE.npy");
  } else if (contains(lv->name, "log") || contains(lv->name, "c_noise")) {
    level = "log-sigma";
  } else if (contains(lv->name, "sigma")) {
    level = "sigma";
  }
  std::string output = "eps", convention = "vp";
  const std::string oname = outputs.empty() ? "" : outputs[0].name;
  if (contains(oname, "score")) {
    output = "score";
  } else if (contains(oname, "denois") || contains(oname, "x0") || contains(oname, "sample")) {
    output = contains(oname, "denois") ? "denoiser" : "x0";
  }
  if (level == "sigma" || level == "log-sigma") convention = "ve";
  if (output == "denoiser") convention = "ve";
  flags.push_back("--output " + output);
  flags.push_back("--convention " + convention);
  flags.push_back("--level " + level);
  if (level == "index") flags.push_back("--alpha-bar FILE.npy");
  if (x && !outputs.empty() && x->per_sample > 0 && outputs[0].per_sample == 2 * x->per_sample)
    notes.push_back("the output has twice x's values per sample (learned variance): only its first half is the " + output +
                    " prediction");
  // Dimensions after the batch left free at export (dynamic height and width): the executor plans
  // once it is given one sample's shape.
  const bool x_free = x && x->per_sample < 0 && x->dims.size() > 1;
  if (x_free) {
    flags.push_back("--shape C,H,W");
    notes.push_back("x '" + x->name + "' has free dimensions after the batch: give one sample's shape with --shape");
  }
  if (outputs.size() > 1)
    notes.push_back("the model has " + std::to_string(outputs.size()) + " outputs: almc uses the first, '" + outputs[0].name +
                    "' (export the one you mean first, or alone)");
  notes.push_back("guesses from names, dtypes and shapes: check the model's documentation (docs/MODELS.md)");

  // ---- does the executor load it with these flags?
  std::string load = "not tried (an operator is not implemented)";
  if (x_free) {
    load = "not tried (needs --shape: x has free dimensions after the batch)";
  } else if (unsupported.empty() && level != "index") {
    Context ctx = make_context("cpu", 1, true);
    almc_onnx_config cfg = almc_onnx_config_default();
    cfg.output = output == "score" ? ALMC_OUTPUT_SCORE : output == "eps" ? ALMC_OUTPUT_EPS : output == "denoiser" ? ALMC_OUTPUT_DENOISER : ALMC_OUTPUT_X0;
    cfg.convention = convention == "vp" ? ALMC_CONV_VP : ALMC_CONV_VE;
    cfg.level = level == "t" ? ALMC_LEVEL_T : level == "sigma" ? ALMC_LEVEL_SIGMA : level == "log-sigma" ? ALMC_LEVEL_LOG_SIGMA : ALMC_LEVEL_NONE;
    if (x) cfg.x_input = x->name.c_str();
    if (lv) cfg.level_input = lv->name.c_str();
    almc_score_t s = nullptr;
    const almc_status st = almc_score_create_onnx(ctx.get(), o.model.c_str(), &cfg, &s);
    Score owned(s);
    load = st == ALMC_OK ? "loads and plans with these flags" : "refused: " + cli_terms(almc_context_last_error(ctx.get()));
  } else if (level == "index") {
    load = "not tried (needs the alpha_bar table)";
  }

  if (o.json.wanted()) {
    auto tj = [](const std::vector<Tensor>& ts) {
      json a = json::array();
      for (const auto& t : ts) a.push_back({{"name", t.name}, {"dtype", t.dtype}, {"shape", t.dims}});
      return a;
    };
    json j;
    j["model"] = o.model;
    j["opset"] = opset;
    j["inputs"] = tj(inputs);
    j["outputs"] = tj(outputs);
    j["parameters"] = params;
    j["local_functions"] = n_functions;
    json oj = json::object();
    for (const auto& [k, n] : ops) oj[k] = {{"count", n}, {"supported", std::find(unsupported.begin(), unsupported.end(), k) == unsupported.end()}};
    j["operators"] = oj;
    j["unsupported"] = unsupported;
    j["guessed_flags"] = flags;
    j["notes"] = notes;
    j["executor"] = load;
    o.json.emit(j);
    if (o.json.on_stdout()) return;
  }
  std::printf("%s: opset %lld, %lld parameters, %d nodes\n", o.model.c_str(), static_cast<long long>(opset),
              static_cast<long long>(params), n_nodes);
  if (n_functions > 0) std::printf("  local functions: %d, expanded into the nodes counted here\n", n_functions);
  for (const auto& t : inputs) std::printf("  input  '%s' %s %s\n", t.name.c_str(), t.dtype.c_str(), dims_text(t).c_str());
  for (const auto& t : outputs) std::printf("  output '%s' %s %s\n", t.name.c_str(), t.dtype.c_str(), dims_text(t).c_str());
  std::printf("  operators:");
  for (const auto& [k, n] : ops)
    std::printf(" %s x%d%s", k.c_str(), n, std::find(unsupported.begin(), unsupported.end(), k) == unsupported.end() ? "" : " (NOT SUPPORTED)");
  std::printf("\n");
  if (!unsupported.empty()) {
    std::string u;
    for (const auto& k : unsupported) u += (u.empty() ? "" : ", ") + k;
    std::printf("  the executor does not implement: %s\n", u.c_str());
  }
  std::string fl;
  for (const auto& s : flags) fl += (fl.empty() ? "" : " ") + s;
  std::printf("  guessed flags: %s\n  executor: %s\n", fl.c_str(), load.c_str());
  for (const auto& n : notes) std::printf("  note: %s\n", n.c_str());
}

}  // namespace

void register_inspect_command(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand("inspect", "Describe an ONNX model: inputs, outputs, operators, guessed flags");
  sub->add_option("model", o->model, "the .onnx file")->required();
  o->json.add_option(sub, "the same as JSON", true);
  sub->callback([o]() { run_inspect(*o); });
}

}  // namespace almc::cli
