// Counter-based noise: every normal is a pure function of (seed, stream, step, coordinate), where
// the stream names one chain: chain `j` of measurement `q` (noise_stream below), so a chain's
// noise does not depend on how many chains each measurement has, how the batch is split or how
// threads are laid out.
//
// Key = seed. Counter = (coordinate / 4, q, step, j) in cuRAND's layout: curand_init(seed,
// subsequence, offset) puts the subsequence in counter words 2-3 and the offset (in units of 4
// draws) in words 0-1, so subsequence = j << 32 | step and offset = 4 (group + q 2^32). One
// Philox call yields the four raw draws, and so four normals, of coordinates 4g .. 4g+3 (g, q, j
// and step are 32-bit). Both backends compile this code, so raw draws agree bit for bit with each
// other and with cuRAND. The normals are Box-Muller on cuRAND's pairing and order, but not through
// cuRAND's sinf/cosf/logf (whose results differ between the device, glibc and glibc's vector
// variants): box_muller below is exactly rounded arithmetic, so the normals are bit-identical on
// the GPU, every CPU SIMD path and the scalar host code; they are within a few ulps of cuRAND's
// (beyond that only where cuRAND's own float angle is off, near the zeros of sine and cosine).
#pragma once

#include "cuda/common.cuh"

#include <curand_kernel.h>

#include <math.h>
#include <string.h>

namespace almc {

// Steps at or above this key are reserved for draws outside the step loop (initial state,
// auxiliary measurements, output-iterate choice), keyed by kind in the low bits.
constexpr uint64_t kRngAuxStep = 0x80000000ull;
constexpr uint64_t kRngInitKey = kRngAuxStep + 1;
constexpr uint64_t kRngPickKey = kRngAuxStep + 2;
constexpr uint64_t kRngSmcKey = kRngAuxStep + 3;  // SMC resampling: stream = measurement, group = step
constexpr uint64_t kRngXgpKeyBase = kRngAuxStep + 16;  // + stage index

// The stream of global chain c when each measurement has cpm chains: q << 32 | j with
// c = q cpm + j. One division per chain (never per coordinate).
ALMC_HD uint64_t noise_stream(int64_t c, int64_t cpm) {
  const int64_t q = c / cpm;
  return (static_cast<uint64_t>(q) << 32) | static_cast<uint64_t>(c - q * cpm);
}

// Philox-4x32-10 (Salmon et al. 2011; cuRAND's constants and word order), written once over a
// lane type L: unsigned int here (one counter per thread or loop iteration), or a CPU SIMD vector of
// counters (host/backend/cpu_noise*.cpp), which supplies its own mulhilo and xor3 (with a
// broadcast key word). Rounds, word order and key schedule are this code only, whatever the lane type.
constexpr unsigned int kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;
constexpr unsigned int kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;

// Low 32 bits of a * b; the high 32 bits go to *hi.
ALMC_HD unsigned int mulhilo(unsigned int a, unsigned int b, unsigned int* hi) {
#if defined(__CUDA_ARCH__)
  *hi = __umulhi(a, b);
  return a * b;
#else
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<unsigned int>(p >> 32);
  return static_cast<unsigned int>(p);
#endif
}

// a ^ b ^ k (one instruction on AVX-512 lanes).
ALMC_HD unsigned int xor3(unsigned int a, unsigned int b, unsigned int k) { return a ^ b ^ k; }

template <class L>
ALMC_HD void philox_round(L& c0, L& c1, L& c2, L& c3, unsigned int k0, unsigned int k1) {
  L hi0, hi1;
  const L lo0 = mulhilo(c0, kPhiloxM0, &hi0);
  const L lo1 = mulhilo(c2, kPhiloxM1, &hi1);
  c0 = xor3(hi1, c1, k0);
  c2 = xor3(hi0, c3, k1);
  c1 = lo1;
  c3 = lo0;
}

// Ten rounds on the counter (c0, c1, c2, c3) with key (k0, k1), in place.
template <class L>
ALMC_HD void philox4x32_10(L& c0, L& c1, L& c2, L& c3, unsigned int k0, unsigned int k1) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__)
#pragma GCC unroll 10
#endif
  for (int r = 0; r < 10; ++r) {
    philox_round(c0, c1, c2, c3, k0, k1);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
}

// The counter and key words of (seed, stream, step, group) in cuRAND's layout (see the top).
struct PhiloxKey {
  unsigned int c1, c2, c3, k0, k1;  // counter word 0 is the coordinate group
};
ALMC_HD PhiloxKey philox_key(uint64_t seed, uint64_t stream, uint64_t step) {
  PhiloxKey k;
  k.c1 = static_cast<unsigned int>(stream >> 32);
  k.c2 = static_cast<unsigned int>(step);
  k.c3 = static_cast<unsigned int>(stream);
  k.k0 = static_cast<unsigned int>(seed);
  k.k1 = static_cast<unsigned int>(seed >> 32);
  return k;
}

// Four raw 32-bit draws for coordinates 4*group .. 4*group+3 of a stream.
ALMC_HD uint4 philox_raw4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  const PhiloxKey k = philox_key(seed, stream, step);
  unsigned int c0 = static_cast<unsigned int>(group), c1 = k.c1, c2 = k.c2, c3 = k.c3;
  philox4x32_10(c0, c1, c2, c3, k.k0, k.k1);
  uint4 r;
  r.x = c0;
  r.y = c1;
  r.z = c2;
  r.w = c3;
  return r;
}

// ---- Box-Muller, bit-identical on every backend
// The transform is written with IEEE operations whose results no compiler or instruction set may
// change: fused multiply-adds only where fma_rn says so, every other product through mul_rn (CUDA
// would otherwise contract it into a following add), integer bit manipulation for the exponent
// split and the angle reduction, conversions rounded to nearest and the IEEE square root. The
// polynomials are minimax fits (Lawson's iteration in double, coefficients rounded to float)
// whose own error is far below float rounding, so the result is accurate to ~1-2 ulp (0.97 ulp
// radius, 1.31 ulp sine and cosine over every 4th raw draw; tests/cpu/test_rng.cpp) and identical on the GPU, the CPU's
// SIMD paths and the scalar host code. This needs CUDA without -use_fast_math / -prec-sqrt=false
// and host code without -ffast-math (or -freciprocal-math / -ffinite-math-only).

// a * b + c rounded once. Host code built without FMA instructions (baseline x86-64, the SSE2
// paths) computes it in double: the product is exact there (24 + 24 bits), the sum is rounded to
// odd (rounded to nearest, then moved one ulp toward the exact sum when that was inexact and the
// result even: the exact error comes from TwoSum), and a double rounded to odd rounds correctly to
// float (53 >= 24 + 2 bits). Finite operands only.
#if defined(__CUDA_ARCH__)
__device__ __forceinline__ float fma_rn(float a, float b, float c) { return __fmaf_rn(a, b, c); }
__device__ __forceinline__ float mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ unsigned int float_bits(float x) { return __float_as_uint(x); }
__device__ __forceinline__ float bits_float(unsigned int b) { return __uint_as_float(b); }
#else
// always_inline: translation units built for different instruction sets get different bodies
// here, and no out-of-line copy may stand in for another.
#define ALMC_RNG_INLINE inline __attribute__((always_inline))
ALMC_RNG_INLINE unsigned int float_bits(float x) {
  unsigned int b;
  memcpy(&b, &x, sizeof b);
  return b;
}
ALMC_RNG_INLINE float bits_float(unsigned int b) {
  float x;
  memcpy(&x, &b, sizeof x);
  return x;
}
ALMC_RNG_INLINE float mul_rn(float a, float b) { return a * b; }
ALMC_RNG_INLINE float fma_rn(float a, float b, float c) {
#if defined(__FMA__)
  return __builtin_fmaf(a, b, c);
#else
  const double p = static_cast<double>(a) * static_cast<double>(b), dc = c;
  const double s = p + dc, bp = s - dc;
  const double err = (p - bp) + (dc - (s - bp));
  uint64_t bits;
  memcpy(&bits, &s, sizeof bits);
  // Written as a condition, not as arithmetic on the flags: the processor then predicts it and
  // the next multiply-add need not wait for err (2.2x faster in the SSE2 noise kernel).
  const bool fix = err != 0 && (bits & 1) == 0;
  const bool up = (err > 0) == (s > 0);  // the exact sum is farther from zero than s
  bits += fix ? (up ? uint64_t{1} : ~uint64_t{0}) : uint64_t{0};
  double odd;
  memcpy(&odd, &bits, sizeof odd);
  return static_cast<float>(odd);
#endif
}
#undef ALMC_RNG_INLINE
#endif

// Box-Muller radius sqrt(-2 ln u) of a raw draw a, u = a 2^-32 + 2^-33 in float (cuRAND's u,
// rounded once; u = 1 for the top 128 values of a, giving radius 0). ln u = k ln 2 + ln(1 + f)
// with u = 2^k (1 + f), 1 + f in [sqrt(1/2), sqrt(2)) split from u's bits; ln(1 + f) = f + f^2 Q(f)
// with Q of degree 8 (fit error 0.07 ulp of the result).
ALMC_HD float box_muller_radius(unsigned int a) {
  const float u = fma_rn(static_cast<float>(a), 0x1p-32f, 0x1p-33f);  // (0, 1], float(a) rounded to nearest
  const unsigned int iu = float_bits(u), t = iu - 0x3f3504f3u;      // 0x3f3504f3: sqrt(1/2)
  const float k = static_cast<float>(static_cast<int>(t) >> 23);     // -33 .. 0 (arithmetic shift)
  const float f = bits_float(iu - (t & 0xff800000u)) - 1.f;          // exact (Sterbenz)
  float q = -7.621859014e-2f;
  q = fma_rn(q, f, 1.290449947e-1f);
  q = fma_rn(q, f, -1.324298680e-1f);
  q = fma_rn(q, f, 1.418181360e-1f);
  q = fma_rn(q, f, -1.660908163e-1f);
  q = fma_rn(q, f, 2.000197470e-1f);
  q = fma_rn(q, f, -2.500158250e-1f);
  q = fma_rn(q, f, 3.333332539e-1f);
  q = fma_rn(q, f, -4.999998808e-1f);
  const float log1pf_ = fma_rn(mul_rn(f, f), q, f);
  // k ln 2 in two parts (ln 2 = 0.693147182 - 1.90465421e-9), the small one added first.
  const float ln_u = fma_rn(k, 6.931471825e-1f, fma_rn(k, -1.904654212e-9f, log1pf_));
  return sqrtf(mul_rn(-2.f, ln_u));
}

// sin and cos of the Box-Muller angle 2 pi (b + 1/2) / 2^32 of a raw draw b (cuRAND's angle,
// without its float rounding of 2 pi b 2^-32: the reduction is exact). The nearest quarter turn
// q (top two bits of b + 2^29) is taken off in integers, leaving (pi/4) y with y = x 2^-30 and x
// = 2 (b + 2^29 mod 2^30) - 2^30 + 1 an odd integer in (-2^30, 2^30), rounded to float once;
// sin((pi/4) y) = y (S1 + y^2 R(y^2)) (degree 7, S1 = pi/4 in two parts) and cos((pi/4) y) =
// 1 + y^2 C(y^2) (degree 8), then swapped and negated by the quadrant: sin(q pi/2 + t) is sin t,
// cos t, -sin t, -cos t for q = 0, 1, 2, 3, and cos(q pi/2 + t) is cos t, -sin t, -cos t, sin t.
ALMC_HD float2 box_muller_sincos(unsigned int b) {
  const unsigned int w = b + 0x20000000u;  // quadrant q = w >> 30
  const int x = 2 * static_cast<int>(w & 0x3fffffffu) - 0x3fffffff;
  const float y = mul_rn(static_cast<float>(x), 0x1p-30f), z = mul_rn(y, y);
  float r = -3.597526666e-5f;
  r = fma_rn(r, z, 2.490044106e-3f);
  r = fma_rn(r, z, -8.074545115e-2f);
  const float s = fma_rn(y, 7.853981853e-1f, fma_rn(mul_rn(y, z), r, mul_rn(y, -2.185569414e-8f)));
  float c = 3.530338063e-6f;
  c = fma_rn(c, z, -3.259400837e-4f);
  c = fma_rn(c, z, 1.585432701e-2f);
  c = fma_rn(c, z, -3.084251285e-1f);
  c = fma_rn(z, c, 1.f);
  // The quadrant's bits straight from w: swap (all ones when q is odd) is bit 30 spread by an
  // arithmetic shift, sin's sign bit is q >> 1 = bit 31 of w, cos's is (q ^ (q >> 1)) & 1 = bit 30
  // xor bit 31 (fewer instructions than shifting q back and forth).
  const unsigned int w1 = w << 1;
  const unsigned int sb = float_bits(s), cb = float_bits(c), swap = static_cast<unsigned int>(static_cast<int>(w1) >> 31);
  const unsigned int sin_b = ((sb & ~swap) | (cb & swap)) ^ (w & 0x80000000u);
  const unsigned int cos_b = ((cb & ~swap) | (sb & swap)) ^ ((w ^ w1) & 0x80000000u);
  return make_float2(bits_float(sin_b), bits_float(cos_b));
}

// The two normals of a radius r and an angle's (sin, cos): r sin, r cos.
ALMC_HD float2 box_muller_scale(float r, float2 sc) { return make_float2(mul_rn(r, sc.x), mul_rn(r, sc.y)); }

// Two standard normals from a pair of raw draws: radius(a) sin(angle(b)), radius(a) cos(angle(b))
// (cuRAND's _curand_box_muller pairing and order).
ALMC_HD float2 box_muller(unsigned int a, unsigned int b) {
  return box_muller_scale(box_muller_radius(a), box_muller_sincos(b));
}

// Four standard normals: Box-Muller on the pairs (x, y) and (z, w), as curand_normal4 does.
ALMC_HD float4 philox_normal4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  const uint4 r = philox_raw4(seed, stream, step, group);
  const float2 a = box_muller(r.x, r.y);
  const float2 b = box_muller(r.z, r.w);
  return make_float4(a.x, a.y, b.x, b.y);
}

// Four uniforms in (0, 1].
ALMC_HD float4 philox_uniform4(uint64_t seed, uint64_t stream, uint64_t step, uint64_t group) {
  return _curand_uniform4(philox_raw4(seed, stream, step, group));
}

ALMC_HD float component(const float4& v, int i) { return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w; }

}  // namespace almc
