// The engine's noise against cuRAND itself: raw Philox draws are bit-identical to cuRAND's host
// generator where the two orderings coincide, and to the device API compiled for the host.
#include "cuda/rng.cuh"

#include <curand.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace {

TEST(Rng, RawDrawsMatchCurandHostGenerator) {
  // cuRAND's host Philox generator writes group g of subsequence s (< 65536) at 4 (65536 g + s):
  // for chain 0 that is our step s, coordinate group g.
  const uint64_t seed = 0x5eed1234abcdull;
  curandGenerator_t gen;
  ASSERT_EQ(curandCreateGeneratorHost(&gen, CURAND_RNG_PSEUDO_PHILOX4_32_10), CURAND_STATUS_SUCCESS);
  ASSERT_EQ(curandSetPseudoRandomGeneratorSeed(gen, seed), CURAND_STATUS_SUCCESS);
  const size_t groups = 3;
  std::vector<unsigned int> out(4 * 65536 * groups);
  ASSERT_EQ(curandGenerate(gen, out.data(), out.size()), CURAND_STATUS_SUCCESS);
  curandDestroyGenerator(gen);
  size_t compared = 0;
  for (uint64_t g = 0; g < groups; ++g)
    for (uint64_t s = 0; s < 65536; s += 7) {
      const uint4 r = almc::philox_raw4(seed, 0, s, g);
      const size_t i = 4 * (65536 * g + s);
      ASSERT_EQ(r.x, out[i]) << "step " << s << " group " << g;
      ASSERT_EQ(r.y, out[i + 1]);
      ASSERT_EQ(r.z, out[i + 2]);
      ASSERT_EQ(r.w, out[i + 3]);
      ++compared;
    }
  EXPECT_GT(compared, 28000u);
}

TEST(Rng, MatchesCurandDeviceApiOnHost) {
  // curand_init(seed, chain << 32 | step, 4 g) then curand4 / curand_normal4: the documented keying.
  for (uint64_t chain : {0ull, 1ull, 17ull, 123456ull})
    for (uint64_t step : {0ull, 5ull, 99999ull})
      for (uint64_t g : {0ull, 3ull, 1000ull}) {
        curandStatePhilox4_32_10_t s;
        curand_init(42ull, (chain << 32) | step, 4 * g, &s);
        const uint4 a = curand4(&s);
        const uint4 b = almc::philox_raw4(42, chain, step, g);
        EXPECT_EQ(a.x, b.x);
        EXPECT_EQ(a.w, b.w);
        curand_init(42ull, (chain << 32) | step, 4 * g, &s);
        const float4 na = curand_normal4(&s);
        const float4 nb = almc::philox_normal4(42, chain, step, g);
        EXPECT_EQ(na.x, nb.x);
        EXPECT_EQ(na.y, nb.y);
        EXPECT_EQ(na.z, nb.z);
        EXPECT_EQ(na.w, nb.w);
      }
}

TEST(Rng, NormalsHaveUnitMoments) {
  // 4 * 50000 normals: mean within 4 / sqrt(n), variance within 4 sqrt(2 / n).
  const int n_groups = 50000;
  double s = 0, s2 = 0;
  for (int g = 0; g < n_groups; ++g) {
    const float4 v = almc::philox_normal4(7, 3, 11, g);
    for (float x : {v.x, v.y, v.z, v.w}) {
      s += x;
      s2 += double(x) * x;
    }
  }
  const double n = 4.0 * n_groups, mean = s / n, var = s2 / n - mean * mean;
  EXPECT_LT(std::fabs(mean), 4 / std::sqrt(n));
  EXPECT_LT(std::fabs(var - 1), 4 * std::sqrt(2 / n));
}

TEST(Rng, KeysGiveDistinctStreams) {
  const uint4 a = almc::philox_raw4(1, 0, 0, 0), b = almc::philox_raw4(1, 1, 0, 0), c = almc::philox_raw4(1, 0, 1, 0),
              d = almc::philox_raw4(2, 0, 0, 0), e = almc::philox_raw4(1, 0, 0, 1);
  for (const uint4& o : {b, c, d, e}) EXPECT_NE(a.x, o.x);
}

}  // namespace
