/* sl_elem_t.h -- elementwise binary-family kernels, templated over the element type
 * (SL_T, SL_F, SL_F32 as in sl_rows_t.h). No include guard.
 *
 * The data is viewed as (rows, K) with K the length of the last axis, so that
 * per-element weights can be given either in full (wmode 2), as one value per
 * column (wmode 1, length K; also pos_weight), or not at all (wmode 0) without
 * ever materialising a broadcast array. All scalar maths is in double with libm
 * (float32 inputs therefore get results rounded once).
 *
 * softplus(-x) = log(1 + e^{-x}) is never formed as max(-x,0) + log1p(e^{-|x|})
 * added to a term that cancels it: with L = 1 + (pw - 1) z,
 *   x >= 0: loss = (1 - z) x  + L log1p(e^{-x})
 *   x <  0: loss = -pw z x    + L log1p(e^{x})
 * both sums of non-negative terms for z in [0, 1], pw >= 0 (exact in both tails).
 * Gradient wrt x: L sigma(x) - pw z, written as (1 - z) - L sigma(-x) for x >= 0
 * (no cancellation at z = 1) and L sigma(x) - pw z for x < 0.
 * A term whose coefficient is exactly 0 contributes 0 even when the other factor
 * is infinite (x = +inf with z = 1 gives loss 0, not NaN).
 *
 * form 1 (TensorFlow's weighted_cross_entropy_with_logits, reproduced on purpose):
 *   loss = (1 - z) x + L (log1p(e^{-|x|}) + max(-x, 0))  in the input dtype, IEEE
 *   (cancels for x << 0 with z < 1: x = -20, z = 0 gives 0; 0 * inf gives NaN);
 *   d/dx = (1 - z) - L sigma(-x) for x > 0, ((1 - z) - L) + L sigma(x) for x < 0 and
 *   1 - z at x = 0 exactly (TF differentiates abs and relu with slope 0 there);
 *   d/dz = -x + (pw - 1)(log1p(e^{-|x|}) + max(-x, 0)).
 * pos_weight: per column (pmode 1, length K) or in full (pmode 2).
 */

static SL_INLINE double SL_F(elem_w)(const SL_T *w, int wmode, int64_t idx, int64_t col) {
  return wmode == 0 ? 1.0 : (double)w[wmode == 1 ? col : idx];
}

static SL_INLINE double SL_F(mul0)(double c, double v) { return c == 0.0 ? 0.0 : c * v; }

/* BCE with logits on elements [i0, i1) (flat), K = last-axis length.
 * float32: vectorised -- chunks of SL_ECHUNK elements; the chunk's weights and
 * pos_weights are gathered into L1-resident arrays first, the branch-free body then
 * computes loss, d/dx and d/dz for every element (sl_expf, sl_log1pf: a few ulp), and
 * the requested ones are copied out. The loss sum uses 16 fixed double lanes per
 * chunk, chunks added in order (same bits for any thread count or vector width).
 * float64: the same formulas with libm exp/log1p, element by element. */
#define SL_ECHUNK 256
#if SL_F32
static SL_INLINE void SL_F(bce_logits_chunk)(const float *restrict x, const float *restrict z,
                                             const float *restrict wl, const float *restrict pl,
                                             int n, float *restrict lo, float *restrict gxo,
                                             float *restrict gzo, const int want_gz, const int tf_form) {
#pragma omp simd
  for (int k = 0; k < n; k++) {
    const float xv = x[k], zv = z[k], wv = wl[k], pv = pl[k];
    const float Lc = 1.0f + (pv - 1.0f) * zv;
    const float ax = xv < 0 ? -xv : xv;
    const float en = SL_M(sl_expf)(-ax);                   /* e^{-|x|} */
    const float w1 = 1.0f + en, inv = 1.0f / w1;     /* one division serves both */
    const float l1 = SL_M(sl_logf)(w1) + (en - (w1 - 1.0f)) * inv;   /* log1p(e^{-|x|}) */
    const float c1 = xv >= 0 ? 1.0f - zv : -pv * zv; /* coefficient of x */
    const float omz = 1.0f - zv, rl = xv < 0 ? -xv : 0.0f;  /* form 1: 1 - z, relu(-x) */
    float li = tf_form ? omz * xv + Lc * (l1 + rl) : (c1 == 0.0f ? 0.0f : c1 * xv) + Lc * l1;
    li = xv == xv ? li : xv;
    lo[k] = wv == 0.0f ? 0.0f : wv * li;
    const float sg = en * inv;                       /* sigma(-|x|) */
    float gv = xv >= 0 ? (1.0f - zv) - Lc * sg : Lc * sg - pv * zv;
    if (tf_form) gv = xv > 0 ? omz - Lc * sg : (xv < 0 ? (omz - Lc) + Lc * sg : omz);
    gxo[k] = wv * (xv == xv ? gv : xv);
    if (want_gz) {                                   /* a constant in each instance */
      const float spm = xv >= 0 ? l1 : l1 - xv;      /* softplus(-x) */
      const float pm1 = pv - 1.0f;
      gzo[k] = wv * (-xv + (tf_form ? pm1 * (l1 + rl) : (pm1 == 0.0f ? 0.0f : pm1 * spm)));
    }
  }
}
#endif

double SL_F(bce_logits_elems)(const SL_T *x, const SL_T *z, int64_t i0, int64_t i1, int64_t K,
                              const SL_T *w, int wmode, const SL_T *pw, int pmode, int form,
                              SL_T *loss, SL_T *gx, SL_T *gz, double gscale, const SL_T *gout) {
  double total = 0.0;
#if SL_F32
  float wl[SL_ECHUNK], pl[SL_ECHUNK], lb[SL_ECHUNK], gb[SL_ECHUNK], zb[SL_ECHUNK];
  for (int k = 0; k < SL_ECHUNK; k++) { wl[k] = 1.0f; pl[k] = 1.0f; }
  for (int64_t c0 = i0; c0 < i1; c0 += SL_ECHUNK) {
    const int n = (int)((i1 - c0) < SL_ECHUNK ? (i1 - c0) : SL_ECHUNK);
    if (wmode == 2) { for (int k = 0; k < n; k++) wl[k] = w[c0 + k]; }
    if (pw && pmode == 2) { for (int k = 0; k < n; k++) pl[k] = pw[c0 + k]; }
    if (wmode == 1 || (pw && pmode == 1)) {
      int64_t col = c0 % K;
      for (int k = 0; k < n; k++) {
        if (wmode == 1) wl[k] = w[col];
        if (pw && pmode == 1) pl[k] = pw[col];
        if (++col == K) col = 0;
      }
    }
    if (form == 1) {
      if (gz) SL_F(bce_logits_chunk)(x + c0, z + c0, wl, pl, n, lb, gb, zb, 1, 1);
      else    SL_F(bce_logits_chunk)(x + c0, z + c0, wl, pl, n, lb, gb, zb, 0, 1);
    } else {
      if (gz) SL_F(bce_logits_chunk)(x + c0, z + c0, wl, pl, n, lb, gb, zb, 1, 0);
      else    SL_F(bce_logits_chunk)(x + c0, z + c0, wl, pl, n, lb, gb, zb, 0, 0);
    }
    double acc[16] = {0}, tail = 0.0;
    int k = 0;
    for (; k + 16 <= n; k += 16)
      for (int l = 0; l < 16; l++) acc[l] += (double)lb[k + l];
    for (; k < n; k++) tail += (double)lb[k];
    total += sl_hsum16_f64(acc) + tail;
    if (loss) for (int q = 0; q < n; q++) loss[c0 + q] = lb[q];
    if (gx) {
      if (gout) for (int q = 0; q < n; q++) gx[c0 + q] = gout[c0 + q] * gb[q];
      else { const float sc = (float)gscale; for (int q = 0; q < n; q++) gx[c0 + q] = sc * gb[q]; }
    }
    if (gz) {
      if (gout) for (int q = 0; q < n; q++) gz[c0 + q] = gout[c0 + q] * zb[q];
      else { const float sc = (float)gscale; for (int q = 0; q < n; q++) gz[c0 + q] = sc * zb[q]; }
    }
  }
#else
  for (int64_t i = i0; i < i1; i++) {
    const int64_t col = i % K;
    const double xv = (double)x[i], zv = (double)z[i];
    const double wv = SL_F(elem_w)(w, wmode, i, col);
    const double pv = pw ? (double)pw[pmode == 2 ? i : col] : 1.0;
    const double Lc = 1.0 + (pv - 1.0) * zv;
    const double ax = fabs(xv);
    const double l1 = log1p(exp(-ax));          /* log(1 + e^{-|x|}) */
    const double rl = xv < 0 ? -xv : 0.0;       /* form 1: relu(-x) */
    double li;
    if (form == 1) li = (1.0 - zv) * xv + Lc * (l1 + rl);
    else if (xv >= 0) li = SL_F(mul0)(1.0 - zv, xv) + Lc * l1;
    else if (xv < 0) li = SL_F(mul0)(-pv * zv, xv) + Lc * l1;
    else li = xv;                                 /* NaN */
    li = SL_F(mul0)(wv, li);
    total += li;
    if (loss) loss[i] = (SL_T)li;
    const double sc = gout ? (double)gout[i] : gscale;
    if (gx) {
      const double en = exp(-ax), sig_small = en / (1.0 + en);   /* sigma(-|x|) */
      double gv;
      if (xv != xv) gv = xv;
      else if (form == 1) gv = xv > 0 ? (1.0 - zv) - Lc * sig_small
                               : (xv < 0 ? ((1.0 - zv) - Lc) + Lc * sig_small : 1.0 - zv);
      else if (xv >= 0) gv = (1.0 - zv) - Lc * sig_small;
      else gv = Lc * sig_small - pv * zv;
      gx[i] = (SL_T)(sc * wv * gv);
    }
    if (gz) {
      /* d/dz = -x + (pw - 1) softplus(-x) */
      const double spm = xv >= 0 ? l1 : -xv + l1;
      gz[i] = (SL_T)(sc * wv * (-xv + (form == 1 ? (pv - 1.0) * (l1 + rl) : SL_F(mul0)(pv - 1.0, spm))));
    }
  }
#endif
  return total;
}

/* BCE on probabilities. policy: 0 clamp (log >= -100, torch), 1 clip to [eps, hi]
 * (Keras; hi = 1-eps unless the caller rounds the bounds to the tensor dtype),
 * 2 add eps inside the logs (TF v1 log_loss; the sums rounded in the input dtype, as
 * TF), 3 exact. */
double SL_F(bce_probs_elems)(const SL_T *p, const SL_T *z, int64_t i0, int64_t i1, int64_t K,
                             const SL_T *w, int wmode, int policy, double eps, double hi,
                             SL_T *loss, SL_T *gp, double gscale, const SL_T *gout) {
  double total = 0.0;
  for (int64_t i = i0; i < i1; i++) {
    const int64_t col = i % K;
    const double pv = (double)p[i], zv = (double)z[i];
    const double wv = SL_F(elem_w)(w, wmode, i, col);
    double lp, l1p, g;                     /* log p, log(1-p), d loss / d p (unweighted) */
    if (policy == 0) {
      lp = log(pv); lp = lp < -100.0 ? -100.0 : lp;
      l1p = log1p(-pv); l1p = l1p < -100.0 ? -100.0 : l1p;
      /* PyTorch's floor is the float32 constant 1e-12f even for float64 inputs */
      double den = pv * (1.0 - pv); den = den < (double)1e-12f ? (double)1e-12f : den;
      g = (pv - zv) / den;
    } else if (policy == 1) {
      double pc = pv < eps ? eps : pv; pc = pc > hi ? hi : pc;
      lp = log(pc); l1p = log1p(-pc);
      g = (pv < eps || pv > hi) ? 0.0 : -zv / pc + (1.0 - zv) / (1.0 - pc);
    } else if (policy == 2) {
      /* p + eps and (1 - p) + eps rounded in the input dtype, as TF v1 log_loss forms
       * them (float32: a perfect prediction scores -log(1 + 2^-23) = -1.1920928e-07) */
      const SL_T et = (SL_T)eps;
      const double a = (double)(SL_T)(p[i] + et), b = (double)(SL_T)((SL_T)(1 - p[i]) + et);
      lp = log(a); l1p = log(b);
      g = -zv / a + (1.0 - zv) / b;
    } else {
      lp = log(pv); l1p = log1p(-pv);
      g = -SL_F(mul0)(zv, 1.0 / pv) + SL_F(mul0)(1.0 - zv, 1.0 / (1.0 - pv));
    }
    double li = -(SL_F(mul0)(zv, lp) + SL_F(mul0)(1.0 - zv, l1p));
    li = SL_F(mul0)(wv, li);
    total += li;
    if (loss) loss[i] = (SL_T)li;
    if (gp) gp[i] = (SL_T)((gout ? (double)gout[i] : gscale) * wv * g);
  }
  return total;
}

/* sigmoid and log_sigmoid, forward and VJP (g may be NULL: VJP with ones).
 * float32 uses the vectorised sl_expf / sl_log1pf, float64 libm. */
#if SL_F32
#define SL_EXPM(v) SL_M(sl_expf)(v)
#define SL_L1P(v) SL_M(sl_log1pf)(v)
#else
#define SL_EXPM(v) exp(v)
#define SL_L1P(v) log1p(v)
#endif
void SL_F(sigmoid_elems)(const SL_T *restrict x, int64_t i0, int64_t i1, SL_T *restrict y) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) {
    const SL_T xv = x[i], en = SL_EXPM(xv < 0 ? xv : -xv);
    y[i] = xv >= 0 ? 1 / (1 + en) : en / (1 + en);
  }
}
/* `g ?` is decided outside the loops (a constant `hasg` in each instance): inside, clang
 * vectorises it as masked loads, and masked-off loads from g = NULL fault-suppress on
 * every vector (slow). 1 * v == v, so both instances give the same bits. */
static SL_INLINE void SL_F(sigmoid_vjp_impl)(const SL_T *restrict x, const SL_T *restrict g, int64_t i0,
                                             int64_t i1, SL_T *restrict gx, const int hasg) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) {
    const SL_T xv = x[i], en = SL_EXPM(xv < 0 ? xv : -xv);
    /* sigma(x) sigma(-x) = e^{-|x|} / (1 + e^{-|x|})^2 */
    const SL_T d = en / ((1 + en) * (1 + en));
    const SL_T v = xv == xv ? d : xv;
    gx[i] = hasg ? g[i] * v : v;
  }
}
void SL_F(sigmoid_vjp_elems)(const SL_T *restrict x, const SL_T *restrict g, int64_t i0, int64_t i1,
                             SL_T *restrict gx) {
  if (g) SL_F(sigmoid_vjp_impl)(x, g, i0, i1, gx, 1);
  else   SL_F(sigmoid_vjp_impl)(x, g, i0, i1, gx, 0);
}
void SL_F(log_sigmoid_elems)(const SL_T *restrict x, int64_t i0, int64_t i1, SL_T *restrict y) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) {
    const SL_T xv = x[i], l1 = SL_L1P(SL_EXPM(xv < 0 ? xv : -xv));
    y[i] = xv >= 0 ? -l1 : xv - l1;
  }
}
static SL_INLINE void SL_F(log_sigmoid_vjp_impl)(const SL_T *restrict x, const SL_T *restrict g, int64_t i0,
                                                 int64_t i1, SL_T *restrict gx, const int hasg) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) {
    const SL_T xv = x[i], en = SL_EXPM(xv < 0 ? xv : -xv);
    /* d/dx log sigma(x) = sigma(-x) */
    const SL_T d = xv >= 0 ? en / (1 + en) : 1 / (1 + en);
    const SL_T v = xv == xv ? d : xv;
    gx[i] = hasg ? g[i] * v : v;
  }
}
void SL_F(log_sigmoid_vjp_elems)(const SL_T *restrict x, const SL_T *restrict g, int64_t i0, int64_t i1,
                                 SL_T *restrict gx) {
  if (g) SL_F(log_sigmoid_vjp_impl)(x, g, i0, i1, gx, 1);
  else   SL_F(log_sigmoid_vjp_impl)(x, g, i0, i1, gx, 0);
}
#undef SL_EXPM
#undef SL_L1P
