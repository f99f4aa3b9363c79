// Small helpers shared by the test programs.
#pragma once

#include <almc/almc.hpp>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

namespace almc_test {

// The test data folder: $ALMC_TEST_DATA, else tests/data relative to the working directory.
inline std::string data_dir() {
  if (const char* e = std::getenv("ALMC_TEST_DATA")) return e;
  return "tests/data";
}

// Deterministic pseudo-random values for test inputs (not the engine's generator).
struct Lcg {
  uint64_t s;
  explicit Lcg(uint64_t seed) : s(seed * 6364136223846793005ull + 1442695040888963407ull) {}
  double uniform() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) * (1.0 / 9007199254740992.0);
  }
  double normal() {
    const double u = uniform() + 1e-300, v = uniform();
    return std::sqrt(-2 * std::log(u)) * std::cos(6.283185307179586 * v);
  }
  std::vector<float> normals(size_t n, double scale = 1) {
    std::vector<float> v(n);
    for (auto& x : v) x = static_cast<float>(scale * normal());
    return v;
  }
};

inline almc_sampler_config quick_almc(int64_t chains, uint64_t seed, double noise_std) {
  almc_sampler_config c = almc_sampler_config_default();
  c.chains_per_meas = chains;
  c.seed = seed;
  c.noise_std = noise_std;
  c.kappa = 1;
  c.delta = 0.01;
  c.t_start = 1;
  c.t_stop = 0.05;
  return c;
}

}  // namespace almc_test
