#include "host/core/gmm_json.hpp"

#include "host/core/error.hpp"
#include "host/io/file.hpp"

#include <nlohmann/json.hpp>

#include <cmath>

namespace almc {
namespace {

using json = nlohmann::json;

constexpr int64_t kMaxGmmElements = int64_t(1) << 31;

float number(const json& v, const std::string& where) {
  if (!v.is_number()) fail(ALMC_ERR_PARSE, "GMM JSON: ", where, " is not a number");
  const double x = v.get<double>();
  if (!std::isfinite(x) || std::fabs(x) > 3.0e38) fail(ALMC_ERR_PARSE, "GMM JSON: ", where, " is not a finite float");
  return static_cast<float>(x);
}

// Reads [[d], ...] with K rows, or (when allow_scalar) K scalars broadcast to d.
void read_rows(const json& arr, const char* name, int64_t K, int64_t& d, std::vector<float>& out, bool allow_scalar) {
  if (!arr.is_array()) fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\" must be an array");
  if (static_cast<int64_t>(arr.size()) != K)
    fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\" has ", arr.size(), " entries but \"weights\" has ", K);
  for (int64_t k = 0; k < K; ++k) {
    const json& row = arr[static_cast<size_t>(k)];
    if (allow_scalar && row.is_number()) continue;
    if (!row.is_array() || row.empty())
      fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\"[", k, "] must be a non-empty array of numbers");
    if (d < 0) d = static_cast<int64_t>(row.size());
    if (static_cast<int64_t>(row.size()) != d)
      fail(ALMC_ERR_PARSE, "GMM JSON: \"", name, "\"[", k, "] has length ", row.size(), " but the dimension is ", d);
  }
  if (d < 0) fail(ALMC_ERR_PARSE, "GMM JSON: cannot tell the dimension from \"", name, "\"");
  if (K * d > kMaxGmmElements) fail(ALMC_ERR_PARSE, "GMM JSON: K x d = ", K, " x ", d, " is too large");
  out.resize(static_cast<size_t>(K * d));
  for (int64_t k = 0; k < K; ++k) {
    const json& row = arr[static_cast<size_t>(k)];
    for (int64_t j = 0; j < d; ++j) {
      const std::string where = std::string("\"") + name + "\"[" + std::to_string(k) + "]" +
                                (row.is_number() ? "" : "[" + std::to_string(j) + "]");
      out[k * d + j] = number(row.is_number() ? row : row[static_cast<size_t>(j)], where);
    }
  }
}

}  // namespace

GmmSpec parse_gmm_json(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail(ALMC_ERR_PARSE, "GMM JSON: not valid JSON: ", e.what());
  }
  if (!doc.is_object()) fail(ALMC_ERR_PARSE, "GMM JSON: the top level must be an object");
  for (const char* key : {"weights", "means"})
    if (!doc.contains(key)) fail(ALMC_ERR_PARSE, "GMM JSON: missing \"", key, "\"");
  const bool has_var = doc.contains("variances"), has_std = doc.contains("stds");
  if (has_var == has_std) fail(ALMC_ERR_PARSE, "GMM JSON: give exactly one of \"variances\" and \"stds\"");
  GmmSpec g;
  const json& w = doc["weights"];
  if (!w.is_array() || w.empty()) fail(ALMC_ERR_PARSE, "GMM JSON: \"weights\" must be a non-empty array");
  g.K = static_cast<int64_t>(w.size());
  double total = 0;
  for (int64_t k = 0; k < g.K; ++k) {
    const float v = number(w[static_cast<size_t>(k)], "\"weights\"[" + std::to_string(k) + "]");
    if (v < 0) fail(ALMC_ERR_PARSE, "GMM JSON: \"weights\"[", k, "] = ", v, " is negative");
    g.weights.push_back(v);
    total += v;
  }
  if (!(total > 0)) fail(ALMC_ERR_PARSE, "GMM JSON: the weights sum to zero");
  int64_t d = -1;
  read_rows(doc["means"], "means", g.K, d, g.means, false);
  read_rows(doc[has_var ? "variances" : "stds"], has_var ? "variances" : "stds", g.K, d, g.variances, true);
  g.d = d;
  for (size_t i = 0; i < g.variances.size(); ++i) {
    float& v = g.variances[i];
    // Checked before squaring: a negative std is as wrong as a negative variance.
    if (v > 0 && has_std) v = v * v;
    if (!(v > 0))
      fail(ALMC_ERR_PARSE, "GMM JSON: ", has_var ? "variance" : "std", " of component ", i / d, ", coordinate ",
           i % d, " must be positive");
  }
  return g;
}

GmmSpec read_gmm_json(const std::string& path) {
  std::string text;
  try {
    const std::vector<unsigned char> bytes = io::read_regular_file(path, io::kMaxJsonFileBytes);
    text.assign(bytes.begin(), bytes.end());
  } catch (const io::IoError& e) {
    fail(ALMC_ERR_IO, "GMM JSON file ", e.what());
  }
  try {
    return parse_gmm_json(text);
  } catch (const Error& e) {
    fail(e.status(), path, ": ", e.what());
  }
}

}  // namespace almc
