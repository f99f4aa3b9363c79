// The engine's noise against cuRAND itself: raw Philox draws are bit-identical to cuRAND's host
// generator where the two orderings coincide, and to the device API compiled for the host. The
// Box-Muller transform (rng.cuh's own polynomials) against long-double references, against
// cuRAND's sinf/cosf/logf evaluation, and bitwise across the CPU's SIMD paths and the scalar code.
#include "cuda/rng.cuh"
#include "host/backend/cpu_noise.hpp"
#include "host/backend/cpu_noise_batch.hpp"

#include <curand.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
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
        EXPECT_EQ(a.y, b.y);
        EXPECT_EQ(a.z, b.z);
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

// Distance of got from ref in units of the float ulp at ref (2^(e-24) for |ref| in [2^(e-1), 2^e)).
double ulps(float got, long double ref) {
  if (ref == 0) return got == 0 ? 0 : 1e30;
  int e;
  std::frexp(static_cast<double>(ref), &e);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - ref) / std::ldexp(1.0L, e - 24));
}

// The raw draws the transform tests sweep: every 1024th value with varying low bits (2^22 of the
// 2^32; a few seconds under the sanitizers), the edges, and +-16 around every quadrant boundary of the angle (multiples of 2^30: sin
// or cos crosses zero) and of its reduction (odd multiples of 2^29: the nearest quarter turn
// changes).
std::vector<unsigned int> swept_draws() {
  std::vector<unsigned int> v;
  for (uint64_t i = 0; i < (1u << 22); ++i) v.push_back(static_cast<unsigned int>(1024 * i + ((i * 2654435761u) >> 22 & 1023)));
  for (unsigned int e : {0u, 1u, 2u, 0x80000000u, 0xfffffffeu, 0xffffffffu}) v.push_back(e);
  for (uint64_t j = 0; j < 16; ++j)
    for (int o = -16; o <= 16; ++o) v.push_back(static_cast<unsigned int>(j * (1ull << 29) + static_cast<uint64_t>(o)));
  return v;
}

// The Box-Muller radius sqrt(-2 ln u) against a long-double evaluation on the same float u
// (u = float(a) 2^-32 + 2^-33, rounded once: cuRAND's u). Bound 1.5 ulp: the degree-8 fit of
// ln(1 + f) is off by 0.07 ulp of ln u, the multiply-adds round to ~0.6 ulp of ln u in all
// (k ln 2 and ln(1 + f) partly cancel when u is just below 1/2: up to ~1 ulp), the square root
// halves that and adds 0.5 ulp of its own. Observed over 2^30 draws (every 4th): 0.97 ulp.
TEST(Rng, BoxMullerRadiusWithinBoundOfLongDouble) {
  double worst = 0;
  unsigned int at = 0;
  for (unsigned int a : swept_draws()) {
    const float u = std::fma(static_cast<float>(a), 0x1p-32f, 0x1p-33f);
    const long double ref = std::sqrt(-2.0L * std::log(static_cast<long double>(u)));
    const float r = almc::box_muller_radius(a);
    const double e = ulps(r, ref);
    if (e > worst) worst = e, at = a;
  }
  EXPECT_LE(worst, 1.5) << "at raw draw " << at;
  EXPECT_EQ(almc::box_muller_radius(0xffffffffu), 0.f);  // u rounds to 1
  EXPECT_NEAR(almc::box_muller_radius(0), std::sqrt(66 * std::log(2.0)), 4e-7);  // u = 2^-33
}

// sin and cos of the angle 2 pi (b + 1/2) 2^-32 against long double (whose own error at the
// smallest |sin| reached, 2 pi 2^-33, is ~0.01 float ulp). Bound 2 ulp: the reduced argument y
// rounds to float once (0.5 ulp of the angle, at most 0.5 ulp of sin and 0.4 of cos), the fits
// are off by 0.06 (sin, degree 7) and 0.001 ulp (cos, degree 8), the evaluation rounds to ~0.6
// ulp. Observed over 2^30 draws (every 4th): 1.31 ulp (sin and cos).
TEST(Rng, BoxMullerSinCosWithinBoundOfLongDouble) {
  const long double turn = 6.283185307179586476925286766559L / 4294967296.0L;
  double worst_s = 0, worst_c = 0;
  unsigned int at_s = 0, at_c = 0;
  for (unsigned int b : swept_draws()) {
    const long double angle = (static_cast<long double>(b) + 0.5L) * turn;
    const float2 sc = almc::box_muller_sincos(b);
    const double es = ulps(sc.x, std::sin(angle)), ec = ulps(sc.y, std::cos(angle));
    if (es > worst_s) worst_s = es, at_s = b;
    if (ec > worst_c) worst_c = ec, at_c = b;
  }
  EXPECT_LE(worst_s, 2.0) << "sin at raw draw " << at_s;
  EXPECT_LE(worst_c, 2.0) << "cos at raw draw " << at_c;
}

// The normals against cuRAND's curand_normal4 compiled for the host (glibc's logf, sinf, cosf on
// cuRAND's float angle v = b 2pi 2^-32 + pi 2^-32). cuRAND's angle is itself rounded (by up to
// ~1.5 ulp of v, ~5e-7 near 2 pi), which moves its normal by radius x that error: the bound is 4
// ulp of the normal plus radius x |v - exact angle| (1.01 for the rounding of that product).
// Outside that, a wrong quadrant or coefficient moves a normal by far more.
TEST(Rng, NormalsMatchCurandUpToItsAngleRounding) {
  const long double turn = 6.283185307179586476925286766559L / 4294967296.0L;
  double worst = 0;
  int checked = 0;
  std::mt19937_64 gen(7);
  for (int t = 0; t < 20000; ++t) {
    const uint64_t chain = gen() >> 40, step = gen() >> 40, g = gen() >> 40;
    curandStatePhilox4_32_10_t st;
    curand_init(42ull, (chain << 32) | step, 4 * g, &st);
    const float4 want = curand_normal4(&st);
    const uint4 raw = almc::philox_raw4(42, chain, step, g);
    const float4 got = almc::philox_normal4(42, chain, step, g);
    for (int e = 0; e < 4; ++e) {
      const unsigned int a = e < 2 ? raw.x : raw.z, b = e < 2 ? raw.y : raw.w;
      const float v = b * CURAND_2POW32_INV_2PI + (CURAND_2POW32_INV_2PI / 2);  // cuRAND's angle
      const long double dv = std::fabs(static_cast<long double>(v) - (static_cast<long double>(b) + 0.5L) * turn);
      const float r = almc::box_muller_radius(a), w = almc::component(want, e), x = almc::component(got, e);
      const long double ulp = std::ldexp(1.0L, std::ilogb(w == 0 ? 1e-30f : w) - 23);
      const long double tol = 4 * ulp + 1.01L * r * dv;
      ASSERT_LE(std::fabs(static_cast<long double>(x) - w), tol) << "chain " << chain << " step " << step << " g " << g << " e " << e;
      worst = std::max(worst, static_cast<double>(std::fabs(static_cast<long double>(x) - w) / tol));
      ++checked;
    }
  }
  EXPECT_EQ(checked, 80000);
  std::printf("largest difference / bound: %.3f\n", worst);
}

// fma_rn as host code without FMA instructions computes it (this file is built for baseline
// x86-64 or x86-64-v2: the double-precision emulation) against the C library's fmaf, which is
// correctly rounded: random operands over many exponents, sums that cancel, and products that
// lie exactly on the midpoint between two floats (odd 13-bit x odd 13-bit integers: 25 or 26
// significant bits) plus a c far below their last bit, where rounding the double sum to nearest
// first would go wrong.
TEST(Rng, FmaRnIsCorrectlyRounded) {
  std::mt19937 gen(11);
  std::uniform_real_distribution<float> mant(1.f, 2.f);
  std::uniform_int_distribution<int> ex(-40, 40), sign(0, 1), odd(2048, 4095);
  auto sgn = [&] { return sign(gen) ? -1.f : 1.f; };
  auto rnd = [&] { return std::ldexp(mant(gen), ex(gen)) * sgn(); };
  int mismatches = 0, cases = 0;
  auto check = [&](float a, float b, float c) {
    mismatches += almc::fma_rn(a, b, c) != std::fmaf(a, b, c);
    ++cases;
  };
  for (int t = 0; t < 100000; ++t) {
    const float a = rnd(), b = rnd();
    check(a, b, rnd());
    check(a, b, -static_cast<float>(static_cast<double>(a) * b) * mant(gen));  // cancellation
    const int e = ex(gen);
    const float ma = std::ldexp(static_cast<float>(2 * odd(gen) + 1), e), mb = static_cast<float>(2 * odd(gen) + 1) * sgn();
    for (float c : {0.f, 0x1p-30f, -0x1p-30f, 1.f, -1.f}) check(ma, mb, std::ldexp(c, e) * mant(gen));
  }
  EXPECT_EQ(mismatches, 0) << "of " << cases;
  // (1 + 2^-12)^2 = 1 + 2^-11 + 2^-24, halfway between two floats; a tiny c decides.
  const float h = 1.f + 0x1p-12f;
  for (float c : {0.f, 0x1p-60f, -0x1p-60f, 0x1p-90f, -0x1p-90f}) {
    EXPECT_EQ(almc::fma_rn(h, h, c), std::fmaf(h, h, c)) << c;
    EXPECT_EQ(almc::fma_rn(-h, h, -c), std::fmaf(-h, h, -c)) << c;
  }
}

// Every normals kernel the CPU can run (SSE2 with emulated multiply-adds, AVX2 and AVX-512 with
// the FMA instructions) gives the scalar philox_normal4 bit for bit, over many batches, partial
// batches, runs of several batches in one call (the kernels overlap one batch's Philox with the
// previous one's Box-Muller: a mixed-up batch fails here) and a counter that wraps; and so does
// the dispatching block (ALMC_CPU_NOISE can force it to any of them for the whole suite).
TEST(Rng, EveryCpuNoisePathGivesTheScalarNormalsBitwise) {
  namespace cn = almc::cpu_noise;
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  struct Isa {
    const char* name;
    cn::NormalsFn fn;
    bool have;
  };
  const Isa isas[] = {{"sse2", cn::normals_sse, true},
                      {"avx2", cn::normals_avx2, avx2},
                      {"avx512", cn::normals_avx512, avx2 && static_cast<bool>(__builtin_cpu_supports("avx512f"))}};
  int ran = 0;
  std::mt19937_64 gen(3);
  for (int batch = 0; batch < 600; ++batch) {
    const uint64_t seed = gen(), stream = gen(), step = gen() >> 33;
    // The group counter wraps inside the run when it starts 27 before 2^32.
    const unsigned int first = batch % 25 < 2 ? 0xffffffe5u : static_cast<unsigned int>(gen());
    // One batch, part of one, or several with or without a partial last one.
    const int n = batch % 5 == 0   ? 1 + static_cast<int>(gen() % cn::kBatch)
                  : batch % 5 == 1 ? cn::kBatch + 1 + static_cast<int>(gen() % (3 * cn::kBatch))
                  : batch % 5 == 2 ? cn::kBatch * (2 + static_cast<int>(gen() % 3))
                                   : cn::kBatch;
    const almc::PhiloxKey key = almc::philox_key(seed, stream, step);
    std::vector<float> want(4 * static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const float4 v = almc::philox_normal4(seed, stream, step, static_cast<unsigned int>(first + static_cast<unsigned int>(i)));
      std::memcpy(&want[4 * static_cast<size_t>(i)], &v, sizeof v);
    }
    for (const Isa& isa : isas) {
      if (!isa.have) continue;
      ran += batch == 0;
      std::vector<float> out(want.size());
      isa.fn(key, first, n, out.data());
      ASSERT_EQ(0, std::memcmp(out.data(), want.data(), out.size() * 4)) << isa.name << " batch " << batch << " n " << n;
    }
  }
  EXPECT_GE(ran, 1);
  std::printf("paths compared: %d (the backend uses %s)\n", ran, cn::kernel_name());
  for (int64_t n_groups : {1, 5, 64, 100, 1031}) {
    const uint64_t g0 = n_groups == 100 ? 0xffffffe0ull : 3;
    std::vector<float> out(4 * static_cast<size_t>(n_groups));
    almc::philox_normals_block(17, (2ull << 32) | 9, 1234, g0, n_groups, out.data());
    for (int64_t g = 0; g < n_groups; ++g) {
      const float4 want = almc::philox_normal4(17, (2ull << 32) | 9, 1234, g0 + static_cast<uint64_t>(g));
      ASSERT_EQ(0, std::memcmp(&out[4 * static_cast<size_t>(g)], &want, sizeof want)) << "group " << g << " of " << n_groups;
    }
  }
  // Rows of any length (a cut last group), from any group on.
  for (int64_t count : {1, 2, 3, 4, 7, 203, 4099}) {
    std::vector<float> out(static_cast<size_t>(count) + 1, -99.f);
    almc::philox_normals(5, 6, 7, 9, count, out.data());
    for (int64_t j = 0; j < count; ++j) {
      const float want = almc::component(almc::philox_normal4(5, 6, 7, 9 + static_cast<uint64_t>(j / 4)), static_cast<int>(j % 4));
      ASSERT_EQ(0, std::memcmp(&out[static_cast<size_t>(j)], &want, 4)) << "coordinate " << j << " of " << count;
    }
    EXPECT_EQ(out[static_cast<size_t>(count)], -99.f) << "wrote past the row of " << count;
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
