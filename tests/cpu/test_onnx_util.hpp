// Helpers of the ONNX executor tests (CPU and GPU): fixture paths and a minimal .npy reader
// (little-endian float32, C order; what tests/data/make_models.py writes).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace onnx_test {

inline std::string data_dir() {
  if (const char* e = std::getenv("ALMC_TEST_DATA")) return std::string(e) + "/onnx/";
  return "tests/data/onnx/";
}

struct Npy {
  std::vector<int64_t> shape;
  std::vector<float> v;
};

inline Npy read_npy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot open " + path);
  char magic[8];
  f.read(magic, 8);
  if (std::string(magic, 6) != "\x93NUMPY") throw std::runtime_error(path + " is not .npy");
  uint32_t hlen = 0;
  if (magic[6] == 1) {
    uint16_t h;
    f.read(reinterpret_cast<char*>(&h), 2);
    hlen = h;
  } else {
    f.read(reinterpret_cast<char*>(&hlen), 4);
  }
  std::string header(hlen, ' ');
  f.read(&header[0], hlen);
  if (header.find("'<f4'") == std::string::npos) throw std::runtime_error(path + " is not float32");
  if (header.find("'fortran_order': False") == std::string::npos) throw std::runtime_error(path + " is Fortran order");
  Npy out;
  auto a = header.find('(', header.find("'shape'")), b = header.find(')', a);
  std::stringstream ss(header.substr(a + 1, b - a - 1));
  std::string tok;
  int64_t n = 1;
  while (std::getline(ss, tok, ','))
    if (tok.find_first_not_of(' ') != std::string::npos) {
      out.shape.push_back(std::stoll(tok));
      n *= out.shape.back();
    }
  out.v.resize(size_t(n));
  f.read(reinterpret_cast<char*>(out.v.data()), n * 4);
  if (!f) throw std::runtime_error(path + " is truncated");
  return out;
}

// max|a - b| / max(1, max|b|): the relative metric of the fixture tests.
inline double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  double m = 0, s = 1;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return 1e30;  // NaN would slip through max()
    m = std::max(m, double(std::abs(a[i] - b[i])));
    s = std::max(s, double(std::abs(b[i])));
  }
  if (a.size() != b.size()) return 1e30;
  return m / s;
}

inline const char* const kFixtures[] = {"mlp_embed", "unet", "resmlp", "misc_ops", "norm_act", "gauss_vp_eps", "gauss_ve_denoiser"};

// The zoo of exported architectures (tests/data/make_zoo.py, make_opset_models.py and
// make_dynamo_models.py): inputs "x" and "t", expected outputs
// from torch (zoo_ops: onnxruntime).
inline const char* const kZoo[] = {"zoo_einsum_attn_o17", "zoo_fourier_mlp_o14", "zoo_reduce_o13",
                                   "zoo_shuffle_o13_nofold", "zoo_conv1d_o13", "zoo_misc_o13", "zoo_sweep_o17", "zoo_interp_o11", "zoo_interp_o17", "zoo_ops",
                                   "zoo_opset18", "zoo_opset23", "zoo_attention23", "zoo_sequences18", "zoo_functions18", "zoo_cubic19", "zoo_scatter18", "zoo_math18",
                                   // torch 2.x's exporter (dynamo): tests/data/make_dynamo_models.py
                                   "zoo_dyn_token_attn_o18", "zoo_dyn_token_attn_o23", "zoo_dyn_attn_unet_o23",
                                   "zoo_dyn_interp_o18", "zoo_dyn_diffusers_unet_o23", "zoo_dyn_shuffle_o18_noopt", "zoo_dyn_bicubic_o18", "zoo_dyn_inplace_o18", "zoo_dyn_sweep_o18",
                                   // float16 / bfloat16 exports, run in float32 (make_opset_models.py)
                                   "zoo_half_attn_unet", "zoo_bf16_token_attn"};

}  // namespace onnx_test
