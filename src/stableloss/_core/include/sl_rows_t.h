/* sl_rows_t.h -- the per-row softmax-family kernels, templated over the element type.
 *
 * Included by sl_kernels_impl.h once per (dtype, instruction set) with
 *   SL_T        element type (float | double)
 *   SL_F(n)     name mangling (n -> n_f32_avx2, ...)
 *   SL_F32      1 for float, 0 for double
 * No include guard (included several times on purpose).
 *
 * Notation: row x[0..C), m = max_j x_j (attained at k*), S = sum_j exp(x_j - m)
 * (S >= 1: the k* term is exactly 1), s' = S - 1 = sum_{j != k*} exp(x_j - m),
 * lse = m + log S = m + log1p(s').
 *
 * Design (one read of the row for the statistics, one write of the output):
 *  1. min and max of the row (vectorised; the min only picks the exp variant).
 *  2. e_j = exp(x_j - m), summed in 16 fixed lanes per block of SL_BLOCK elements,
 *     blocks accumulated in double, optionally stored in the output row.
 *     Bounded exp when min - max >= the bound (no clamps, one scale factor).
 *  3. per-row scalars in double, then one scaling pass over the output row.
 * Special rows (S is NaN: the row has a NaN, a +inf, or is all -inf) leave the
 * fast path and get the documented values (docs/api.md, "Special rows").
 *
 * Exact path (Blanchard, Higham & Higham 2021): where a result depends on s'
 * itself -- the loss of a row whose target holds the maximum is log1p(s'),
 * log_softmax at k* is -log1p(s'), lse near 0 -- computing s' as S - 1 would
 * cancel. Such rows (target at the max, or S < 2 for lse/log_softmax) recompute
 * s' excluding k*, with the rounding of x_j - m itself removed:
 *   float32: x_j - m formed and exponentiated in double (exact difference);
 *   float64: TwoSum gives d + err == x_j - m exactly, exp(x_j - m) =
 *            exp(d)(1 + err), and the 16 lanes are Kahan-compensated.
 * The gradient entries of those rows are rebuilt from the same exact terms, and
 * the target's entry is -s'/(1 + s') rather than p_t - 1. Other rows keep the
 * fast path: there the loss is >= log 2 (target not at the max) or S >= 2, so
 * the absolute error of log S is also a small relative error.
 */

#define SL_TS SL_T
/* a*b + c in the element type: fused in the FMA regions (SL_MADD*, sl_kernels_impl.h), as
 * GCC's former -ffp-contract=fast fused these; explicit so that every compiler agrees */
#if SL_F32
#define SL_MADDT SL_MADDF
#else
#define SL_MADDT SL_MADD
#endif
#if SL_F32
#define SL_EXPV SL_M(sl_expf)
#define SL_EXPB SL_M(sl_expf_bounded)
#define SL_BOUND (-86.5f)
#define SL_HSUM sl_hsum16_f32
#else
#define SL_EXPV SL_M(sl_exp)
#define SL_EXPB SL_M(sl_exp_bounded)
#define SL_BOUND (-708.0)
#define SL_HSUM sl_hsum16_f64
#endif

/* ---- 1. min and max ------------------------------------------------------ */
/* Not `omp simd reduction(min:..) reduction(max:..)`: OpenMP leaves the initial value
 * of the private copies to the implementation, and clang starts them at the type's
 * lowest / largest FINITE value, so an all -inf row got the maximum -FLT_MAX (logsumexp
 * -3.4e38 instead of -inf, log_softmax -inf instead of NaN); clang also left that loop
 * scalar (CE 3.7x slower than GCC). Nor a float compare-select reduction: without
 * -ffast-math clang does not vectorise those at all.
 * Instead an integer max/min over order-preserving keys of the bit patterns (k for
 * k >= 0, k ^ 0x7f..f for negative floats), started from the keys of -inf / +inf, with
 * NaN keys clamped to the keys of +-inf (a row with a NaN then has max +inf or min -inf
 * instead of its largest / smallest number; its sum S is NaN either way, and every
 * caller's special-row branch, taken on S, gives the documented values).
 * Integer max/min is exact, associative and commutative: both compilers vectorise it
 * at any width with the same result, and -0 < +0 in key order, so the max of a row
 * holding both zeros is +0 whatever the order of the elements (or of the blocks of a
 * split row). */
#if SL_F32
#define SL_KT int32_t
#define SL_KMAG ((int32_t)0x7fffffff)
#define SL_KINF ((int32_t)0x7f800000)
#else
#define SL_KT int64_t
#define SL_KMAG ((int64_t)0x7fffffffffffffffLL)
#define SL_KINF ((int64_t)0x7ff0000000000000LL)
#endif
static SL_INLINE void SL_F(row_minmax)(const SL_T *restrict x, int64_t C, SL_T *lo_out, SL_T *hi_out) {
  const SL_KT kneg = (SL_KT)((SL_KINF | (-SL_KMAG - 1)) ^ SL_KMAG), kpos = SL_KINF;
  SL_KT klo = kpos, khi = kneg;
  for (int64_t j = 0; j < C; j++) {
    SL_KT k; memcpy(&k, &x[j], sizeof k);
    const SL_KT key = k ^ ((k >> (8 * sizeof k - 1)) & SL_KMAG);   /* arithmetic shift */
    /* NaN keys lie outside [key(-inf), key(+inf)]; clamped there (one min / max each),
     * a NaN row gets max +inf or min -inf, not a NaN: its S is NaN all the same */
    const SL_KT kh = key < kpos ? key : kpos, kl = key > kneg ? key : kneg;
    klo = kl < klo ? kl : klo;
    khi = kh > khi ? kh : khi;
  }
  klo = klo < 0 ? klo ^ SL_KMAG : klo;
  khi = khi < 0 ? khi ^ SL_KMAG : khi;
  memcpy(lo_out, &klo, sizeof klo); memcpy(hi_out, &khi, sizeof khi);
}
#undef SL_KT
#undef SL_KMAG
#undef SL_KINF

static SL_INLINE int SL_F(row_has_nan)(const SL_T *restrict x, int64_t C) {
  int bad = 0;
  for (int64_t j = 0; j < C; j++) bad |= (x[j] != x[j]);
  return bad;
}

static SL_INLINE int64_t SL_F(row_first_max)(const SL_T *restrict x, int64_t C, SL_T m) {
  for (int64_t j = 0; j < C; j++) if (x[j] == m) return j;
  return 0;
}

/* ---- 2. S = sum exp(x - m), optionally storing the terms ------------------ */
#define SL_BLOCK 1024
static SL_INLINE double SL_F(row_sumexp_impl)(const SL_T *restrict x, int64_t C, SL_T m, SL_T lo,
                                              SL_T *restrict e, const int store) {
  double S = 0.0;
  const int bounded = (lo - m) >= SL_BOUND;
  for (int64_t j0 = 0; j0 < C; j0 += SL_BLOCK) {
    int64_t j1 = j0 + SL_BLOCK < C ? j0 + SL_BLOCK : C;
    SL_T acc[16] = {0};
    int64_t j = j0;
    /* while this row's exps run from L1, pull the next row in (the same offset C
     * elements ahead): the min/max pass of the next row then finds it in cache instead
     * of waiting on memory (prefetches never fault, even past the end) */
    if (bounded) {
      for (; j + 16 <= j1; j += 16) {
        SL_PREFETCH(x + j + C);
        if (sizeof(SL_T) == 8) SL_PREFETCH(x + j + 8 + C);
        for (int l = 0; l < 16; l++) { SL_T v = SL_EXPB(x[j + l] - m); if (store) e[j + l] = v; acc[l] += v; }
      }
    } else {
      for (; j + 16 <= j1; j += 16) {
        SL_PREFETCH(x + j + C);
        if (sizeof(SL_T) == 8) SL_PREFETCH(x + j + 8 + C);
        for (int l = 0; l < 16; l++) { SL_T v = SL_EXPV(x[j + l] - m); if (store) e[j + l] = v; acc[l] += v; }
      }
    }
    SL_T tail = 0;
    for (; j < j1; j++) { SL_T v = SL_EXPV(x[j] - m); if (store) e[j] = v; tail += v; }
    S += (double)SL_HSUM(acc) + (double)tail;
  }
  return S;
}
/* `store` is a constant in each call, so each instance is a straight vector loop */
static SL_INLINE double SL_F(row_sumexp_store)(const SL_T *restrict x, int64_t C, SL_T m, SL_T lo,
                                               SL_T *restrict e) {
  return SL_F(row_sumexp_impl)(x, C, m, lo, e, 1);
}
static SL_INLINE double SL_F(row_sumexp)(const SL_T *restrict x, int64_t C, SL_T m, SL_T lo) {
  return SL_F(row_sumexp_impl)(x, C, m, lo, NULL, 0);
}

/* Exact s' = sum_{j != ks} exp(x_j - m), in the input dtype. TwoSum gives
 * d + err == x_j - m exactly (err <= ulp(d)/2), exp(x_j - m) = exp(d)(1 + err) to
 * second order (err^2 < 1e-11 for the terms that are not 0), each term then ~2 ulp;
 * 16 Kahan-compensated lanes per block of SL_BLOCK, blocks added in double. The
 * terms are stored in e (when `store`; e[ks] = 1). x_j = -inf gives d = -inf and
 * err = NaN: such terms are set to exactly 0. Measured (tools/accuracy_report.py):
 * loss and gradient of confident rows within 1.6e-7 (float32) and 6.2e-16 (float64). */
static SL_INLINE double SL_F(row_sprime_impl)(const SL_T *restrict x, int64_t C, SL_T m, SL_T lo,
                                              int64_t ks, SL_T *restrict e, const int store) {
  double total = 0.0;
  const int bounded = (lo - m) >= SL_BOUND;
  const SL_T b = -m;
  for (int64_t j0 = 0; j0 < C; j0 += SL_BLOCK) {
    int64_t j1 = j0 + SL_BLOCK < C ? j0 + SL_BLOCK : C;
    SL_T acc[16] = {0}, cmp[16] = {0};
    int64_t j = j0;
#define SL_EXACT_TERM(EXPF, idx, l)                                           \
    { SL_T a = x[idx], d = a + b, bb = d - a;                                 \
      SL_T err = (a - (d - bb)) + (b - bb);                                   \
      SL_T v = EXPF(d);                                                       \
      v = v > 0 ? v + v * err : (d == d ? (SL_T)0 : d); /* NaN stays NaN */  \
      v = (idx) == ks ? (SL_T)0 : v;                                          \
      if (store) e[idx] = v;                                                  \
      SL_T y = v - cmp[l], t = acc[l] + y;                                    \
      cmp[l] = (t - acc[l]) - y; acc[l] = t; }
    if (bounded) {
      for (; j + 16 <= j1; j += 16)
        for (int l = 0; l < 16; l++) SL_EXACT_TERM(SL_EXPB, j + l, l)
    } else {
      for (; j + 16 <= j1; j += 16)
        for (int l = 0; l < 16; l++) SL_EXACT_TERM(SL_EXPV, j + l, l)
    }
    for (; j < j1; j++) SL_EXACT_TERM(SL_EXPV, j, 0)
#undef SL_EXACT_TERM
    total += (double)SL_HSUM(acc) - (double)SL_HSUM(cmp);
  }
  if (store && ks >= 0 && ks < C) e[ks] = 1;   /* ks may lie outside a sub-range (split rows) */
  return total;
}

static double SL_F(row_sprime_exact)(const SL_T *restrict x, int64_t C, SL_T m, SL_T lo, int64_t ks,
                                     SL_T *restrict e) {
  return e ? SL_F(row_sprime_impl)(x, C, m, lo, ks, e, 1) : SL_F(row_sprime_impl)(x, C, m, lo, ks, e, 0);
}

/* ---- logsumexp ------------------------------------------------------------ */
/* lse of one row in double (rounded to SL_T by lse_rows) */
static double SL_F(row_lse)(const SL_T *restrict xr, int64_t C) {
  if (C == 0) return -INFINITY;
  SL_T lo, m; SL_F(row_minmax)(xr, C, &lo, &m);
  double S = SL_F(row_sumexp)(xr, C, m, lo);
  if (!(S == S))                     /* NaN, +inf, or all -inf */
    return SL_F(row_has_nan)(xr, C) ? NAN : (double)m;
  if (S < 2.0) {
    int64_t ks = SL_F(row_first_max)(xr, C, m);
    return (double)m + log1p(SL_F(row_sprime_exact)(xr, C, m, lo, ks, NULL));
  }
  return (double)m + log(S);
}

void SL_F(lse_rows)(const SL_T *x, int64_t C, int64_t r0, int64_t r1, SL_T *out) {
  for (int64_t i = r0; i < r1; i++) out[i] = (SL_T)SL_F(row_lse)(x + i * C, C);
}

static SL_INLINE void SL_F(fill)(SL_T *restrict y, int64_t C, SL_T v) {
  for (int64_t j = 0; j < C; j++) y[j] = v;
}

/* ---- softmax (times a per-row scale: also the logsumexp VJP) --------------- */
void SL_F(softmax_rows)(const SL_T *x, int64_t C, int64_t r0, int64_t r1,
                        const SL_T *grow, SL_T *y) {
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *xr = x + i * C; SL_T *yr = y + i * C;
    if (C == 0) continue;
    SL_T lo, m; SL_F(row_minmax)(xr, C, &lo, &m);
    double S = SL_F(row_sumexp_store)(xr, C, m, lo, yr);
    if (!(S == S)) { SL_F(fill)(yr, C, (SL_T)NAN); continue; }
    const SL_T k = (SL_T)((grow ? (double)grow[i] : 1.0) / S);
    for (int64_t j = 0; j < C; j++) yr[j] *= k;
  }
}

/* ---- log_softmax ------------------------------------------------------------ */
void SL_F(log_softmax_rows)(const SL_T *x, int64_t C, int64_t r0, int64_t r1, SL_T *y) {
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *xr = x + i * C; SL_T *yr = y + i * C;
    if (C == 0) continue;
    SL_T lo, m; SL_F(row_minmax)(xr, C, &lo, &m);
    double S = SL_F(row_sumexp)(xr, C, m, lo);
    if (!(S == S)) { SL_F(fill)(yr, C, (SL_T)NAN); continue; }
    if (S < 2.0) {
      int64_t ks = SL_F(row_first_max)(xr, C, m);
      double L = log1p(SL_F(row_sprime_exact)(xr, C, m, lo, ks, NULL));
      const double md = (double)m;
      for (int64_t j = 0; j < C; j++) yr[j] = (SL_T)(((double)xr[j] - md) - L);
    } else {
      const SL_T L = (SL_T)log(S);
      for (int64_t j = 0; j < C; j++) yr[j] = (xr[j] - m) - L;
    }
  }
}

/* ---- VJPs of softmax and log_softmax (from the forward output y) ----------- */
void SL_F(softmax_vjp_rows)(const SL_T *y, const SL_T *g, int64_t C, int64_t r0, int64_t r1, SL_T *gx) {
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *yr = y + i * C, *gr = g + i * C; SL_T *o = gx + i * C;
    double s = 0.0;
    for (int64_t j = 0; j < C; j++) s = SL_MADD((double)gr[j], (double)yr[j], s);
    const SL_T st = (SL_T)s;
    for (int64_t j = 0; j < C; j++) o[j] = yr[j] * (gr[j] - st);
  }
}

void SL_F(log_softmax_vjp_rows)(const SL_T *y, const SL_T *g, int64_t C, int64_t r0, int64_t r1, SL_T *gx) {
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *yr = y + i * C, *gr = g + i * C; SL_T *o = gx + i * C;
    double s = 0.0;
    for (int64_t j = 0; j < C; j++) s += (double)gr[j];
    const SL_T st = (SL_T)s;
    for (int64_t j = 0; j < C; j++) o[j] = SL_MADDT(-SL_EXPV(yr[j]), st, gr[j]);
  }
}

/* ---- cross-entropy with class-index labels ---------------------------------
 * loss_i = v [(1-eps) w_y (lse - x_y) + (eps/C) sum_c w_c (lse - x_c)]
 * grad_ij = scale_i v [a p_j - (1-eps) w_y [j=y] - (eps/C) w_j],
 *   a = (1-eps) w_y + (eps/C) W,  W = sum_c w_c.
 * lse - x_c is evaluated as (m - x_c) + log S: two non-negative terms.
 * Writes loss[i] (double) for every row of the block, the gradient row when g
 * is not NULL, and returns the block's loss sum (rows in order). A label that is
 * neither in [0, C) nor ignore_index is never used as an index: its row gets a
 * NaN loss, a zero gradient row, and *bad = its row (the first in the block).
 * z-loss (zl > 0, PaLM's auxiliary z lse^2 on every non-ignored row, not class-weighted):
 * loss_i += zl lse^2 and the gradient gains scale_i v 2 zl lse p_j (a += 2 zl lse).
 * lse (not NULL): lse[i] = m + log S (m + log1p(s') on exact rows) in double; ignored
 * rows get their logsumexp too, rows with a bad label or a NaN loss get NaN. */
double SL_F(ce_index_rows)(const SL_T *x, int64_t C, int64_t r0, int64_t r1,
                           const int64_t *labels, const SL_T *w, double W,
                           int has_ignore, int64_t ignore_index, double eps,
                           double *loss, SL_T *g, double gscale, const double *grow,
                           int64_t *bad, double zl, double *lse) {
  double total = 0.0;
  const double ec = C > 0 ? eps / (double)C : 0.0;
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *xr = x + i * C; SL_T *gr = g ? g + i * C : NULL;
    const int64_t y = labels[i];
    if (has_ignore && y == ignore_index) {
      loss[i] = 0.0;
      if (lse) lse[i] = SL_F(row_lse)(xr, C);     /* read before g (may alias x) is zeroed */
      if (gr) SL_F(fill)(gr, C, 0);
      continue;
    }
    if (y < 0 || y >= C) {
      if (*bad < 0) *bad = i;
      loss[i] = NAN;
      if (lse) lse[i] = NAN;
      if (gr) SL_F(fill)(gr, C, 0);
      continue;
    }
    const double sc = grow ? grow[i] : gscale;
    const double wy = w ? (double)w[y] : 1.0;
    SL_T lo, m; SL_F(row_minmax)(xr, C, &lo, &m);
    /* everything that reads x after the min/max pass happens before the pass that
     * stores into g: g may alias x (the in-place gradient, grad_out=logits) */
    const double md = (double)m, xy = (double)xr[y];
    double asm_ = 0.0;                      /* sum_c w_c (m - x_c), for label smoothing */
    if (eps > 0.0) {
      if (w) { for (int64_t j = 0; j < C; j++) asm_ = SL_MADD((double)w[j], md - (double)xr[j], asm_); }
      else   { for (int64_t j = 0; j < C; j++) asm_ += md - (double)xr[j]; }
    }
    /* target at the (finite) maximum: the loss is log1p(s'), straight to the exact
     * pass (its result is right for any s'); otherwise the fast pass */
    const int exact = (xr[y] == m) && (m - m == 0) && (lo == lo);
    double S, sp = 0.0, L;
    if (exact) {
      sp = SL_F(row_sprime_exact)(xr, C, m, lo, y, gr);
      S = 1.0 + sp;
      L = log1p(sp);
    } else {
      S = gr ? SL_F(row_sumexp_store)(xr, C, m, lo, gr) : SL_F(row_sumexp)(xr, C, m, lo);
      L = log(S);
    }
    if (!(S == S)) {
      loss[i] = NAN; total += NAN;
      if (lse) lse[i] = NAN;
      if (gr) SL_F(fill)(gr, C, (SL_T)NAN);
      continue;
    }
    const double lsei = md + L;
    if (lse) lse[i] = lsei;
    double li = (1.0 - eps) * wy * ((md - xy) + L);
    if (eps > 0.0) li += ec * (asm_ + W * L);
    if (zl != 0.0) li += zl * (lsei * lsei);
    loss[i] = li; total += li;
    if (!gr) continue;
    /* gradient: gr holds e_j = exp(x_j - m); p_j = e_j / S (e_y == 1 on exact rows) */
    const double ey = (double)gr[y];
    const double zg = zl != 0.0 ? 2.0 * zl * lsei : 0.0;      /* d(zl lse^2)/d lse */
    const double a = (1.0 - eps) * wy + ec * W + zg;
    const SL_T k = (SL_T)(sc * a / S);
    if (eps > 0.0 && w) {
      const double c2 = sc * ec;
      for (int64_t j = 0; j < C; j++) gr[j] = SL_MADDT(gr[j], k, -(SL_T)(c2 * (double)w[j]));
    } else if (eps > 0.0) {
      const SL_T c2 = (SL_T)(sc * ec);
      for (int64_t j = 0; j < C; j++) gr[j] = SL_MADDT(gr[j], k, -c2);
    } else {
      for (int64_t j = 0; j < C; j++) gr[j] *= k;
    }
    /* target entry: a p_y - (1-eps) w_y - ec w_y; on exact rows (1 - p_y) = s'/S */
    const double gy = exact ? -(1.0 - eps) * wy * (sp / S) + (ec * W + zg) / S - ec * wy
                            : a * (ey / S) - (1.0 - eps) * wy - ec * wy;
    gr[y] = (SL_T)(sc * gy);
  }
  return total;
}

/* ---- cross-entropy with index labels, rows split across threads (N < threads) -----
 * Work items are (row, block of SL_BLOCK classes). Each phase is the corresponding step
 * of ce_index_rows on one block; the per-block values (min/max, the 16-lane block sums
 * v_b) are combined per row serially in block order, exactly as the row kernel adds
 * them, so the bits equal ce_index_rows' for any thread count (tested). Plain and
 * weighted CE without label smoothing (its sum over the row is a single sequential
 * double sum); the caller checks. Runs its own parallel region with nt threads. */
double SL_F(ce_index_split)(const SL_T *x, int64_t C, int64_t N, const int64_t *labels,
                            const SL_T *w, double W, int has_ignore, int64_t ignore_index,
                            double *loss, SL_T *g, double gscale, const double *grow,
                            int64_t *bad, int nt, double *work) {
  const int64_t nbk = (C + SL_BLOCK - 1) / SL_BLOCK, items = N * nbk;
  SL_T *blo = (SL_T *)work, *bhi = blo + items;            /* work: 3*items + 6*N doubles */
  double *bv = work + 2 * items;                            /* after 2*items SL_T (<= 8 bytes) */
  double *rk = bv + items, *rgy = rk + N, *rS = rgy + N;    /* per-row scale, target entry, S */
  SL_T *rm = (SL_T *)(rS + N), *rlo = rm + N;
  int64_t *rstate = (int64_t *)(rlo + N);                   /* 0 plain, 1 exact, 2 skip, 3 NaN */
  double total = 0.0;
  (void)nt;
#pragma omp parallel num_threads(nt)
  {
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; it++) {
      const int64_t i = it / nbk, j0 = (it % nbk) * SL_BLOCK;
      const int64_t n = C - j0 < SL_BLOCK ? C - j0 : SL_BLOCK;
      SL_F(row_minmax)(x + i * C + j0, n, &blo[it], &bhi[it]);
    }
#pragma omp single
    for (int64_t i = 0; i < N; i++) {
      /* the row's min and max from the blocks' by the same key order (exact: the row
       * kernel's values, signed zeros included) */
      SL_T lo, m, unused;
      SL_F(row_minmax)(blo + i * nbk, nbk, &lo, &unused);
      SL_F(row_minmax)(bhi + i * nbk, nbk, &unused, &m);
      rm[i] = m; rlo[i] = lo;
      const int64_t y = labels[i];
      if ((has_ignore && y == ignore_index) || y < 0 || y >= C) { rstate[i] = 2; continue; }
      rstate[i] = ((x[i * C + y] == m) && (m - m == 0) && (lo == lo)) ? 1 : 0;
    }
#pragma omp for schedule(static)
    for (int64_t it = 0; it < items; it++) {
      const int64_t i = it / nbk, j0 = (it % nbk) * SL_BLOCK;
      const int64_t n = C - j0 < SL_BLOCK ? C - j0 : SL_BLOCK;
      if (rstate[i] == 2) { if (g) SL_F(fill)(g + i * C + j0, n, 0); continue; }
      const SL_T *xb = x + i * C + j0;
      SL_T *gb = g ? g + i * C + j0 : NULL;
      if (rstate[i] == 1)
        bv[it] = SL_F(row_sprime_exact)(xb, n, rm[i], rlo[i], labels[i] - j0, gb);
      else
        bv[it] = gb ? SL_F(row_sumexp_store)(xb, n, rm[i], rlo[i], gb) : SL_F(row_sumexp)(xb, n, rm[i], rlo[i]);
    }
#pragma omp single
    for (int64_t i = 0; i < N; i++) {
      const int64_t y = labels[i];
      if (rstate[i] == 2) {
        if (!((has_ignore && y == ignore_index))) { if (*bad < 0) *bad = i; loss[i] = NAN; }
        else loss[i] = 0.0;
        continue;
      }
      double S = 0.0, sp = 0.0, L;
      for (int64_t b = 0; b < nbk; b++) S += bv[i * nbk + b];
      if (rstate[i] == 1) { sp = S; S = 1.0 + sp; L = log1p(sp); }
      else L = log(S);
      rS[i] = S;
      if (!(S == S)) { rstate[i] = 3; loss[i] = NAN; total += NAN; continue; }
      /* the row kernel's expressions with eps = 0, verbatim: the same bits, signed
       * zeros included */
      const double eps = 0.0, ec = 0.0;
      const double wy = w ? (double)w[y] : 1.0, sc = grow ? grow[i] : gscale;
      const double md = (double)rm[i], xy = (double)x[i * C + y];
      const double li = (1.0 - eps) * wy * ((md - xy) + L);
      loss[i] = li; total += li;
      if (!g) continue;
      const double ey = (double)g[i * C + y];
      const double a = (1.0 - eps) * wy + ec * W;
      rk[i] = sc * a / S;
      const double gy = rstate[i] == 1 ? -(1.0 - eps) * wy * (sp / S) + ec * W / S - ec * wy
                                       : a * (ey / S) - (1.0 - eps) * wy - ec * wy;
      rgy[i] = sc * gy;
    }
    if (g) {
#pragma omp for schedule(static)
      for (int64_t it = 0; it < items; it++) {
        const int64_t i = it / nbk, j0 = (it % nbk) * SL_BLOCK;
        const int64_t n = C - j0 < SL_BLOCK ? C - j0 : SL_BLOCK;
        SL_T *gb = g + i * C + j0;
        if (rstate[i] == 2) continue;
        if (rstate[i] == 3) { SL_F(fill)(gb, n, (SL_T)NAN); continue; }
        const SL_T k = (SL_T)rk[i];
        for (int64_t j = 0; j < n; j++) gb[j] *= k;
        const int64_t y = labels[i];
        if (y >= j0 && y < j0 + n) gb[y - j0] = (SL_T)rgy[i];
      }
    }
  }
  return total;
}

/* ---- cross-entropy, many tiny rows (C <= 16) --------------------------------
 * Tiles of SL_TILE rows are transposed (xt[class][row]) so that consecutive rows sit
 * in the vector lanes and max, exp, sums, log and scaling run full width across rows
 * (a loop of length C <= 16 inside one row cannot fill a vector).
 * Exactness without index compares in the hot loop: every term carries its TwoSum
 * correction, so a term is exactly 1 iff its logit equals the row maximum (a
 * non-maximal term within 2^-25 of 1 also rounds to 1, an error < 2^-24 relative in
 * a sum that is then >= 1); s' = sum_{e_j < 1} e_j + (n_1 - 1) excludes one maximal
 * term without cancellation, and for every row
 *     loss = (m - x_t) + log1p(s'),   S = 1 + s',
 *     grad_j = e_j / S,  grad_t = e_t / S - 1  (= -s'/S when e_t == 1).
 * The partial sums are Kahan-compensated. Plain CE only (no class weight, no label
 * smoothing): the caller sends other cases to ce_index_rows. */
#define SL_TILE 32
/* the transposing copies: clang vectorises them over rows with gathers / scatters of
 * stride C, slower here than its scalar (unrolled) copy; GCC leaves them scalar itself.
 * Copies only: no effect on any value. */
#if defined(__clang__)
#define SL_NO_GATHER _Pragma("clang loop vectorize(disable)")
#else
#define SL_NO_GATHER
#endif
static SL_INLINE double SL_F(ce_tiles_impl)(const SL_T *x, int64_t C, int64_t r0, int64_t r1,
                                            const int64_t *labels, int has_ignore, int64_t ignore_index,
                                            double *loss, SL_T *g, double gscale, const double *grow,
                                            int64_t *bad) {
  SL_T xt[16][SL_TILE];
  SL_T m[SL_TILE], lo[SL_TILE], sp[SL_TILE], spc[SL_TILE], n1[SL_TILE], kk[SL_TILE], L[SL_TILE];
  SL_T xtv[SL_TILE];
  int64_t tt[SL_TILE];
  double total = 0.0;
  for (int64_t rb = r0; rb < r1; rb += SL_TILE) {
    const int nr = (r1 - rb) < SL_TILE ? (int)(r1 - rb) : SL_TILE;
    const SL_T *xb = x + rb * C;
    /* 1. copy in (transpose); padded lanes are zeros */
    SL_NO_GATHER
    for (int r = 0; r < nr; r++)
      for (int64_t j = 0; j < C; j++) xt[j][r] = xb[r * C + j];
    for (int r = nr; r < SL_TILE; r++)
      for (int64_t j = 0; j < C; j++) xt[j][r] = 0;
    /* 2. labels (scalar): -1 for ignored, padded and bad ones; the target logit */
    for (int r = 0; r < SL_TILE; r++) {
      int64_t y = r < nr ? labels[rb + r] : -1;
      int ig = r >= nr || (has_ignore && y == ignore_index);
      int oob = !ig && (y < 0 || y >= C);
      if (oob && *bad < 0) *bad = rb + r;
      tt[r] = (ig || oob) ? -1 : y;
      xtv[r] = tt[r] >= 0 ? xb[r * C + tt[r]] : (SL_T)0;
      if (oob) tt[r] = -2;
    }
    /* 3. row max and min (the min only picks the exp variant for the tile) */
    for (int r = 0; r < SL_TILE; r++) { m[r] = xt[0][r]; lo[r] = xt[0][r]; }
    for (int64_t j = 1; j < C; j++)
      for (int r = 0; r < SL_TILE; r++) {
        SL_T v = xt[j][r];
        m[r] = v > m[r] ? v : m[r];
        lo[r] = v < lo[r] ? v : lo[r];
      }
    SL_T span = 0;
    for (int r = 0; r < SL_TILE; r++) { SL_T d = lo[r] - m[r]; span = d < span ? d : span; }
    /* 4. corrected terms (stored in place of x), s' parts, count of exact ones */
    for (int r = 0; r < SL_TILE; r++) { sp[r] = 0; spc[r] = 0; n1[r] = 0; }
#define SL_TILE_TERMS(EXPF)                                                   \
    for (int64_t j = 0; j < C; j++) {                                         \
      _Pragma("omp simd")                                                     \
      for (int r = 0; r < SL_TILE; r++) {                                     \
        SL_T a = xt[j][r], b = -m[r], d = a + b, bb = d - a;                  \
        SL_T err = (a - (d - bb)) + (b - bb);                                 \
        SL_T v = EXPF(d);                                                     \
        v = v > 0 ? v + v * err : v * 0; /* -inf: 0 (err is NaN); NaN: NaN */ \
        xt[j][r] = v;                                                         \
        const int one = v == (SL_T)1;                                         \
        n1[r] += one ? (SL_T)1 : (SL_T)0;                                     \
        SL_T vv = one ? (SL_T)0 : v;                                          \
        SL_T yk = vv - spc[r], tk = sp[r] + yk;                               \
        spc[r] = (tk - sp[r]) - yk; sp[r] = tk;                               \
      }                                                                       \
    }
    if (span >= SL_BOUND) { SL_TILE_TERMS(SL_EXPB) } else { SL_TILE_TERMS(SL_EXPV) }
#undef SL_TILE_TERMS
    /* 5. per row: s', loss, gradient scale (the scales gathered first: a `grow ?` inside
     * the vector loop became masked loads from grow = NULL under clang, slow) */
    SL_T scr[SL_TILE];
    if (grow) { for (int r = 0; r < SL_TILE; r++) scr[r] = (SL_T)(r < nr ? grow[rb + r] : 0.0); }
    else      { for (int r = 0; r < SL_TILE; r++) scr[r] = (SL_T)gscale; }
    for (int r = 0; r < SL_TILE; r++) {
      SL_T s = (sp[r] - spc[r]) + (n1[r] - 1);
      sp[r] = s;
#if SL_F32
      L[r] = (m[r] - xtv[r]) + SL_M(sl_log1pf)(s);
#endif
      kk[r] = tt[r] >= 0 ? scr[r] / (1 + s) : (SL_T)0;
    }
#if !SL_F32
    for (int r = 0; r < SL_TILE; r++) L[r] = (m[r] - xtv[r]) + log1p(sp[r]);
#endif
    for (int r = 0; r < nr; r++) {
      double li = tt[r] >= 0 ? (double)L[r] : tt[r] == -2 ? (double)NAN : 0.0;
      loss[rb + r] = li; total += li;
    }
    if (!g) continue;
    /* 6. gradient: scale, transpose back, then the target entries (scalar) */
    SL_T ett[SL_TILE];
    for (int r = 0; r < SL_TILE; r++) ett[r] = tt[r] >= 0 ? xt[tt[r]][r] : (SL_T)0;
    for (int64_t j = 0; j < C; j++)
      for (int r = 0; r < SL_TILE; r++) xt[j][r] *= kk[r];
    SL_T *gb = g + rb * C;
    SL_NO_GATHER
    for (int r = 0; r < nr; r++)
      for (int64_t j = 0; j < C; j++) gb[r * C + j] = xt[j][r];
    for (int r = 0; r < nr; r++) {
      const int64_t y = tt[r];
      if (y < 0) continue;
      const SL_T sc = (SL_T)(grow ? grow[rb + r] : gscale);
      /* e_t == 1 (target at the max): -s'/S, no cancellation; else e_t/S - 1 */
      gb[r * C + y] = ett[r] == (SL_T)1 ? -(sp[r] / (1 + sp[r])) * sc : xt[y][r] - sc;
    }
  }
  return total;
}

double SL_F(ce_index_tiles)(const SL_T *x, int64_t C, int64_t r0, int64_t r1, const int64_t *labels,
                            int has_ignore, int64_t ignore_index, double *loss, SL_T *g,
                            double gscale, const double *grow, int64_t *bad) {
  /* C as a compile-time constant for the common sizes: no loop control per class */
  switch (C) {
#define SL_TILE_CASE(c) case c: return SL_F(ce_tiles_impl)(x, c, r0, r1, labels, has_ignore, \
                                     ignore_index, loss, g, gscale, grow, bad);
    SL_TILE_CASE(2) SL_TILE_CASE(3) SL_TILE_CASE(4) SL_TILE_CASE(5) SL_TILE_CASE(8)
    SL_TILE_CASE(10) SL_TILE_CASE(16)
#undef SL_TILE_CASE
    default:
      return SL_F(ce_tiles_impl)(x, C, r0, r1, labels, has_ignore, ignore_index, loss, g, gscale,
                                 grow, bad);
  }
}

/* ---- cross-entropy with probability labels --------------------------------
 * q_c = (1-eps) t_c + eps/C;  loss_i = sum_c w_c q_c (lse - x_c)
 * grad wrt x: scale (p_j Q - w_j q_j), Q = sum_c w_c q_c;
 * grad wrt t: scale (1-eps) w_c (lse - x_c).
 * Exact path when S < 2 (s' recomputed; at k*: p Q - w q = p Q' - w q s'/S with
 * Q' = Q - w_k* q_k*, summed without the k* term).
 * unit_mass: the gradient wrt x uses mass 1 instead of Q, i.e. p_j - w_j q_j
 * (TensorFlow's softmax_cross_entropy_with_logits: softmax - labels whatever the row
 * sum of the labels; the true derivative only when Q = 1). The loss is unchanged. */
double SL_F(ce_prob_rows)(const SL_T *x, const SL_T *t, int64_t C, int64_t r0, int64_t r1,
                          const SL_T *w, double eps, double *loss, SL_T *gx, SL_T *gt,
                          double gscale, const double *grow, int unit_mass) {
  double total = 0.0;
  const double ec = C > 0 ? eps / (double)C : 0.0, om = 1.0 - eps;
  for (int64_t i = r0; i < r1; i++) {
    const SL_T *xr = x + i * C, *tr = t + i * C;
    SL_T *gxr = gx ? gx + i * C : NULL, *gtr = gt ? gt + i * C : NULL;
    const double sc = grow ? grow[i] : gscale;
    if (C == 0) { loss[i] = 0.0; continue; }
    SL_T lo, m; SL_F(row_minmax)(xr, C, &lo, &m);
    /* reads of x before the store pass (gx may alias x; gt may not -- the caller checks) */
    const double md = (double)m;
    /* Q = sum w q ; A = sum w q (m - x): 16 fixed double lanes (vectorises; same bits
     * for any vector width), a scalar tail. SL_MADD: fused where the region has FMA
     * (explicit, so the same on every compiler; the build does not contract) */
    double Q, A;
    {
      double qa[16] = {0}, aa[16] = {0};
      int64_t j = 0;
      if (w) {
        for (; j + 16 <= C; j += 16)
          for (int l = 0; l < 16; l++) {
            double wq = (double)w[j + l] * (om * (double)tr[j + l] + ec);
            qa[l] += wq; aa[l] = SL_MADD(wq, md - (double)xr[j + l], aa[l]);
          }
      } else {
        for (; j + 16 <= C; j += 16)
          for (int l = 0; l < 16; l++) {
            double wq = om * (double)tr[j + l] + ec;
            qa[l] += wq; aa[l] = SL_MADD(wq, md - (double)xr[j + l], aa[l]);
          }
      }
      double qt = 0.0, at = 0.0;
      for (; j < C; j++) {
        double wq = w ? (double)w[j] * (om * (double)tr[j] + ec) : om * (double)tr[j] + ec;
        qt += wq; at = SL_MADD(wq, md - (double)xr[j], at);
      }
      Q = sl_hsum16_f64(qa) + qt; A = sl_hsum16_f64(aa) + at;
    }
    /* In place (gx == x) the exact pass must not follow a pass that stored into x:
     * sum without storing first, then store in whichever pass is taken. */
    const int inplace = gxr && (const SL_T *)gxr == xr;
    double S = (gxr && !inplace) ? SL_F(row_sumexp_store)(xr, C, m, lo, gxr) : SL_F(row_sumexp)(xr, C, m, lo);
    if (!(S == S)) {
      loss[i] = NAN; total += NAN;
      if (gxr) SL_F(fill)(gxr, C, (SL_T)NAN);
      if (gtr) SL_F(fill)(gtr, C, (SL_T)NAN);
      continue;
    }
    int64_t ks = -1; double sp = 0.0, L;
    if (S < 2.0) {
      ks = SL_F(row_first_max)(xr, C, m);
      sp = SL_F(row_sprime_exact)(xr, C, m, lo, ks, gxr);
      S = 1.0 + sp; L = log1p(sp);
    } else {
      if (inplace) S = SL_F(row_sumexp_store)(xr, C, m, lo, gxr);   /* same bits as above */
      L = log(S);
    }
    double li = A + Q * L;
    loss[i] = li; total += li;
    /* `w ?` outside the loops (x * 1.0 == x, so the same bits): inside, clang vectorised
     * it as masked loads of w, and masked-off loads from w = NULL take a fault-suppression
     * assist every time (probability-label CE 8x slower than with GCC) */
    if (gtr) {
      const double so = sc * om;
      if (w) for (int64_t j = 0; j < C; j++) gtr[j] = (SL_T)(so * (double)w[j] * ((md - (double)xr[j]) + L));
      else   for (int64_t j = 0; j < C; j++) gtr[j] = (SL_T)(so * ((md - (double)xr[j]) + L));
    }
    if (!gxr) continue;
    const double Qg = unit_mass ? 1.0 : Q;
    const double kq = sc * Qg / S;
    if (w) {
      for (int64_t j = 0; j < C; j++) {
        double wq = (double)w[j] * (om * (double)tr[j] + ec);
        gxr[j] = (SL_T)SL_MADD(kq, (double)gxr[j], -(sc * wq));
      }
    } else {
      for (int64_t j = 0; j < C; j++) {
        double wq = om * (double)tr[j] + ec;
        gxr[j] = (SL_T)SL_MADD(kq, (double)gxr[j], -(sc * wq));
      }
    }
    if (ks >= 0) {
      double wqk = (w ? (double)w[ks] : 1.0) * (om * (double)tr[ks] + ec);
      gxr[ks] = (SL_T)(sc * ((Qg - wqk) / S - wqk * (sp / S)));
    }
  }
  return total;
}

/* ---- NLL on log-probabilities ------------------------------------------------
 * loss_i = -v w_y lp_{i,y};  grad = -scale v w_y at column y. Bad labels as in
 * ce_index_rows. */
double SL_F(nll_rows)(const SL_T *lp, int64_t C, int64_t r0, int64_t r1, const int64_t *labels,
                      const SL_T *w, int has_ignore, int64_t ignore_index, double *loss,
                      SL_T *g, double gscale, const double *grow, int64_t *bad) {
  double total = 0.0;
  for (int64_t i = r0; i < r1; i++) {
    SL_T *gr = g ? g + i * C : NULL;
    const int64_t y = labels[i];
    const int ignored = has_ignore && y == ignore_index, oob = y < 0 || y >= C;
    /* read lp before zeroing the gradient row: g may alias lp (in place) */
    const double wy = (ignored || oob) ? 0.0 : (w ? (double)w[y] : 1.0);
    const double li = (ignored || oob) ? 0.0 : -wy * (double)lp[i * C + y];
    if (gr) SL_F(fill)(gr, C, 0);
    if (ignored) { loss[i] = 0.0; continue; }
    if (oob) { if (*bad < 0) *bad = i; loss[i] = NAN; continue; }
    loss[i] = li; total += li;
    if (gr) gr[y] = (SL_T)(-(grow ? grow[i] : gscale) * wy);
  }
  return total;
}

#undef SL_TS
#undef SL_MADDT
#undef SL_EXPV
#undef SL_EXPB
#undef SL_BOUND
#undef SL_HSUM
#undef SL_BLOCK
#undef SL_NO_GATHER
