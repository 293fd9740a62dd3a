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

/* The exp/log bodies are in sl_math_t.h, instantiated here unsuffixed with unfused
 * arithmetic (the baseline; what _kernels._math_eval and tests/test_math.py measure) and
 * again per instruction set by sl_kernels_impl.h (fused multiply-adds where the region
 * has FMA). */
#define SL_M(n) n
#define SL_MADDF(a, b, c) ((a) * (b) + (c))
#define SL_MADD(a, b, c) ((a) * (b) + (c))
#include "sl_math_t.h"
#undef SL_M
#undef SL_MADDF
#undef SL_MADD

/* float16 / bfloat16 <-> float32, one element, in plain integer/float C (no _Float16:
 * clang 14 has none on x86, and GCC's software _Float16 casts are its own code), so every
 * compiler gives the same bits. float16: round to nearest even, overflow to +-inf,
 * subnormals exact, NaN -> quiet NaN with the top payload bits -- what F16C's
 * vcvtps2ph / vcvtph2ps do (the 8-wide blocks in the F16C regions use those; checked
 * exhaustively against them by tools/f16_exhaustive.c). bfloat16 -> float32 is a
 * shift; float32 -> bfloat16 rounds to nearest even and keeps NaN quiet. */
#define SL_HAVE_F16 1
SL_MATH_INLINE float sl_h2f(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1fu) return sl_bits2f(sign | 0x7f800000u | (m ? 0x400000u | (m << 13) : 0u));
  if (e == 0) return sl_bits2f(sign | sl_f2bits((float)m * 0x1p-24f));   /* exact */
  return sl_bits2f(sign | ((e + 112u) << 23) | (m << 13));
}
SL_MATH_INLINE uint16_t sl_f2h(float f) {
  const uint32_t u = sl_f2bits(f), sign = (u >> 16) & 0x8000u, a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));   /* NaN */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);     /* >= 65520: +-inf */
  if (a >= 0x38800000u) {                                       /* normal: >= 2^-14 */
    const uint32_t r = a - 0x38000000u;                         /* exponent rebiased */
    return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
  }
  /* subnormal or zero: |f| + 0.5 rounds (to nearest even, the float addition) at the
   * weight of 2^-24; its low bits are the half's */
  return (uint16_t)(sign | (sl_f2bits(sl_bits2f(a) + 0.5f) - 0x3f000000u));
}
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
