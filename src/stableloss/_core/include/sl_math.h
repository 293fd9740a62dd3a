/* sl_math.h -- vectorisable exp for float32 and float64, plain C, header only.
 *
 * GCC -O3 -fno-math-errno -fno-trapping-math vectorises loops that call these
 * (they inline; no libm calls, no fmaxf/fminf, no float->int conversion).
 *
 * Algorithm (both precisions):
 *   k = round(x / ln2) by the magic-number trick (the low mantissa bits of
 *       t = x*log2(e) + 1.5*2^p hold k in two's complement);
 *   r = x - k*ln2_hi - k*ln2_lo (Cody-Waite; k*ln2_hi is exact);
 *   exp(r) = 1 + r + r^2 q(r), q a minimax-style fit of (e^r - 1 - r)/r^2 on
 *       [-ln2/2, ln2/2] (degree 4 in float, 9 in double);
 *   2^k built from the exponent bits of t; the full-range versions split
 *       2^k = 2^k1 * 2^k2 so gradual underflow is rounded once and overflow
 *       gives +inf.
 * Specials: NaN -> NaN, +inf and x > ln(max) -> +inf, -inf and tiny -> +0,
 * subnormal results correctly scaled.
 * Accuracy (measured against a higher-precision reference and re-checked by
 * tests/test_math.py): sl_expf <= 1.07 ulp, sl_exp <= 1.09 ulp.
 * The *_bounded variants are valid only for x in [-86.5, 0] (float) /
 * [-708, 0] (double) or NaN; there they are bitwise equal to the full ones
 * (one scale factor, no clamps) -- the softmax fast path, chosen per row after
 * the min/max pass.
 */
#ifndef SL_MATH_H
#define SL_MATH_H
#include <stdint.h>
#include <string.h>
#include <math.h>

/* Always inline: GCC otherwise keeps some of these out of line, and a call inside a
 * loop stops it from vectorising (measured: the exp loops ran scalar, 2x slower). */
#if defined(__GNUC__)
#define SL_MATH_INLINE static inline __attribute__((always_inline))
#else
#define SL_MATH_INLINE static inline
#endif

SL_MATH_INLINE float sl_bits2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
SL_MATH_INLINE uint32_t sl_f2bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
SL_MATH_INLINE double sl_bits2d(uint64_t u) { double f; memcpy(&f, &u, 8); return f; }
SL_MATH_INLINE uint64_t sl_d2bits(double f) { uint64_t u; memcpy(&u, &f, 8); return u; }

#define SL_EXPF_POLY(r, q)                                   \
  do { q = 0x1.6d1606p-10f; q = q * r + 0x1.12106cp-7f;      \
       q = q * r + 0x1.555516p-5f; q = q * r + 0x1.5554d8p-3f; \
       q = q * r + 0.5f; } while (0)

SL_MATH_INLINE float sl_expf(float x) {
  const float magic = 0x1.8p23f;
  x = x > 89.0f ? 89.0f : x;           /* exp(89) overflows to +inf; NaN passes */
  x = x < -104.0f ? -104.0f : x;       /* exp(-104) rounds to +0 */
  float t = x * 0x1.715476p+0f + magic;
  float k = t - magic;
  float r = x - k * 0x1.62e400p-1f;
  r = r - k * 0x1.7f7d1cp-20f;
  float q; SL_EXPF_POLY(r, q);
  float p = (r * r) * q + r + 1.0f;
  float t1 = k * 0.5f + magic; float k1 = t1 - magic;
  float t2 = (k - k1) + magic;
  float s1 = sl_bits2f((sl_f2bits(t1) + 127u) << 23);
  float s2 = sl_bits2f((sl_f2bits(t2) + 127u) << 23);
  return p * s1 * s2;
}

SL_MATH_INLINE float sl_expf_bounded(float x) {
  const float magic = 0x1.8p23f;
  float t = x * 0x1.715476p+0f + magic;
  float k = t - magic;
  float r = x - k * 0x1.62e400p-1f;
  r = r - k * 0x1.7f7d1cp-20f;
  float q; SL_EXPF_POLY(r, q);
  float p = (r * r) * q + r + 1.0f;
  return p * sl_bits2f((sl_f2bits(t) + 127u) << 23);
}

#define SL_EXP_POLY(r, q)                                                   \
  do { q = 0x1.af3ce42b12b24p-26; q = q * r + 0x1.2894f52583578p-22;       \
       q = q * r + 0x1.71de0be2b5e96p-19; q = q * r + 0x1.a019b621f9d08p-16; \
       q = q * r + 0x1.a01a01a83ba17p-13; q = q * r + 0x1.6c16c1794e1dcp-10; \
       q = q * r + 0x1.1111111110918p-7; q = q * r + 0x1.5555555553b6cp-5;  \
       q = q * r + 0x1.5555555555556p-3; q = q * r + 0x1.0000000000001p-1; } while (0)

SL_MATH_INLINE double sl_exp(double x) {
  const double magic = 0x1.8p52;
  x = x > 710.0 ? 710.0 : x;
  x = x < -746.0 ? -746.0 : x;
  double t = x * 0x1.71547652b82fep+0 + magic;
  double k = t - magic;
  double r = x - k * 0x1.62e42fee00000p-1;
  r = r - k * 0x1.a39ef35793c76p-33;
  double q; SL_EXP_POLY(r, q);
  double p = (r * r) * q + r + 1.0;
  double t1 = k * 0.5 + magic; double k1 = t1 - magic;
  double t2 = (k - k1) + magic;
  double s1 = sl_bits2d((sl_d2bits(t1) + 1023u) << 52);
  double s2 = sl_bits2d((sl_d2bits(t2) + 1023u) << 52);
  return p * s1 * s2;
}

SL_MATH_INLINE double sl_exp_bounded(double x) {
  const double magic = 0x1.8p52;
  double t = x * 0x1.71547652b82fep+0 + magic;
  double k = t - magic;
  double r = x - k * 0x1.62e42fee00000p-1;
  r = r - k * 0x1.a39ef35793c76p-33;
  double q; SL_EXP_POLY(r, q);
  double p = (r * r) * q + r + 1.0;
  return p * sl_bits2d((sl_d2bits(t) + 1023u) << 52);
}

/* Vectorisable logf: x = 2^k m, m in [sqrt(1/2), sqrt(2)), log(1+f) = f - f^2/2 + f^3 q(f)
 * (q degree 7), k ln2 split hi/lo. Branch-free specials: x < 0 or NaN -> NaN, 0 -> -inf,
 * +inf -> +inf, subnormals scaled. Max error 1.07 ulp over every positive float
 * (measured exhaustively; re-checked by tests/test_math.py). */
SL_MATH_INLINE float sl_logf(float x) {
  float xs = x < 0x1p-126f ? x * 0x1p23f : x;
  float kadj = x < 0x1p-126f ? -23.0f : 0.0f;
  uint32_t ix = sl_f2bits(xs) - 0x3f3504f3u;
  float k = (float)((int32_t)ix >> 23) + kadj;
  float m = sl_bits2f((ix & 0x007fffffu) + 0x3f3504f3u);
  float f = m - 1.0f;
  float q = -0x1.43af44p-4f;
  q = q * f + 0x1.0292e0p-3f;
  q = q * f - 0x1.0a3b38p-3f;
  q = q * f + 0x1.231b4cp-3f;
  q = q * f - 0x1.54cf96p-3f;
  q = q * f + 0x1.999f1ep-3f;
  q = q * f - 0x1.0000d0p-2f;
  q = q * f + 0x1.555554p-2f;
  float f2 = f * f;
  float r = (f2 * f) * q - 0.5f * f2;
  r = r + k * 0x1.0bfbe8p-15f;
  r = r + f;
  r = r + k * 0x1.62e000p-1f;
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  r = x == INFINITY ? x : r;
  r = x != x ? x : r;
  return r;
}

/* log1p(u) for u >= 0 (or NaN): w = 1 + u rounded, log(w) + (u - (w - 1)) / w restores
 * what the rounding of w lost (exact to first order; u < 2^-24 gives u). */
SL_MATH_INLINE float sl_log1pf(float u) {
  float w = 1.0f + u;
  return sl_logf(w) + (u - (w - 1.0f)) / w;
}

/* float16 / bfloat16 <-> float32, one element. float16 uses the compiler's _Float16
 * (GCC >= 12, Clang): inside the AVX2 region loops of these become vcvtph2ps/vcvtps2ph
 * (F16C). bfloat16 -> float32 is a shift; float32 -> bfloat16 rounds to nearest even and
 * keeps NaN quiet. SL_HAVE_F16 is 0 where _Float16 is missing: the Python layer then
 * upcasts half inputs with a full copy instead. */
#if defined(__FLT16_MANT_DIG__)
#define SL_HAVE_F16 1
SL_MATH_INLINE float sl_h2f(uint16_t h) { _Float16 v; memcpy(&v, &h, 2); return (float)v; }
SL_MATH_INLINE uint16_t sl_f2h(float f) { _Float16 v = (_Float16)f; uint16_t h; memcpy(&h, &v, 2); return h; }
#else
#define SL_HAVE_F16 0
#endif
SL_MATH_INLINE float sl_bf2f(uint16_t b) { return sl_bits2f((uint32_t)b << 16); }
SL_MATH_INLINE uint16_t sl_f2bf(float f) {
  uint32_t u = sl_f2bits(f);
  uint16_t r = (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
  return f != f ? (uint16_t)((u >> 16) | 0x40u) : r;
}

/* Fixed-order sum of 16 lanes (a fixed tree, so the bits do not depend on the
 * vector width the compiler chose). */
SL_MATH_INLINE float sl_hsum16_f32(const float *a) {
  float b[8]; for (int l = 0; l < 8; l++) b[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; l++) b[l] = b[l] + b[l + 4];
  return (b[0] + b[2]) + (b[1] + b[3]);
}
SL_MATH_INLINE double sl_hsum16_f64(const double *a) {
  double b[8]; for (int l = 0; l < 8; l++) b[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; l++) b[l] = b[l] + b[l + 4];
  return (b[0] + b[2]) + (b[1] + b[3]);
}
#endif
