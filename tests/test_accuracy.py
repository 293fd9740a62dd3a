"""Accuracy of stableloss against the 60-digit mpmath oracle in ``_reference.py``.

Every expected number comes from ``_reference`` (exact input values, 60 digits, one final
rounding to float64) or from exact mathematics -- never from stableloss itself.  float32
results are compared with the float64-rounded exact answer for the float32 inputs.

Tolerance model
---------------
``TOL`` = 1e-6 (float32) / 1e-14 (float64) is the base relative tolerance (about 17 / 90 units
of roundoff).  Three documented additions:

1. Absolute floor.  Relative accuracy is required down to ``FLOOR = 1e-30``; below it the
   requirement is ``|got - want| <= TOL * FLOOR`` (i.e. the error is measured against
   ``max(|want|, 1e-30)``).  Losses of 1e-26 (margin-60 rows) are therefore checked fully
   relatively; values that underflow (e^-1e30) must be within 1e-36 / 1e-44 of the truth.
2. The one unavoidable rounding.  A library that computes in the input dtype must round the
   shifted logits ``d_c = x_c - max(x)`` once (exact whenever Sterbenz applies, e.g. in the
   ``near1e4`` family).  Where ``d_c`` is NOT exactly representable in the compute dtype
   (decided exactly by ``_reference.shift_inexact_mask``) the first-order effect of a relative
   error ``u`` in ``d_c`` is added: ``|d lp_c| <= b_c = u*(|d_c|[c inexact] +
   sum_k p_k |d_k| [k inexact])`` and ``|d p_c| <= p_c b_c``, times a safety factor 2.
   (For float32 margin-60 rows with random other logits this is ~60u = 3.6e-6 relative, more
   than TOL: no float32 algorithm can do better from those inputs.)
3. Sums of terms: where a contract formula adds terms of different signs (sigmoid CE,
   probability-label gradients, BCE gradients, logsumexp = m + log S) the relative tolerance
   is applied to the sum of the absolute values of the formula's terms, i.e. to the size of
   the numbers an implementation must add.  Each such place is commented.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

import stableloss as sl

import _families as fam
import _reference as ref

F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
TOL = {F32: 1e-6, F64: 1e-14}
U = {F32: 2.0 ** -24, F64: 2.0 ** -53}  # unit roundoff of the compute dtype
FLOOR = 1e-30
RSAFE = 2.0  # safety factor on the first-order rounding terms
DTYPES = [pytest.param(F32, id="float32"), pytest.param(F64, id="float64")]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def assert_close(got, want, bound, *, what, inputs=None, labels=None, max_report=5):
    """Elementwise: NaN where ``want`` is NaN, the same infinity where it is infinite, and a
    finite value within ``bound`` (broadcast) where it is finite."""
    got_a = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got_a.shape == want.shape, f"{what}: shape {got_a.shape} != expected {want.shape}"
    g = got_a.astype(np.float64)
    bound = np.broadcast_to(np.asarray(bound, dtype=np.float64), want.shape)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(g - want)
        bad = np.isnan(want) & ~np.isnan(g)
        bad |= np.isinf(want) & (g != want)
        fin = np.isfinite(want)
        bad |= fin & ~np.isfinite(g)
        bad |= fin & np.isfinite(g) & ~(err <= bound)
    if bad.any():
        idx = np.argwhere(bad)
        lines = [f"{what}: {len(idx)} of {bad.size} elements out of tolerance"]
        for i in idx[:max_report]:
            t = tuple(int(v) for v in i)
            lines.append(f"  at {t}: expected {want[t]!r}, got {g[t]!r} "
                         f"(abs err {err[t]!r}, allowed {bound[t]!r})")
            if inputs is not None:
                inp = np.asarray(inputs)
                row = (inp[t] if inp.ndim == len(t) + 1
                       else inp[t[:-1]] if inp.ndim == len(t) and len(t) else None)
                if row is not None and row.size <= 12:
                    lines.append(f"    input row: {row!r}")
                elif row is not None:
                    lines.append(f"    input row of {row.size} values, max {np.max(row)!r}")
            if labels is not None and len(t):
                lines.append(f"    label: {np.asarray(labels)[t[0]]!r}")
        raise AssertionError("\n".join(lines))


def lp_rounding(x, p_ref, axis=-1):
    """b[..., c] = u (|d_c| [c inexact] + sum_k p_k |d_k| [k inexact]): first-order bound on the
    error of log_softmax caused by rounding d = x - max(x) once in the compute dtype."""
    x = np.asarray(x)
    u = U[ref.compute_dtype(x.dtype)]
    a = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(a, axis=axis, keepdims=True) if a.size else a
        d = a - m
    inexact = ref.shift_inexact_mask(x, axis=axis)
    ad = np.where(inexact, np.abs(d), 0.0)
    pk = np.where(np.isfinite(p_ref), p_ref, 0.0)
    s = np.sum(pk * ad, axis=axis, keepdims=True)
    return u * (ad + s)


@functools.lru_cache(maxsize=None)
def _case(family, dtype_name, C):
    x, y = fam.make_family(family, np.dtype(dtype_name), C)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y, ref.softmax_bundle(x, y)


def _family_params():
    params = [pytest.param(f, dt.name, C, id=cid) for cid, f, dt, C in fam.iter_cases()]
    params += [pytest.param(f, dt.name, C, id=cid, marks=pytest.mark.slow)
               for cid, f, dt, C in fam.iter_cases(cs=fam.SLOW_CS)]
    return params


FAMILY_PARAMS = _family_params()


# ---------------------------------------------------------------------------------------------
# softmax cross-entropy on the adversarial families
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family,dtype,C", FAMILY_PARAMS)
def test_ce_loss_families(family, dtype, C):
    x, y, b = _case(family, dtype, C)
    dt = np.dtype(dtype)
    N = x.shape[0]
    loss = sl.softmax_cross_entropy(x, y, reduction="none")
    assert isinstance(loss, np.ndarray) and loss.dtype == dt and loss.shape == (N,)
    want = b["loss"]
    # loss = -lp_y, so the shift-rounding term is b_y
    rt = RSAFE * lp_rounding(x, b["softmax"])[np.arange(N), y]
    bound = TOL[dt] * np.maximum(np.abs(want), FLOOR) + rt
    assert_close(loss, want, bound, what=f"CE loss [{family}, {dtype}, C={C}]", inputs=x,
                 labels=y)


@pytest.mark.parametrize("family,dtype,C", FAMILY_PARAMS)
def test_ce_grad_families(family, dtype, C):
    x, y, b = _case(family, dtype, C)
    dt = np.dtype(dtype)
    val, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none")
    assert isinstance(g, np.ndarray) and g.dtype == dt and g.shape == x.shape
    gref = b["grad"]
    p = b["softmax"]
    # g = p - onehot: |dg_c| = |dp_c| <= p_c b_c
    with np.errstate(invalid="ignore"):
        rt = RSAFE * np.max(np.where(np.isfinite(p), p, 0) * lp_rounding(x, p), axis=-1,
                            keepdims=True) if x.shape[1] else 0.0
        scale = np.max(np.where(np.isfinite(gref), np.abs(gref), 0), axis=-1, keepdims=True)
    bound = TOL[dt] * np.maximum(scale, FLOOR) + rt
    assert_close(g, gref, bound, what=f"CE grad [{family}, {dtype}, C={C}]", inputs=x, labels=y)
    # the value returned with the gradient is the loss itself
    assert np.array_equal(val, sl.softmax_cross_entropy(x, y, reduction="none"))


# ---------------------------------------------------------------------------------------------
# logsumexp / softmax / log_softmax on the same families
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family,dtype,C", FAMILY_PARAMS)
def test_logsumexp_families(family, dtype, C):
    x, _, b = _case(family, dtype, C)
    dt = np.dtype(dtype)
    got = sl.logsumexp(x, axis=-1)
    assert got.dtype == dt and got.shape == (x.shape[0],)
    want = b["lse"]
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(x.astype(np.float64), axis=-1)
        logS = want - m
        # lse = m + log S: m and log S >= 0 may have opposite signs, so the relative tolerance
        # applies to |m| + log S (the magnitudes an implementation adds), plus the shift rounding
        # of log S: |d log S| <= u sum_k p_k |d_k| [k inexact].
        br = lp_rounding(x, b["softmax"])
        amax = np.argmax(x, axis=-1)
        rt = RSAFE * br[np.arange(x.shape[0]), amax]
        bound = TOL[dt] * np.maximum(np.abs(m) + np.abs(logS), FLOOR) + rt
    assert_close(got, want, bound, what=f"logsumexp [{family}, {dtype}, C={C}]", inputs=x)


@pytest.mark.parametrize("family,dtype,C", FAMILY_PARAMS)
def test_log_softmax_families(family, dtype, C):
    x, _, b = _case(family, dtype, C)
    dt = np.dtype(dtype)
    got = sl.log_softmax(x, axis=-1)
    assert got.dtype == dt and got.shape == x.shape
    want = b["log_softmax"]
    # lp_c = (x_c - m) - log S: two terms of the same sign, each computable to ~u relative, but
    # log S = log(sum) is only accurate to ~u ABSOLUTE when S ~ 1 (log_softmax need not use
    # log1p), hence tol * max(1, |lp|); plus the shift rounding b_c.
    with np.errstate(invalid="ignore"):
        bound = TOL[dt] * np.maximum(1.0, np.abs(want)) + RSAFE * lp_rounding(x, b["softmax"])
    assert_close(got, want, bound, what=f"log_softmax [{family}, {dtype}, C={C}]", inputs=x)


@pytest.mark.parametrize("family,dtype,C", FAMILY_PARAMS)
def test_softmax_families(family, dtype, C):
    x, _, b = _case(family, dtype, C)
    dt = np.dtype(dtype)
    got = sl.softmax(x, axis=-1)
    assert got.dtype == dt and got.shape == x.shape
    want = b["softmax"]
    lp = b["log_softmax"]
    # p = exp(lp): an absolute error e in lp is a relative error e in p, so the relative bound
    # on p is the log_softmax bound; results below the smallest normal may be flushed.
    with np.errstate(invalid="ignore"):
        rel = TOL[dt] * np.maximum(1.0, np.abs(lp)) + RSAFE * lp_rounding(x, want)
        bound = np.where(np.isfinite(want), want, 0) * np.where(np.isfinite(rel), rel, 0) \
            + np.finfo(dt).tiny
    assert_close(got, want, bound, what=f"softmax [{family}, {dtype}, C={C}]", inputs=x)


def test_family_generators_are_deterministic():
    for fname in fam.FAMILIES:
        a = fam.make_family(fname, np.float32, 10)
        b = fam.make_family(fname, np.float32, 10)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        assert a[0].dtype == np.float32 and a[1].dtype == np.int64
    x, y = fam.make_family("half_neginf", np.float64, 10)
    assert np.all(np.isfinite(x[np.arange(x.shape[0]), y]))
    assert np.all(np.sum(np.isneginf(x), axis=1) == 5)
    x, y = fam.make_family("confident", np.float64, 10)
    others = np.where(np.eye(10, dtype=bool)[y], -np.inf, x).max(axis=1)
    margin = x[np.arange(x.shape[0]), y] - others
    assert np.all((margin >= 20 - 1e-9) & (margin <= 60 + 1e-9))


# ---------------------------------------------------------------------------------------------
# index-label CE with weight / ignore_index / label_smoothing, all reductions
# ---------------------------------------------------------------------------------------------
def _weighted_case(dt, C=7, N=12, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 4.0).astype(dt)
    y = rng.integers(0, C, size=N).astype(np.int64)
    w = rng.uniform(0.2, 3.0, size=C).astype(dt)
    return x, y, w


def _ce_bounds(x, y, w, eps, v, dt):
    """Per-row loss rounding term and per-row gradient bound pieces for weighted/smoothed CE."""
    N, C = x.shape
    p = ref.softmax(x)
    br = lp_rounding(x, p)
    wf = w.astype(np.float64)
    wy = wf[y]
    # loss_n = (1-eps) w_y (-lp_y) + (eps/C) sum_c w_c (-lp_c): all terms >= 0
    rt_loss = RSAFE * v * ((1 - eps) * wy * br[np.arange(N), y]
                           + eps / C * np.sum(wf * br, axis=-1))
    # grad_j = A p_j - B_j: relative tolerance on |A p_j| + |B_j|; rounding |A| p_j b_j
    A = (1 - eps) * wy + eps / C * wf.sum()
    B = eps / C * np.broadcast_to(wf, (N, C)).copy()
    B[np.arange(N), y] += (1 - eps) * wy
    gscale = v * np.max(A[:, None] * p + B, axis=-1)
    grt = RSAFE * v * np.max(A[:, None] * p * br, axis=-1)
    return rt_loss, gscale, grt


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("eps", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("ignore_index", [None, -100, 3])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_ce_weighted_smoothed_ignored(dt, eps, ignore_index, reduction):
    x, y, w = _weighted_case(dt)
    y = y.copy()
    if ignore_index is not None:
        y[[1, 4, 7]] = ignore_index
    kw = dict(weight=w, ignore_index=ignore_index, label_smoothing=eps)
    want, gwant = ref.softmax_cross_entropy(x, y, reduction=reduction, **kw)
    got, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction=reduction, **kw)
    got2 = sl.softmax_cross_entropy(x, y, reduction=reduction, **kw)
    v = (y != ignore_index).astype(np.float64) if ignore_index is not None else np.ones(len(y))
    ys = np.where(v > 0, y, 0)
    rt_loss, gscale, grt = _ce_bounds(x, ys, w, eps, v, dt)
    tol = TOL[dt]
    denom = np.sum(v * w.astype(np.float64)[ys])
    s = 1.0 if reduction != "mean" else 1.0 / denom
    if reduction == "none":
        assert isinstance(got, np.ndarray) and got.dtype == dt and got.shape == y.shape
        bound = tol * np.maximum(np.abs(want), FLOOR) + rt_loss
    else:
        assert np.ndim(got) == 0 and np.asarray(got).dtype == dt, \
            f"reduced loss must be a NumPy scalar of {dt}, got {type(got)} {np.asarray(got).dtype}"
        bound = tol * abs(want) + np.sum(rt_loss) * s
    assert_close(np.asarray(got), want, bound, what=f"weighted CE loss ({reduction})")
    assert np.asarray(got).tobytes() == np.asarray(got2).tobytes()
    assert g.dtype == dt and g.shape == x.shape
    gbound = (tol * np.maximum(gscale, FLOOR) + grt)[:, None] * s
    assert_close(g, gwant, gbound, what=f"weighted CE grad ({reduction})")


@pytest.mark.parametrize("dt", DTYPES)
def test_ce_grad_output_none(dt):
    """Cotangent of shape (N,) multiplies each row's gradient."""
    x, y, w = _weighted_case(dt, seed=3)
    go = np.random.default_rng(4).uniform(-2, 2, size=x.shape[0]).astype(dt)
    _, gwant = ref.softmax_cross_entropy(x, y, weight=w, label_smoothing=0.2)
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(
        x, y, weight=w, label_smoothing=0.2, reduction="none", grad_output=go)
    _, gscale, grt = _ce_bounds(x, y, w, 0.2, np.ones(len(y)), dt)
    bound = ((TOL[dt] * gscale + grt) * np.abs(go.astype(np.float64)))[:, None]
    assert_close(g, gwant * go.astype(np.float64)[:, None], bound, what="CE grad with grad_output")


@pytest.mark.parametrize("dt", DTYPES)
def test_ce_sum_with_scalar_grad_output(dt):
    x, y, w = _weighted_case(dt, seed=5)
    _, gwant = ref.softmax_cross_entropy(x, y, weight=w, reduction="sum")
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, weight=w, reduction="sum",
                                                          grad_output=2.5)
    _, gscale, grt = _ce_bounds(x, y, w, 0.0, np.ones(len(y)), dt)
    assert_close(g, 2.5 * gwant, (2.5 * (TOL[dt] * gscale + grt))[:, None],
                 what="CE sum grad with grad_output=2.5")


@pytest.mark.parametrize("dt", DTYPES)
def test_ce_axis_and_batch_shape(dt):
    """3-D logits with the class axis in the middle."""
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((3, 5, 4)) * 3).astype(dt)  # class axis = 1 (C = 5)
    y = rng.integers(0, 5, size=(3, 4)).astype(np.int64)
    want, gwant = ref.softmax_cross_entropy(x, y, axis=1)
    got = sl.softmax_cross_entropy(x, y, axis=1, reduction="none")
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, axis=1, reduction="none")
    assert got.shape == (3, 4) and got.dtype == dt and g.shape == x.shape and g.dtype == dt
    # same bounds as the family tests, computed on the rows (class axis moved last)
    xm = np.moveaxis(x, 1, -1).reshape(-1, 5)
    ys = y.reshape(-1)
    pm = ref.softmax(xm)
    br = lp_rounding(xm, pm)
    rt = RSAFE * br[np.arange(len(ys)), ys].reshape(3, 4)
    assert_close(got, want, TOL[dt] * np.abs(want) + rt, what="CE axis=1 loss")
    gm = np.moveaxis(gwant, 1, -1).reshape(-1, 5)
    gb = TOL[dt] * np.max(np.abs(gm), axis=-1) + RSAFE * np.max(pm * br, axis=-1)
    gb = np.moveaxis(np.broadcast_to(gb.reshape(3, 4, 1), (3, 4, 5)), -1, 1)
    assert_close(g, gwant, gb, what="CE axis=1 grad")
    # logsumexp / softmax along axis 0 and keepdims
    lse = sl.logsumexp(x, axis=0, keepdims=True)
    assert lse.shape == (1, 5, 4)
    wl = ref.logsumexp(x, axis=0, keepdims=True)
    assert_close(lse, wl, TOL[dt] * (np.abs(wl) + 10), what="logsumexp axis=0 keepdims")
    sm = sl.softmax(x, axis=0)
    ws = ref.softmax(x, axis=0)
    assert_close(sm, ws, ws * (TOL[dt] * np.maximum(1, -np.log(ws)) + 64 * U[dt] * 20),
                 what="softmax axis=0")


@pytest.mark.parametrize("dt", DTYPES)
def test_ce_mean_all_ignored_is_nan(dt):
    x, y, _ = _weighted_case(dt, N=4)
    y = np.full(4, -100, dtype=np.int64)
    got = sl.softmax_cross_entropy(x, y, ignore_index=-100, reduction="mean")
    assert np.isnan(got) and np.asarray(got).dtype == dt
    assert sl.softmax_cross_entropy(x, y, ignore_index=-100, reduction="sum") == 0
    assert np.all(sl.softmax_cross_entropy(x, y, ignore_index=-100, reduction="none") == 0)


# ---------------------------------------------------------------------------------------------
# probability-label CE
# ---------------------------------------------------------------------------------------------
def _prob_case(dt, N=10, C=6, seed=21):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 4).astype(dt)
    z = rng.dirichlet(np.ones(C), size=N)
    z[0] = 0
    z[0, 2] = 1  # one-hot row
    z[1] = 1.0 / C  # uniform row
    return x, z.astype(dt), rng.uniform(0.3, 2.5, size=C).astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("eps", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_prob_ce(dt, weighted, eps, reduction):
    x, z, w = _prob_case(dt)
    w = w if weighted else None
    N, C = x.shape
    kw = dict(weight=w, label_smoothing=eps)
    want, gxw, gzw = ref.prob_cross_entropy(x, z, reduction=reduction, **kw)
    got, (gx, gz) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(
        x, z, reduction=reduction, **kw)
    tol = TOL[dt]
    wf = np.ones(C) if w is None else w.astype(np.float64)
    q = (1 - eps) * z.astype(np.float64) + eps / C
    lp = ref.log_softmax(x)
    p = np.exp(lp)
    br = lp_rounding(x, p)
    wq = wf * q
    # loss = -sum_c w_c q_c lp_c: a combination of log_softmax values (bound as for log_softmax)
    lbound = tol * np.sum(wq * np.maximum(1, np.abs(lp)), axis=-1) + RSAFE * np.sum(wq * br, -1)
    s = 1.0 / N if reduction == "mean" else 1.0
    if reduction == "none":
        assert got.dtype == dt and got.shape == (N,)
    else:
        assert np.ndim(got) == 0 and np.asarray(got).dtype == dt
        lbound = np.sum(lbound) * s
    assert_close(np.asarray(got), want, lbound, what=f"prob CE loss ({reduction})")
    # grad_logits_j = p_j sum(wq) - w_j q_j: relative tolerance on the size of the two terms
    swq = np.sum(wq, axis=-1, keepdims=True)
    gxb = (tol * np.max(p * swq + wq, axis=-1, keepdims=True)
           + RSAFE * np.max(swq * p * br, axis=-1, keepdims=True)) * s
    assert gx.dtype == dt and gx.shape == x.shape
    assert_close(gx, gxw, gxb, what=f"prob CE grad logits ({reduction})")
    # grad_labels_c = -(1-eps) w_c lp_c
    gzb = (1 - eps) * wf * (tol * np.maximum(1, np.abs(lp)) + RSAFE * br) * s
    assert gz.dtype == dt and gz.shape == z.shape
    assert_close(gz, gzw, gzb, what=f"prob CE grad labels ({reduction})")


# ---------------------------------------------------------------------------------------------
# nll_loss
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("ignore_index", [None, 2])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_nll_loss(dt, weighted, ignore_index, reduction):
    rng = np.random.default_rng(31)
    N, C = 9, 5
    lp = (rng.standard_normal((N, C)) * 5 - 3).astype(dt)  # any real values are allowed
    y = rng.integers(0, C, size=N).astype(np.int64)
    y[0] = 2
    w = rng.uniform(0.2, 3, size=C).astype(dt) if weighted else None
    kw = dict(weight=w, ignore_index=ignore_index)
    want, gwant = ref.nll_loss(lp, y, reduction=reduction, **kw)
    got, g = sl.value_and_grad(sl.nll_loss)(lp, y, reduction=reduction, **kw)
    tol = TOL[dt]
    if reduction == "none":
        assert got.dtype == dt and got.shape == (N,)
        bound = tol * np.abs(want)
    else:
        assert np.ndim(got) == 0 and np.asarray(got).dtype == dt
        # sum of products of both signs: relative to the sum of |terms|
        wf = np.ones(C) if w is None else w.astype(np.float64)
        v = np.ones(N) if ignore_index is None else (y != ignore_index)
        terms = np.abs(v * wf[np.where(v, y, 0)] * lp.astype(np.float64)[np.arange(N), np.where(v, y, 0)])
        denom = np.sum(v * wf[np.where(v, y, 0)])
        bound = tol * np.sum(terms) / (denom if reduction == "mean" else 1.0)
    assert_close(np.asarray(got), want, bound, what=f"nll_loss ({reduction})")
    assert g.dtype == dt and g.shape == lp.shape
    assert_close(g, gwant, tol * np.abs(gwant), what=f"nll_loss grad ({reduction})")


# ---------------------------------------------------------------------------------------------
# sigmoid cross-entropy (BCE with logits)
# ---------------------------------------------------------------------------------------------
def _bcel_case(dt, seed=41):
    rng = np.random.default_rng(seed)
    xs = np.concatenate([
        [-1e3, -100, -40, -20, -5, -1, -1e-8, 0, 1e-8, 1, 5, 20, 40, 100, 1e3],
        rng.standard_normal(15) * 3,
        rng.standard_normal(15) * 30,
    ])
    n = len(xs)  # 45 -> (5, 9)
    x = xs.reshape(5, 9).astype(dt)
    z = np.concatenate([np.zeros(15), np.ones(15), rng.uniform(0, 1, 15)])
    z = rng.permutation(z).reshape(5, 9).astype(dt)
    w = rng.uniform(0.5, 2.0, size=(5, 9)).astype(dt)
    pw = rng.uniform(0.5, 3.0, size=9).astype(dt)
    assert n == 45
    return x, z, w, pw


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("use_pw", [False, True], ids=["no_pos_weight", "pos_weight"])
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_sigmoid_cross_entropy(dt, weighted, use_pw, reduction):
    x, z, w, pw = _bcel_case(dt)
    w = w if weighted else None
    pw = pw if use_pw else None
    kw = dict(weight=w, pos_weight=pw)
    want, gxw, gzw = ref.sigmoid_cross_entropy(x, z, reduction=reduction, **kw)
    got, (gx, gz) = sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=(0, 1))(
        x, z, reduction=reduction, **kw)
    tol = TOL[dt]
    xf, zf = x.astype(np.float64), z.astype(np.float64)
    wf = np.ones_like(xf) if w is None else np.broadcast_to(w.astype(np.float64), xf.shape)
    pwf = np.ones_like(xf) if pw is None else np.broadcast_to(pw.astype(np.float64), xf.shape)
    L = 1 + (pwf - 1) * zf
    spn = np.logaddexp(0, -xf)
    sig = np.where(xf >= 0, 1 / (1 + np.exp(-np.abs(xf))), np.exp(-np.abs(xf)) / (1 + np.exp(-np.abs(xf))))
    # the contract formula (1-z) x + L softplus(-x) cancels for x < 0, z in (0, 1): tolerance
    # relative to the sum of the magnitudes of its two terms
    lb = tol * wf * np.maximum(np.abs((1 - zf) * xf) + np.abs(L) * spn, FLOOR)
    gxb = tol * wf * np.maximum(np.abs(L) * sig + np.abs(pwf * zf), FLOOR)
    gzb = tol * wf * np.maximum(np.abs(xf) + np.abs(pwf - 1) * spn, FLOOR)
    n = x.size
    if reduction == "none":
        assert got.dtype == dt and got.shape == x.shape
    else:
        assert np.ndim(got) == 0 and np.asarray(got).dtype == dt
        s = 1.0 / n if reduction == "mean" else 1.0
        lb = np.sum(lb) * s
        gxb, gzb = gxb * s, gzb * s
    assert_close(np.asarray(got), want, lb, what=f"sigmoid CE loss ({reduction})", inputs=None)
    assert gx.dtype == dt and gz.dtype == dt
    assert_close(gx, gxw, gxb, what=f"sigmoid CE grad logits ({reduction})")
    assert_close(gz, gzw, gzb, what=f"sigmoid CE grad labels ({reduction})")


# ---------------------------------------------------------------------------------------------
# sigmoid / log_sigmoid
# ---------------------------------------------------------------------------------------------
def _sig_inputs(dt):
    rng = np.random.default_rng(51)
    xs = np.concatenate([[-800, -100, -40, -20, -1, -1e-10, 0, 1e-10, 1, 20, 40, 100, 800,
                          -np.inf, np.inf, np.nan], rng.standard_normal(16) * 10])
    return xs.astype(dt)


@pytest.mark.parametrize("dt", DTYPES)
def test_sigmoid(dt):
    x = _sig_inputs(dt)
    want, gwant = ref.sigmoid(x)
    val, g = sl.value_and_grad(sl.sigmoid)(x)
    assert val.dtype == dt and g.dtype == dt and val.shape == x.shape
    assert np.array_equal(val, sl.sigmoid(x), equal_nan=True)
    tol = TOL[dt]
    assert_close(val, want, tol * np.maximum(np.abs(want), FLOOR), what="sigmoid")
    # sigma'(x) = s (1 - s).  Computed from the saved output s = sigmoid(x) (as autodiff
    # libraries do), 1 - s has an absolute error <= u for s > 1/2, so an absolute 2u is allowed
    # there; for x < 0 full relative accuracy is required.
    xf = x.astype(np.float64)
    slack = np.where(xf > 0, 2 * U[dt], 0.0)
    assert_close(g, gwant, tol * np.maximum(np.abs(gwant), FLOOR) + slack, what="sigmoid grad")


@pytest.mark.parametrize("dt", DTYPES)
def test_log_sigmoid(dt):
    x = _sig_inputs(dt)
    want, gwant = ref.log_sigmoid(x)
    val, g = sl.value_and_grad(sl.log_sigmoid)(x)
    assert val.dtype == dt and g.dtype == dt
    assert np.array_equal(val, sl.log_sigmoid(x), equal_nan=True)
    tol = TOL[dt]
    assert_close(val, want, tol * np.maximum(np.abs(want), FLOOR), what="log_sigmoid")
    # d/dx log_sigmoid = sigmoid(-x): full relative accuracy (e^-40 at x = 40)
    assert_close(g, gwant, tol * np.maximum(np.abs(gwant), FLOOR), what="log_sigmoid grad")


@pytest.mark.parametrize("dt", DTYPES)
def test_log_sigmoid_tails(dt):
    x = np.array([-40.0, 40.0], dtype=dt)
    want, _ = ref.log_sigmoid(x)
    # independent closed forms: log_sigmoid(40) = -log1p(e^-40), log_sigmoid(-40) = -40 - log1p(e^-40)
    assert want[1] == pytest.approx(-np.log1p(np.exp(-40.0)), rel=1e-15)
    assert want[0] == -40.0  # -40 - 4.2e-18 rounds to -40
    got = sl.log_sigmoid(x).astype(np.float64)
    assert got[0] == pytest.approx(want[0], rel=TOL[dt], abs=0)
    assert got[1] == pytest.approx(want[1], rel=TOL[dt], abs=0), \
        f"log_sigmoid(40): expected {want[1]!r}, got {got[1]!r}"


# ---------------------------------------------------------------------------------------------
# binary_cross_entropy (4 policies)
# ---------------------------------------------------------------------------------------------
POLICIES = ["clamp", "clip", "add", "exact"]
# absolute error in -log(1 - p_c) when the clip bound 1 - eps (eps = 1e-7) is held as a float64
CLIP_HI_SLACK = 2.0 ** -53 / 1e-7


def _bce_case(dt, policy):
    rng = np.random.default_rng(61)
    edge = [0.0, 1.0, 1e-30, 1e-12, 3e-7, 0.5, 0.9999, 1 - 3e-7, 1 - 1e-12]
    if dt == F32:
        edge = [0.0, 1.0, 1e-30, 1e-12, 3e-7, 0.5, 0.9999, 1 - 3e-7, 0.999]
    p = np.concatenate([edge, rng.uniform(0.01, 0.99, 27)])
    p = np.tile(p, 3)  # every p with z = 0, z = 1 and a fractional z
    z = np.concatenate([np.zeros(36), np.ones(36), rng.uniform(0, 1, 36)])
    w = rng.uniform(0.5, 2.0, size=p.shape)
    p, z, w = (a.reshape(12, 9).astype(dt) for a in (p, z, w))
    return p, z, w


def _bce_loss_scale(p, z, policy, eps):
    """|z T1| + |(1-z) T2| with the policy's log terms (zero coefficient -> 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy == "clamp":
            t1, t2 = np.maximum(np.log(p), -100), np.maximum(np.log1p(-p), -100)
        elif policy == "clip":
            pc = np.clip(p, eps[0], eps[1])
            t1, t2 = np.log(pc), np.log1p(-pc)
        elif policy == "add":
            t1, t2 = np.log(p + eps[0]), np.log1p(-p + eps[0])
        else:
            t1, t2 = np.log(p), np.log1p(-p)
        a = np.where(z == 0, 0, np.abs(z * t1))
        b = np.where(z == 1, 0, np.abs((1 - z) * t2))
    return a + b


@pytest.mark.parametrize("dt", DTYPES)
@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_binary_cross_entropy(dt, policy, reduction):
    p, z, w = _bce_case(dt, policy)
    want, gwant = ref.binary_cross_entropy(p, z, weight=w, policy=policy, reduction=reduction)
    got, g = sl.value_and_grad(sl.binary_cross_entropy)(p, z, weight=w, policy=policy,
                                                         reduction=reduction)
    tol, u = TOL[dt], U[dt]
    pf, zf, wf = (a.astype(np.float64) for a in (p, z, w))
    e = 1e-7
    hi = 1 - 1e-7  # only used for magnitudes / the clip zone (no test point is near it)
    scale = _bce_loss_scale(pf, zf, policy, (e, hi))
    # + 2u w (|z| + |1-z|): 1 - p, p + eps, 1 - p + eps are rounded in the dtype (an absolute
    # error <= u in each log); log(1 - p) vs log1p(-p) are both acceptable.
    lb = tol * wf * np.maximum(scale, FLOOR) + 2 * u * wf * (np.abs(zf) + np.abs(1 - zf))
    if policy == "clip":
        # a p clipped high becomes the float nearest 1 - eps: 1 - p_c is then eps only to
        # within ulp(1)/2 = 2^-53 (any floating-point clip), i.e. -log(1 - p_c) to 2^-53/eps
        lb = lb + np.where(pf > hi, 2 * wf * np.abs(1 - zf) * CLIP_HI_SLACK, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy == "clamp":
            den = np.maximum(pf * (1 - pf), 1e-12)
            gb = tol * wf * (pf + np.abs(zf)) / den
            # where the floor is active, accept the contract's 1e-12 or PyTorch's float32
            # constant 1e-12f (4e-9 relative apart); the exact constant is pinned down
            # separately in test_bce_clamp_grad_floor_constant.
            gb = np.where(pf * (1 - pf) <= 1.0001e-12, np.maximum(gb, 1e-7 * np.abs(
                wf * (pf - zf) / den)), gb)
        elif policy == "add":
            gb = tol * wf * (np.abs(zf) / (pf + e) + np.abs(1 - zf) / (1 - pf + e))
        else:  # exact / clip interior: both w (p - z)/(p (1-p)) and -w (z/p - (1-z)/(1-p)) forms
            gb = tol * wf * (np.abs(zf) / pf + np.abs(1 - zf) / (1 - pf)
                             + (pf + np.abs(zf)) / (pf * (1 - pf)))
            if policy == "clip":
                gb = np.where((pf < e) | (pf > hi), 0.0, gb)
    n = p.size
    if reduction == "none":
        assert got.dtype == dt and got.shape == p.shape
    else:
        assert np.ndim(got) == 0 and np.asarray(got).dtype == dt
        s = 1.0 / n if reduction == "mean" else 1.0
        lb = np.sum(lb) * s
        gb = gb * s
    assert_close(np.asarray(got), want, lb, what=f"BCE[{policy}] loss ({reduction})")
    assert g.dtype == dt and g.shape == p.shape
    # gradients the contract leaves unspecified (exact at p in {0,1}) are NaN in the reference
    known = ~np.isnan(gwant)
    gb = np.where(np.isfinite(gb), gb, 0)
    assert_close(g[known], gwant[known], gb[known], what=f"BCE[{policy}] grad ({reduction})")


@pytest.mark.parametrize("dt", DTYPES)
def test_bce_policy_ends(dt):
    """Exact values at the ends, straight from the contract's definitions."""
    p = np.array([0.0, 0.0, 1.0, 1.0], dtype=dt)
    z = np.array([0.0, 1.0, 0.0, 1.0], dtype=dt)
    exact = sl.binary_cross_entropy(p, z, policy="exact", reduction="none").astype(np.float64)
    assert list(exact) == [0.0, np.inf, np.inf, 0.0]
    clamp = sl.binary_cross_entropy(p, z, policy="clamp", reduction="none").astype(np.float64)
    assert list(clamp) == [0.0, 100.0, 100.0, 0.0]
    e = 1e-7
    clip = sl.binary_cross_entropy(p, z, policy="clip", reduction="none").astype(np.float64)
    # p = 0, z = 0 -> -log(1 - eps); p = 1, z = 0 -> -log(1 - (1 - eps)) = -log(eps) exactly
    assert clip[0] == pytest.approx(-np.log1p(-e), rel=1e-5)
    assert clip[2] == pytest.approx(-np.log(e), rel=TOL[dt], abs=2 * CLIP_HI_SLACK)
    assert clip[1] == pytest.approx(-np.log(e), rel=TOL[dt])
    add = sl.binary_cross_entropy(p, z, policy="add", reduction="none").astype(np.float64)
    assert add[1] == pytest.approx(-np.log(e), rel=TOL[dt])
    assert add[2] == pytest.approx(-np.log(e), rel=TOL[dt])
    assert abs(add[0] + np.log1p(e)) <= 2 * U[dt]
    g = sl.grad(sl.binary_cross_entropy)(p, z, policy="clamp", reduction="none")
    # w (p - z) / max(p (1-p), 1e-12): 0, -1e12, +1e12, 0.  The rtol covers a 1e-12 constant
    # held in float32 (4e-8 relative), which is what PyTorch does.
    assert g[0] == 0 and g[3] == 0
    assert float(g[1]) == pytest.approx(-1e12, rel=1e-7)
    assert float(g[2]) == pytest.approx(1e12, rel=1e-7)
    gc = sl.grad(sl.binary_cross_entropy)(p, z, policy="clip", reduction="none")
    assert np.all(gc == 0)


def test_bce_clamp_grad_floor_constant():
    """docs/api.md: clamp gradient ``w (p - z) / max(p (1 - p), 1e-12f)`` where 1e-12f is the
    float32 constant 9.9999999600419720e-13 (PyTorch uses it for float64 inputs too; a
    float64 1e-12 would differ by 4e-9 relative). p = 1e-30, z = 0: p (1-p) < floor."""
    floor = float(np.float32(1e-12))
    assert floor == 9.9999999600419720e-13
    p = np.array([1e-30, 1.0, 0.0], dtype=np.float64)
    z = np.array([0.0, 0.0, 1.0], dtype=np.float64)
    g = sl.grad(sl.binary_cross_entropy)(p, z, policy="clamp", reduction="none")
    _, want = ref.binary_cross_entropy(p, z, policy="clamp")
    np.testing.assert_allclose(want, [1e-30 / floor, 1 / floor, -1 / floor], rtol=1e-15)
    assert_close(g, want, 1e-14 * np.abs(want), what="clamp gradient floor (float64)")


# ---------------------------------------------------------------------------------------------
# special rows (NaN / +-inf / -inf target / C = 0)
# ---------------------------------------------------------------------------------------------
def _special_rows(dt):
    ninf, inf, nan = -np.inf, np.inf, np.nan
    x = np.array([
        [nan, 0.0, 1.0, 2.0],
        [ninf, ninf, ninf, ninf],
        [inf, 0.0, 1.0, 2.0],
        [ninf, 0.0, 1.0, 2.0],  # -inf at the target (label 0)
        [0.0, ninf, 1.0, ninf],  # -inf elsewhere
        [inf, inf, 0.0, 0.0],
        [ninf, inf, nan, 0.0],
        [0.5, -0.25, 3.0, 1.0],
    ], dtype=dt)
    y = np.zeros(x.shape[0], dtype=np.int64)
    return x, y


@pytest.mark.parametrize("dt", DTYPES)
def test_special_rows(dt):
    x, y = _special_rows(dt)
    b = ref.softmax_bundle(x, y)
    tol = TOL[dt]
    with np.errstate(invalid="ignore"):
        fin = np.where(np.isfinite(b["softmax"]), b["softmax"], 0)
    assert_close(sl.logsumexp(x), b["lse"], tol * 4, what="special logsumexp")
    assert_close(sl.softmax(x), b["softmax"], tol * fin + np.finfo(dt).tiny, what="special softmax")
    assert_close(sl.log_softmax(x), b["log_softmax"], tol * 4, what="special log_softmax")
    loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none")
    assert_close(loss, b["loss"], tol * 4, what="special CE loss")
    assert_close(g, b["grad"], tol, what="special CE grad")
    # "-inf at the target logit: CE loss +inf, gradient finite (p - onehot)"
    assert loss[3] == np.inf and np.all(np.isfinite(g[3]))
    # with smoothing, a -inf non-target logit makes the loss +inf (reference, IEEE)
    l2, g2 = ref.softmax_cross_entropy(x[4:5], y[4:5], label_smoothing=0.1)
    got2 = sl.softmax_cross_entropy(x[4:5], y[4:5], label_smoothing=0.1, reduction="none")
    assert_close(got2, l2, tol * 4, what="smoothed CE with -inf logit")


@pytest.mark.parametrize("dt", DTYPES)
def test_zero_classes(dt):
    x = np.zeros((3, 0), dtype=dt)
    got = sl.logsumexp(x)
    assert got.shape == (3,) and np.all(got == -np.inf) and got.dtype == dt
    assert np.array_equal(ref.logsumexp(x), got.astype(np.float64))
    assert sl.softmax(x).shape == (3, 0) and sl.log_softmax(x).shape == (3, 0)


# ---------------------------------------------------------------------------------------------
# dtype promotion: float16 computed in float32, integers promoted to float64
# ---------------------------------------------------------------------------------------------
def test_float16_inputs():
    rng = np.random.default_rng(71)
    x = (rng.standard_normal((8, 10)) * 3).astype(np.float16)
    y = rng.integers(0, 10, size=8).astype(np.int64)
    b = ref.softmax_bundle(x, y)  # exact float16 values
    # result rounded to float16 (relative 2^-11) after a float32 computation (<< 1e-5)
    rel = 2.0 ** -11 + 1e-5
    sub = 2.0 ** -24  # float16 subnormal spacing
    loss = sl.softmax_cross_entropy(x, y, reduction="none")
    assert loss.dtype == np.float16
    assert_close(loss, b["loss"], rel * np.abs(b["loss"]) + sub, what="float16 CE")
    sm = sl.softmax(x)
    assert sm.dtype == np.float16
    assert_close(sm, b["softmax"], rel * b["softmax"] + sub, what="float16 softmax")
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none")
    assert g.dtype == np.float16
    assert_close(g, b["grad"], rel * np.abs(b["grad"]) + sub, what="float16 CE grad")


def test_integer_inputs_promote_to_float64():
    x = np.array([[3, -2, 7, 0], [1, 1, 1, 1]], dtype=np.int64)
    y = np.array([2, 0], dtype=np.int64)
    b = ref.softmax_bundle(x.astype(np.float64), y)
    got = sl.softmax(x)
    assert got.dtype == np.float64
    assert_close(got, b["softmax"], 1e-14 * b["softmax"], what="int softmax")
    loss = sl.softmax_cross_entropy(x, y, reduction="none")
    assert loss.dtype == np.float64
    assert_close(loss, b["loss"], 1e-14 * np.abs(b["loss"]), what="int CE")


# ---------------------------------------------------------------------------------------------
# gradients against 4th-order central finite differences (float64, smooth inputs)
# ---------------------------------------------------------------------------------------------
def _fd_vjp(F, x, rel_h=1e-4):
    """d F / d x by the 4th-order central difference, one element at a time."""
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    for i in np.ndindex(x.shape):
        h = rel_h * max(1.0, abs(x[i]))
        vals = []
        for k in (-2, -1, 1, 2):
            xx = x.copy()
            xx[i] = x[i] + k * h
            vals.append(F(xx))
        g[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
    return g


def _check_fd(F, x, g, what, mag=1.0):
    fd = _fd_vjp(F, x)
    # FD error: rounding ~ 1.5 u |F| / h ~ 2e-12 |F|, truncation h^4 f^(5)/30 ~ 1e-17
    bound = 1e-7 * np.abs(fd) + 1e-8 * max(1.0, mag)
    assert_close(g, fd, bound, what=f"FD check: {what}")


def _scalarize(f_out, cot):
    return float(np.sum(np.asarray(f_out, dtype=np.float64) * cot))


FD_RNG_SEED = 81


@pytest.mark.parametrize("name", ["logsumexp", "softmax", "log_softmax", "sigmoid", "log_sigmoid"])
def test_fd_elementwise_and_softmax(name):
    rng = np.random.default_rng(FD_RNG_SEED)
    f = getattr(sl, name)
    x = rng.standard_normal((3, 4)) * 2
    out = f(x)
    cot = rng.uniform(-1, 1, size=np.shape(out))
    _, g = sl.value_and_grad(f)(x, grad_output=cot)
    F = lambda xx: _scalarize(f(xx), cot)
    _check_fd(F, x, g, name, mag=abs(F(x)))


@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_fd_ce_index(reduction):
    rng = np.random.default_rng(FD_RNG_SEED + 1)
    x = rng.standard_normal((4, 5)) * 2
    y = np.array([0, 3, 2, 4], dtype=np.int64)
    w = rng.uniform(0.5, 2, size=5)
    kw = dict(weight=w, ignore_index=2, label_smoothing=0.15, reduction=reduction)
    cot = rng.uniform(-1, 1, size=4) if reduction == "none" else 1.7
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, grad_output=cot, **kw)
    F = lambda xx: _scalarize(sl.softmax_cross_entropy(xx, y, **kw), cot)
    _check_fd(F, x, g, f"CE index ({reduction})", mag=abs(F(x)))
    # and against the reference
    _, gref = ref.softmax_cross_entropy(x, y, **kw)
    gref = gref * (np.asarray(cot)[:, None] if reduction == "none" else cot)
    assert_close(g, gref, 1e-14 * 4, what="CE index grad vs reference")


@pytest.mark.parametrize("reduction", ["none", "mean"])
def test_fd_ce_prob(reduction):
    rng = np.random.default_rng(FD_RNG_SEED + 2)
    x = rng.standard_normal((3, 4)) * 2
    z = rng.dirichlet(np.ones(4), size=3)
    w = rng.uniform(0.5, 2, size=4)
    kw = dict(weight=w, label_smoothing=0.1, reduction=reduction)
    cot = rng.uniform(-1, 1, size=3) if reduction == "none" else 0.7
    _, (gx, gz) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(
        x, z, grad_output=cot, **kw)
    Fx = lambda xx: _scalarize(sl.softmax_cross_entropy(xx, z, **kw), cot)
    Fz = lambda zz: _scalarize(sl.softmax_cross_entropy(x, zz, **kw), cot)
    _check_fd(Fx, x, gx, f"prob CE d/dlogits ({reduction})", mag=abs(Fx(x)))
    _check_fd(Fz, z, gz, f"prob CE d/dlabels ({reduction})", mag=abs(Fz(z)))


def test_fd_nll():
    rng = np.random.default_rng(FD_RNG_SEED + 3)
    lp = rng.standard_normal((4, 3)) - 2
    y = np.array([0, 2, 1, 1], dtype=np.int64)
    w = rng.uniform(0.5, 2, size=3)
    _, g = sl.value_and_grad(sl.nll_loss)(lp, y, weight=w, reduction="mean", grad_output=1.3)
    F = lambda v: 1.3 * float(sl.nll_loss(v, y, weight=w, reduction="mean"))
    _check_fd(F, lp, g, "nll_loss mean", mag=abs(F(lp)))


@pytest.mark.parametrize("reduction", ["none", "sum"])
def test_fd_sigmoid_ce(reduction):
    rng = np.random.default_rng(FD_RNG_SEED + 4)
    x = rng.standard_normal((3, 4)) * 3
    z = rng.uniform(0, 1, size=(3, 4))
    w = rng.uniform(0.5, 2, size=(3, 4))
    pw = rng.uniform(0.5, 3, size=4)
    kw = dict(weight=w, pos_weight=pw, reduction=reduction)
    cot = rng.uniform(-1, 1, size=(3, 4)) if reduction == "none" else 1.0
    _, (gx, gz) = sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=(0, 1))(
        x, z, grad_output=cot, **kw)
    Fx = lambda xx: _scalarize(sl.sigmoid_cross_entropy(xx, z, **kw), cot)
    Fz = lambda zz: _scalarize(sl.sigmoid_cross_entropy(x, zz, **kw), cot)
    _check_fd(Fx, x, gx, "sigmoid CE d/dlogits", mag=abs(Fx(x)))
    _check_fd(Fz, z, gz, "sigmoid CE d/dlabels", mag=abs(Fz(z)))


@pytest.mark.parametrize("policy", POLICIES)
def test_fd_bce(policy):
    rng = np.random.default_rng(FD_RNG_SEED + 5)
    p = rng.uniform(0.05, 0.95, size=(3, 4))
    z = rng.uniform(0, 1, size=(3, 4))
    w = rng.uniform(0.5, 2, size=(3, 4))
    cot = rng.uniform(-1, 1, size=(3, 4))
    kw = dict(weight=w, policy=policy, reduction="none")
    _, g = sl.value_and_grad(sl.binary_cross_entropy)(p, z, grad_output=cot, **kw)
    F = lambda pp: _scalarize(sl.binary_cross_entropy(pp, z, **kw), cot)
    _check_fd(F, p, g, f"BCE[{policy}]", mag=abs(F(p)))


# ---------------------------------------------------------------------------------------------
# the oracle itself (independent of stableloss)
# ---------------------------------------------------------------------------------------------
def test_reference_sanity():
    import scipy.special as sps

    # tiny loss keeps full relative accuracy: log(1 + 2 e^-60)
    l, g = ref.softmax_cross_entropy(np.array([[60.0, 0.0, 0.0]]), np.array([0]))
    assert l[0] == pytest.approx(np.log1p(2 * np.exp(-60.0)), rel=2e-16)
    assert g[0, 0] == pytest.approx(-2 * np.exp(-60.0), rel=4e-16)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6)) * 3
    np.testing.assert_allclose(ref.softmax(x), sps.softmax(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(ref.logsumexp(x), sps.logsumexp(x, axis=-1), rtol=1e-14)
    np.testing.assert_allclose(ref.log_softmax(x, axis=0), sps.log_softmax(x, axis=0), rtol=1e-13)
    # smoothing/weights against a direct float64 evaluation of the contract formula
    y = np.array([1, 0, 5, 2])
    w = rng.uniform(0.5, 2, size=6)
    lp = sps.log_softmax(x, axis=-1)
    eps, C = 0.3, 6
    direct = (1 - eps) * w[y] * -lp[np.arange(4), y] + eps / C * np.sum(w * -lp, axis=-1)
    np.testing.assert_allclose(ref.softmax_cross_entropy(x, y, weight=w, label_smoothing=eps)[0],
                               direct, rtol=1e-13)
    # correct rounding, including subnormals
    assert ref._to_f64(ref.mp.mpf(2) ** -1075 * 3) == 2 * 5e-324
    assert ref._to_f64(ref.mp.mpf(2) ** -1075) == 0.0
    assert ref._to_f64(ref.mp.mpf(1) + ref.mp.mpf(2) ** -53) == 1.0
    assert ref._to_f64(ref.mp.mpf(1) + ref.mp.mpf(2) ** -53 + ref.mp.mpf(2) ** -100) \
        == 1.0 + 2.0 ** -52
    # float32 inputs are taken exactly
    x32 = np.array([[0.1, 0.2]], dtype=np.float32)
    assert ref.logsumexp(x32)[0] != ref.logsumexp(x32.astype(np.float64).round(1))[0]
    # sigmoid CE: (1-z) softplus(x) + z pw softplus(-x) identity
    lx, _, _ = ref.sigmoid_cross_entropy(np.array([-3.0, 2.0]), np.array([0.25, 0.5]),
                                         pos_weight=np.array(2.0))
    np.testing.assert_allclose(lx, [0.75 * np.logaddexp(0, -3) + 0.5 * np.logaddexp(0, 3),
                                    0.5 * np.logaddexp(0, 2) + 1.0 * np.logaddexp(0, -2)],
                               rtol=1e-14)
    # shift-rounding mask
    m = ref.shift_inexact_mask(np.array([[1.0, 3.0, 0.1]], dtype=np.float32))
    assert list(m[0]) == [False, False, True]
