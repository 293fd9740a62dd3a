/* sl_kernels_impl.h -- the kernels for one instruction set: float32 and float64
 * instances of sl_rows_t.h (rows) and sl_elem_t.h (elementwise). Included by sl_dispatch.h once per ISA,
 * inside a `#pragma GCC target` region, with SL_ISA(n) appending the suffix.
 * No include guard. */

/* this instruction set's exp/log (sl_math_t.h): SL_M(sl_expf) is sl_expf_avx2 etc.;
 * fused multiply-adds where sl_dispatch.h says the region has FMA (SL_HW_FMA) */
#define SL_M(n) SL_ISA(n)
#if defined(SL_HW_FMA) && SL_HW_FMA
#define SL_MADDF(a, b, c) __builtin_fmaf((a), (b), (c))
#define SL_MADD(a, b, c) __builtin_fma((a), (b), (c))
#else
#define SL_MADDF(a, b, c) ((a) * (b) + (c))
#define SL_MADD(a, b, c) ((a) * (b) + (c))
#endif
#include "sl_math_t.h"
#define SL_T float
#define SL_F32 1
#define SL_F(n) SL_ISA(n##_f32)
#include "sl_rows_t.h"
#include "sl_elem_t.h"
#undef SL_T
#undef SL_F32
#undef SL_F
#define SL_T double
#define SL_F32 0
#define SL_F(n) SL_ISA(n##_f64)
#include "sl_rows_t.h"
#include "sl_elem_t.h"
#undef SL_T
#undef SL_F32
#undef SL_F

/* half-precision row conversion (dtype-independent: once per instruction set).
 * float16 in the F16C regions: 8 lanes of vcvtph2ps / vcvtps2ph (round to nearest even;
 * sl_h2f / sl_f2h, used for the tails and the baseline, give the same bits) -- the
 * compilers do not vectorise the scalar conversions. */
static void SL_ISA(cvt_half_to_f32)(const uint16_t *restrict src, int64_t n, float *restrict dst, int bf) {
  if (bf) { for (int64_t i = 0; i < n; i++) dst[i] = sl_bf2f(src[i]); return; }
  int64_t i = 0;
#if defined(SL_F16C)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
#endif
  for (; i < n; i++) dst[i] = sl_h2f(src[i]);
}
static void SL_ISA(cvt_f32_to_half)(const float *restrict src, int64_t n, uint16_t *restrict dst, int bf) {
  if (bf) { for (int64_t i = 0; i < n; i++) dst[i] = sl_f2bf(src[i]); return; }
  int64_t i = 0;
#if defined(SL_F16C)
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128((__m128i *)(dst + i),
                     _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
#endif
  for (; i < n; i++) dst[i] = sl_f2h(src[i]);
}
#undef SL_M
#undef SL_MADDF
#undef SL_MADD
