// Small helpers shared by the test programs.
#pragma once

#include <almc/almc.hpp>

#include "host/cli/validate_oracles.hpp"

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
using Lcg = almc::oracle::Lcg;

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
