/* sl_kernels_impl.h -- the kernels for one instruction set: float32 and float64
 * instances of sl_rows_t.h (rows) and sl_elem_t.h (elementwise). Included by sl_dispatch.h once per ISA,
 * inside a `#pragma GCC target` region, with SL_ISA(n) appending the suffix.
 * No include guard. */
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

/* half-precision row conversion (dtype-independent: once per instruction set) */
static void SL_ISA(cvt_half_to_f32)(const uint16_t *restrict src, int64_t n, float *restrict dst, int bf) {
  if (bf) { for (int64_t i = 0; i < n; i++) dst[i] = sl_bf2f(src[i]); return; }
#if SL_HAVE_F16
  for (int64_t i = 0; i < n; i++) dst[i] = sl_h2f(src[i]);
#endif
}
static void SL_ISA(cvt_f32_to_half)(const float *restrict src, int64_t n, uint16_t *restrict dst, int bf) {
  if (bf) { for (int64_t i = 0; i < n; i++) dst[i] = sl_f2bf(src[i]); return; }
#if SL_HAVE_F16
  for (int64_t i = 0; i < n; i++) dst[i] = sl_f2h(src[i]);
#endif
}
