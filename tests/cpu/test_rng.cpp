// The engine's noise against cuRAND itself: raw Philox draws are bit-identical to cuRAND's host
// generator where the two orderings coincide, and to the device API compiled for the host.
#include "cuda/rng.cuh"
#include "host/backend/cpu_noise.hpp"
#include "host/backend/cpu_noise_batch.hpp"

#include <curand.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
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

TEST(Rng, SharedPhiloxRoundsMatchCurand) {
  // rng.cuh's philox4x32_10 (the one copy both backends run) against cuRAND's own
  // curand_Philox4x32_10 on arbitrary counters and keys, not only the engine's keying.
  std::mt19937_64 gen(99);
  for (int t = 0; t < 20000; ++t) {
    const uint64_t a = gen(), b = gen(), k = gen();
    uint4 ctr;
    ctr.x = static_cast<unsigned int>(a);
    ctr.y = static_cast<unsigned int>(a >> 32);
    ctr.z = static_cast<unsigned int>(b);
    ctr.w = static_cast<unsigned int>(b >> 32);
    uint2 key;
    key.x = static_cast<unsigned int>(k);
    key.y = static_cast<unsigned int>(k >> 32);
    const uint4 want = curand_Philox4x32_10(ctr, key);
    unsigned int c0 = ctr.x, c1 = ctr.y, c2 = ctr.z, c3 = ctr.w;
    almc::philox4x32_10(c0, c1, c2, c3, key.x, key.y);
    ASSERT_EQ(c0, want.x) << "case " << t;
    ASSERT_EQ(c1, want.y);
    ASSERT_EQ(c2, want.z);
    ASSERT_EQ(c3, want.w);
  }
}

// Every SIMD Philox the CPU can run (SSE2, AVX2, AVX-512: the same shared rounds on 4, 8 and
// 16 lanes) gives the scalar draws bit for bit, for partial batches and a counter that wraps.
TEST(Rng, SimdPhiloxBatchesMatchScalarDraws) {
  namespace cn = almc::cpu_noise;
  __builtin_cpu_init();
  struct Isa {
    const char* name;
    cn::RawFn fn;
    bool have;
  };
  const Isa isas[] = {{"sse2", cn::raw_sse, true},
                      {"avx2", cn::raw_avx2, static_cast<bool>(__builtin_cpu_supports("avx2"))},
                      {"avx512", cn::raw_avx512, static_cast<bool>(__builtin_cpu_supports("avx512f"))}};
  int ran = 0;
  for (const Isa& isa : isas) {
    if (!isa.have) continue;
    ++ran;
    for (uint64_t stream : {0ull, (5ull << 32) | 77ull})
      for (uint64_t first : {0ull, 13ull, 0xfffffff9ull})
        for (int n : {1, 7, 17, cn::kBatch}) {
          const almc::PhiloxKey key = almc::philox_key(0xabcdef0123ull, stream, 42);
          cn::RawBatch raw;
          isa.fn(key, static_cast<unsigned int>(first), n, raw);
          for (int i = 0; i < n; ++i) {
            const uint4 want = almc::philox_raw4(0xabcdef0123ull, stream, 42, first + static_cast<uint64_t>(i));
            ASSERT_EQ(raw.u[0][i], want.x) << isa.name << " first " << first << " n " << n << " i " << i;
            ASSERT_EQ(raw.u[1][i], want.y) << isa.name;
            ASSERT_EQ(raw.u[2][i], want.z) << isa.name;
            ASSERT_EQ(raw.u[3][i], want.w) << isa.name;
          }
        }
  }
  EXPECT_GE(ran, 1);
}

// Each Box-Muller finish the CPU can run (angles, sines, cosines at SSE, AVX2 or AVX-512 width)
// against the scalar normals, on radii from the baseline code (tolerance as below).
TEST(Rng, EveryBoxMullerWidthMatchesScalarNormals) {
  namespace cn = almc::cpu_noise;
  __builtin_cpu_init();
  struct Isa {
    const char* name;
    cn::FinishFn fn;
    bool have;
  };
  const Isa isas[] = {{"sse2", cn::finish_sse, true},
                      {"avx2", cn::finish_avx2, static_cast<bool>(__builtin_cpu_supports("avx2"))},
                      {"avx512", cn::finish_avx512, static_cast<bool>(__builtin_cpu_supports("avx512f"))}};
  const almc::PhiloxKey key = almc::philox_key(5, 6, 7);
  for (const Isa& isa : isas) {
    if (!isa.have) continue;
    for (int n : {3, cn::kBatch}) {
      cn::RawBatch raw;
      cn::Radii radii;
      cn::raw_sse(key, 100, n, raw);
      cn::radii_sse(n, raw, radii);
      std::vector<float> out(4 * static_cast<size_t>(n));
      isa.fn(n, raw, radii, out.data());
      for (int i = 0; i < n; ++i) {
        const float4 want = almc::philox_normal4(5, 6, 7, 100 + static_cast<uint64_t>(i));
        for (int e = 0; e < 4; ++e) {
          const float w = almc::component(want, e);
          ASSERT_NEAR(out[4 * static_cast<size_t>(i) + e], w, 1e-5f + 1e-5f * std::fabs(w)) << isa.name << " i " << i;
        }
      }
    }
  }
}

TEST(Rng, CpuNormalsBlockMatchesScalarNormals) {
  // The block's normals are the scalar philox_normal4 up to the vector libm's last bits: a wrong
  // raw draw or a misplaced group would differ by O(1). Tolerance: 1e-5 absolute + 1e-5 relative
  // (vector logf/sinf/cosf are within a few ulps of the scalar ones, and |normal| < 7).
  for (int64_t n_groups : {1, 5, 64, 100, 1031}) {
    const uint64_t g0 = n_groups == 100 ? 0xffffffe0ull : 3;
    std::vector<float> out(4 * static_cast<size_t>(n_groups));
    almc::philox_normals_block(17, (2ull << 32) | 9, 1234, g0, n_groups, out.data());
    for (int64_t g = 0; g < n_groups; ++g) {
      const float4 want = almc::philox_normal4(17, (2ull << 32) | 9, 1234, g0 + static_cast<uint64_t>(g));
      for (int e = 0; e < 4; ++e) {
        const float w = almc::component(want, e), got = out[4 * static_cast<size_t>(g) + e];
        ASSERT_NEAR(got, w, 1e-5f + 1e-5f * std::fabs(w)) << "group " << g << " entry " << e << " of " << n_groups;
      }
    }
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
