// Reading a Gaussian-mixture prior from JSON:
//   {"weights": [K], "means": [[d], ...], "variances": [[d], ...]}
// "variances" may also hold K scalars (isotropic components) or be given as "stds".
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace almc {

struct GmmSpec {
  int64_t K = 0, d = 0;
  std::vector<float> weights, means, variances;  // [K], [K*d], [K*d]
};

// Throws Error(ALMC_ERR_IO) when the file cannot be read, Error(ALMC_ERR_PARSE) naming the
// problem when its content is not a valid mixture.
GmmSpec read_gmm_json(const std::string& path);
GmmSpec parse_gmm_json(const std::string& text);

}  // namespace almc
