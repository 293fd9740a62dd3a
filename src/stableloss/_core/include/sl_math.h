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
 * Accuracy (measured in ../shared/performance.md and re-checked by
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
