/* sl_math_t.h -- the exp/log bodies of sl_math.h, once per instruction set.
 * No include guard: included with
 *   SL_M(n)               the function name (n itself in sl_math.h; n_avx2, ... per region)
 *   SL_MADDF(a, b, c)     a*b + c in float: fused (one rounding) where the region has FMA,
 *   SL_MADD(a, b, c)      else two roundings; the same in double.
 * The build compiles with -ffp-contract=off: every other product is rounded on its own,
 * and the fused ones are exactly the SL_MADD* below, so the bits do not depend on which
 * products a compiler's contraction pass chose to fuse (GCC and clang fuse different
 * ones). The fused placements are those GCC's -ffp-contract=fast chose before. */

#define SL_EXPF_POLY(r, q)                                                       \
  do { q = SL_MADDF(0x1.6d1606p-10f, r, 0x1.12106cp-7f);                          \
       q = SL_MADDF(q, r, 0x1.555516p-5f); q = SL_MADDF(q, r, 0x1.5554d8p-3f);    \
       q = SL_MADDF(q, r, 0.5f); } while (0)

SL_MATH_INLINE float SL_M(sl_expf)(float x) {
  const float magic = 0x1.8p23f;
  x = x > 89.0f ? 89.0f : x;           /* exp(89) overflows to +inf; NaN passes */
  x = x < -104.0f ? -104.0f : x;       /* exp(-104) rounds to +0 */
  float t = SL_MADDF(x, 0x1.715476p+0f, magic);
  float k = t - magic;
  float r = SL_MADDF(-k, 0x1.62e400p-1f, x);     /* k*ln2_hi is exact */
  r = SL_MADDF(-k, 0x1.7f7d1cp-20f, r);
  float q; SL_EXPF_POLY(r, q);
  float p = SL_MADDF(r * r, q, r) + 1.0f;
  float t1 = SL_MADDF(k, 0.5f, magic); float k1 = t1 - magic;
  float t2 = (k - k1) + magic;
  float s1 = sl_bits2f((sl_f2bits(t1) + 127u) << 23);
  float s2 = sl_bits2f((sl_f2bits(t2) + 127u) << 23);
  return p * s1 * s2;
}

SL_MATH_INLINE float SL_M(sl_expf_bounded)(float x) {
  const float magic = 0x1.8p23f;
  float t = SL_MADDF(x, 0x1.715476p+0f, magic);
  float k = t - magic;
  float r = SL_MADDF(-k, 0x1.62e400p-1f, x);
  r = SL_MADDF(-k, 0x1.7f7d1cp-20f, r);
  float q; SL_EXPF_POLY(r, q);
  float p = SL_MADDF(r * r, q, r) + 1.0f;
  return p * sl_bits2f((sl_f2bits(t) + 127u) << 23);
}

#define SL_EXP_POLY(r, q)                                                                  \
  do { q = SL_MADD(0x1.af3ce42b12b24p-26, r, 0x1.2894f52583578p-22);                       \
       q = SL_MADD(q, r, 0x1.71de0be2b5e96p-19); q = SL_MADD(q, r, 0x1.a019b621f9d08p-16);  \
       q = SL_MADD(q, r, 0x1.a01a01a83ba17p-13); q = SL_MADD(q, r, 0x1.6c16c1794e1dcp-10);  \
       q = SL_MADD(q, r, 0x1.1111111110918p-7); q = SL_MADD(q, r, 0x1.5555555553b6cp-5);    \
       q = SL_MADD(q, r, 0x1.5555555555556p-3); q = SL_MADD(q, r, 0x1.0000000000001p-1); } while (0)

SL_MATH_INLINE double SL_M(sl_exp)(double x) {
  const double magic = 0x1.8p52;
  x = x > 710.0 ? 710.0 : x;
  x = x < -746.0 ? -746.0 : x;
  double t = SL_MADD(x, 0x1.71547652b82fep+0, magic);
  double k = t - magic;
  double r = SL_MADD(-k, 0x1.62e42fee00000p-1, x);
  r = SL_MADD(-k, 0x1.a39ef35793c76p-33, r);
  double q; SL_EXP_POLY(r, q);
  double p = SL_MADD(r * r, q, r) + 1.0;
  double t1 = SL_MADD(k, 0.5, magic); double k1 = t1 - magic;
  double t2 = (k - k1) + magic;
  double s1 = sl_bits2d((sl_d2bits(t1) + 1023u) << 52);
  double s2 = sl_bits2d((sl_d2bits(t2) + 1023u) << 52);
  return p * s1 * s2;
}

SL_MATH_INLINE double SL_M(sl_exp_bounded)(double x) {
  const double magic = 0x1.8p52;
  double t = SL_MADD(x, 0x1.71547652b82fep+0, magic);
  double k = t - magic;
  double r = SL_MADD(-k, 0x1.62e42fee00000p-1, x);
  r = SL_MADD(-k, 0x1.a39ef35793c76p-33, r);
  double q; SL_EXP_POLY(r, q);
  double p = SL_MADD(r * r, q, r) + 1.0;
  return p * sl_bits2d((sl_d2bits(t) + 1023u) << 52);
}
#undef SL_EXPF_POLY
#undef SL_EXP_POLY

/* Vectorisable logf: x = 2^k m, m in [sqrt(1/2), sqrt(2)), log(1+f) = f - f^2/2 + f^3 q(f)
 * (q degree 7), k ln2 split hi/lo. Branch-free specials: x < 0 or NaN -> NaN, 0 -> -inf,
 * +inf -> +inf, subnormals scaled. Max error 1.07 ulp over every positive float
 * (measured exhaustively; re-checked by tests/test_math.py). */
SL_MATH_INLINE float SL_M(sl_logf)(float x) {
  float xs = x < 0x1p-126f ? x * 0x1p23f : x;
  float kadj = x < 0x1p-126f ? -23.0f : 0.0f;
  uint32_t ix = sl_f2bits(xs) - 0x3f3504f3u;
  float k = (float)((int32_t)ix >> 23) + kadj;
  float m = sl_bits2f((ix & 0x007fffffu) + 0x3f3504f3u);
  float f = m - 1.0f;
  float q = SL_MADDF(-0x1.43af44p-4f, f, 0x1.0292e0p-3f);
  q = SL_MADDF(q, f, -0x1.0a3b38p-3f);
  q = SL_MADDF(q, f, 0x1.231b4cp-3f);
  q = SL_MADDF(q, f, -0x1.54cf96p-3f);
  q = SL_MADDF(q, f, 0x1.999f1ep-3f);
  q = SL_MADDF(q, f, -0x1.0000d0p-2f);
  q = SL_MADDF(q, f, 0x1.555554p-2f);
  float f2 = f * f;
  float r = SL_MADDF(f2 * f, q, -(0.5f * f2));
  r = SL_MADDF(k, 0x1.0bfbe8p-15f, r);
  r = r + f;
  r = SL_MADDF(k, 0x1.62e000p-1f, r);
  r = x == 0.0f ? -INFINITY : r;
  r = x < 0.0f ? NAN : r;
  r = x == INFINITY ? x : r;
  r = x != x ? x : r;
  return r;
}

/* log1p(u) for u >= 0 (or NaN): w = 1 + u rounded, log(w) + (u - (w - 1)) / w restores
 * what the rounding of w lost (exact to first order; u < 2^-24 gives u). */
SL_MATH_INLINE float SL_M(sl_log1pf)(float u) {
  float w = 1.0f + u;
  return SL_M(sl_logf)(w) + (u - (w - 1.0f)) / w;
}
