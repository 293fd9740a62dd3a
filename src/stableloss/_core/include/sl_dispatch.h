/* sl_dispatch.h -- one translation unit, several instruction sets, one table.
 *
 * The row kernels (sl_rows_t.h) are compiled once per ISA: a baseline build
 * (whatever the compiler targets by default: SSE2 on x86-64), and on x86-64 GCC
 * or Clang also AVX2+FMA and AVX-512 regions via `#pragma GCC target`. The
 * sl_math.h helpers are static inline and get inlined (and vectorised) with each
 * region's ISA. sl_select() picks the best path the CPU supports once, at import;
 * STABLELOSS_SIMD=baseline|avx2|avx512 caps the choice (tests force each path).
 * No tuning to the build machine (no -march flag): one build runs on every x86-64 CPU.
 */
#ifndef SL_DISPATCH_H
#define SL_DISPATCH_H
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include "sl_math.h"

#if defined(__GNUC__)
#define SL_INLINE inline __attribute__((always_inline))
#else
#define SL_INLINE inline
#endif
#if defined(_MSC_VER) && !defined(__clang__)
#define restrict __restrict
#endif
/* Compiler-specific spellings, written once: a read prefetch into all cache levels and the
 * type of an expression (MSVC: C23 typeof, setup.py passes /std:clatest). */
#if defined(__GNUC__) || defined(__clang__)
#define SL_PREFETCH(p) __builtin_prefetch((p), 0, 3)
#define SL_TYPEOF(e) __typeof__(e)
#elif defined(_MSC_VER)
#include <intrin.h>
#define SL_PREFETCH(p) _mm_prefetch((const char *)(p), _MM_HINT_T0)
#define SL_TYPEOF(e) typeof(e)
#else
#define SL_PREFETCH(p) ((void)(p))
#define SL_TYPEOF(e) __typeof__(e)
#endif

#define SL_ISA(n) n##_baseline
#include "sl_kernels_impl.h"
#undef SL_ISA

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__) && !defined(SL_NO_DISPATCH)
#define SL_X86_DISPATCH 1
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define SL_ISA(n) n##_avx2
#define SL_F16C 1
#define SL_HW_FMA 1     /* sl_math_t.h: explicit fused multiply-adds (the build has -ffp-contract=off) */
#include "sl_kernels_impl.h"
#undef SL_ISA
#if defined(__clang__)
#pragma clang attribute pop
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c"))), apply_to = function)
#else
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,fma,f16c,prefer-vector-width=512")
#endif
#define SL_ISA(n) n##_avx512
#include "sl_kernels_impl.h"
#undef SL_ISA
#undef SL_F16C
#undef SL_HW_FMA
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif

/* ---- the table ------------------------------------------------------------ */
#define SL_ROW_KERNELS(X, isa) \
  X(lse_rows, isa) X(softmax_rows, isa) X(log_softmax_rows, isa) X(softmax_vjp_rows, isa) \
  X(log_softmax_vjp_rows, isa) X(ce_index_rows, isa) X(ce_index_split, isa) X(ce_index_tiles, isa) X(ce_prob_rows, isa) X(nll_rows, isa) \
  X(bce_logits_elems, isa) X(bce_probs_elems, isa) X(sigmoid_elems, isa) X(sigmoid_vjp_elems, isa) \
  X(log_sigmoid_elems, isa) X(log_sigmoid_vjp_elems, isa)
#define SL_MEMBER(n, isa) SL_TYPEOF(&n##_f32_baseline) n##_f32; SL_TYPEOF(&n##_f64_baseline) n##_f64;
#define SL_INIT(n, isa) n##_f32_##isa, n##_f64_##isa,
typedef struct {
  const char *name; SL_ROW_KERNELS(SL_MEMBER, _)
  SL_TYPEOF(&cvt_half_to_f32_baseline) cvt_half_to_f32;
  SL_TYPEOF(&cvt_f32_to_half_baseline) cvt_f32_to_half;
} sl_table_t;

static const sl_table_t sl_table_baseline = {"baseline", SL_ROW_KERNELS(SL_INIT, baseline)
  cvt_half_to_f32_baseline, cvt_f32_to_half_baseline};
#ifdef SL_X86_DISPATCH
static const sl_table_t sl_table_avx2 = {"avx2", SL_ROW_KERNELS(SL_INIT, avx2)
  cvt_half_to_f32_avx2, cvt_f32_to_half_avx2};
static const sl_table_t sl_table_avx512 = {"avx512", SL_ROW_KERNELS(SL_INIT, avx512)
  cvt_half_to_f32_avx512, cvt_f32_to_half_avx512};
#endif
static const sl_table_t *sl_active = &sl_table_baseline;

/* 0 baseline, 1 avx2+fma, 2 avx512 (F/DQ/BW/VL): the best this CPU runs */
static int sl_cpu_level(void) {
#ifdef SL_X86_DISPATCH
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  int avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
  return avx512 ? 2 : avx2 ? 1 : 0;
#else
  return 0;
#endif
}

/* Select the path: `want` = "baseline" | "avx2" | "avx512" | "" (best). Returns the
 * name of the path now active (a cap above what the CPU has falls back). */
static const char *sl_select(const char *want) {
  int cap = 2;
  if (want && strcmp(want, "baseline") == 0) cap = 0;
  else if (want && strcmp(want, "avx2") == 0) cap = 1;
  int lvl = sl_cpu_level();
  if (lvl > cap) lvl = cap;
  sl_active = &sl_table_baseline;
#ifdef SL_X86_DISPATCH
  if (lvl == 2) sl_active = &sl_table_avx512;
  else if (lvl == 1) sl_active = &sl_table_avx2;
#endif
  return sl_active->name;
}
static const char *sl_available(void) {
  int lvl = sl_cpu_level();
  return lvl == 2 ? "baseline,avx2,avx512" : lvl == 1 ? "baseline,avx2" : "baseline";
}

#define sl_lse_rows_f32(...) (sl_active->lse_rows_f32(__VA_ARGS__))
#define sl_lse_rows_f64(...) (sl_active->lse_rows_f64(__VA_ARGS__))
#define sl_softmax_rows_f32(...) (sl_active->softmax_rows_f32(__VA_ARGS__))
#define sl_softmax_rows_f64(...) (sl_active->softmax_rows_f64(__VA_ARGS__))
#define sl_log_softmax_rows_f32(...) (sl_active->log_softmax_rows_f32(__VA_ARGS__))
#define sl_log_softmax_rows_f64(...) (sl_active->log_softmax_rows_f64(__VA_ARGS__))
#define sl_softmax_vjp_rows_f32(...) (sl_active->softmax_vjp_rows_f32(__VA_ARGS__))
#define sl_softmax_vjp_rows_f64(...) (sl_active->softmax_vjp_rows_f64(__VA_ARGS__))
#define sl_log_softmax_vjp_rows_f32(...) (sl_active->log_softmax_vjp_rows_f32(__VA_ARGS__))
#define sl_log_softmax_vjp_rows_f64(...) (sl_active->log_softmax_vjp_rows_f64(__VA_ARGS__))
#define sl_ce_index_rows_f32(...) (sl_active->ce_index_rows_f32(__VA_ARGS__))
#define sl_ce_index_rows_f64(...) (sl_active->ce_index_rows_f64(__VA_ARGS__))
#define sl_ce_index_tiles_f32(...) (sl_active->ce_index_tiles_f32(__VA_ARGS__))
#define sl_ce_index_tiles_f64(...) (sl_active->ce_index_tiles_f64(__VA_ARGS__))
#define sl_ce_prob_rows_f32(...) (sl_active->ce_prob_rows_f32(__VA_ARGS__))
#define sl_ce_prob_rows_f64(...) (sl_active->ce_prob_rows_f64(__VA_ARGS__))
#define sl_nll_rows_f32(...) (sl_active->nll_rows_f32(__VA_ARGS__))
#define sl_nll_rows_f64(...) (sl_active->nll_rows_f64(__VA_ARGS__))
#define sl_bce_logits_elems_f32(...) (sl_active->bce_logits_elems_f32(__VA_ARGS__))
#define sl_bce_logits_elems_f64(...) (sl_active->bce_logits_elems_f64(__VA_ARGS__))
#define sl_bce_probs_elems_f32(...) (sl_active->bce_probs_elems_f32(__VA_ARGS__))
#define sl_bce_probs_elems_f64(...) (sl_active->bce_probs_elems_f64(__VA_ARGS__))
#define sl_sigmoid_elems_f32(...) (sl_active->sigmoid_elems_f32(__VA_ARGS__))
#define sl_sigmoid_elems_f64(...) (sl_active->sigmoid_elems_f64(__VA_ARGS__))
#define sl_sigmoid_vjp_elems_f32(...) (sl_active->sigmoid_vjp_elems_f32(__VA_ARGS__))
#define sl_sigmoid_vjp_elems_f64(...) (sl_active->sigmoid_vjp_elems_f64(__VA_ARGS__))
#define sl_log_sigmoid_elems_f32(...) (sl_active->log_sigmoid_elems_f32(__VA_ARGS__))
#define sl_log_sigmoid_elems_f64(...) (sl_active->log_sigmoid_elems_f64(__VA_ARGS__))
#define sl_log_sigmoid_vjp_elems_f32(...) (sl_active->log_sigmoid_vjp_elems_f32(__VA_ARGS__))
#define sl_log_sigmoid_vjp_elems_f64(...) (sl_active->log_sigmoid_vjp_elems_f64(__VA_ARGS__))
#define sl_cvt_half_to_f32(...) (sl_active->cvt_half_to_f32(__VA_ARGS__))
#define sl_cvt_f32_to_half(...) (sl_active->cvt_f32_to_half(__VA_ARGS__))
#define sl_ce_index_split_f32(...) (sl_active->ce_index_split_f32(__VA_ARGS__))
#define sl_ce_index_split_f64(...) (sl_active->ce_index_split_f64(__VA_ARGS__))
#endif
