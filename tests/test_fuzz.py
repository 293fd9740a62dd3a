"""Differential fuzzing of every core function against the 60-digit mpmath reference.

Hypothesis draws random shapes (empty axes included), class-axis positions, dtypes (float16,
bfloat16, float32, float64, integer and bool inputs), memory layouts (C, Fortran, strided,
negative strides, swapped axes, misaligned, read-only, byte-swapped, zero-stride broadcast,
Python lists) and options (weights, ignore_index, label_smoothing, reductions, pos_weight,
BCE policies and epsilon, out=, grad_output, grad_out=, n_threads), calls the function and
its ``value_and_grad``, and compares every value and gradient with ``tests/_reference.py``
(or, for kl_div and the focal loss, with the same exact-input mpmath recipe written out
here).  Every call also checks that no input array was modified.

Expected numbers come only from mpmath on the exact input values; nothing is taken from
stableloss.

Sizes of the runs (environment variable ``STABLELOSS_HYPOTHESIS_PROFILE``, tests/conftest.py):

* ``ci`` (default): the profile's ``max_examples`` per test (60); the file runs in well under
  40 s on one core.
* ``thorough``: ``FUZZ_THOROUGH`` = 12,000 examples per test, 10 tests: at least 120,000
  cases (about an hour on one core).  ``STABLELOSS_FUZZ_EXAMPLES=n`` overrides the count
  per test in any profile.  Count the cases with ``--hypothesis-show-statistics``.

Tolerance model.  ``u`` is the unit roundoff of the compute dtype (float32 for half and
float32 inputs, float64 otherwise) and ``K = 8`` a safety factor.  Each bound is ``K u``
times the size of the numbers the contract formula adds (test_accuracy.py's rule 3: the sum
of the absolute values of its terms), with two first-order amplifications: ``C + 8`` for a
sum over a row, and ``delta_c = 2 + (C + 4) log S + |d_c| + sum_k p_k |d_k|`` for the relative
error of ``p_c`` (the rounding of the shifted logits ``d_c = x_c - max`` is amplified by
``|d_c|``).  A half result may in addition differ by its own final rounding, and values in
the subnormal range by a few subnormal spacings.  These bounds are loose against the
accuracy tests (tests/test_accuracy.py, which pin the last digits down) but any wrong index,
stride, weight, scale or option gives an O(1) error and fails.
"""
from __future__ import annotations

import math
import os

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import stableloss as sl

import _arrays as L
import _reference as ref

ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)
F16, F32, F64 = np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)

FUZZ_THOROUGH = 12_000
_PROFILE = os.environ.get("STABLELOSS_HYPOTHESIS_PROFILE", "ci")
_N = int(os.environ.get("STABLELOSS_FUZZ_EXAMPLES", "0") or 0)
_N = _N or (FUZZ_THOROUGH if _PROFILE == "thorough" else settings.default.max_examples)
FUZZ = settings(max_examples=_N, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much, HealthCheck.large_base_example])
K = 8.0
mp = ref.mp


# ---------------------------------------------------------------------------------------------
# dtypes, values and layouts
# ---------------------------------------------------------------------------------------------
FLOATS = (F16, BF16, F32, F64)
INTS = (np.dtype(np.int8), np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.uint8), np.dtype(bool))


def cdtype(dt):
    """Compute dtype: float32 for half and float32, float64 for float64, ints and bool."""
    return F32 if dt in (F16, BF16, F32) else F64


def rdtype(dt):
    """Result dtype: the float dtype itself; float64 for ints and bool."""
    return dt if dt in FLOATS else F64


def unit(dt):
    return 2.0 ** -24 if cdtype(dt) == F32 else 2.0 ** -53


def finfo(dt):
    return ml_dtypes.finfo(dt) if dt == BF16 else np.finfo(dt)


def main_dtype(draw, ints=True):
    return draw(st.sampled_from(FLOATS + FLOATS + (INTS if ints else ())))


def values(draw, shape, dt, lo, hi, specials=()):
    """An array of `shape` and dtype `dt`: floats in [lo, hi] (rounded to dt; exact values are
    what the reference sees), small integers for integer/bool dtypes, optional specials."""
    if dt.kind == "b":
        return draw(hnp.arrays(np.bool_, shape))
    if dt.kind in "iu":
        a, b = (0, 20) if dt.kind == "u" else (-20, 20)
        return draw(hnp.arrays(np.int64, shape, elements=st.integers(a, b))).astype(dt)
    top = float(finfo(dt).max) / 2
    lo, hi = max(lo, -top), min(hi, top)
    x = draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))
    if specials and x.size and draw(st.integers(0, 3)) == 0:
        mask = draw(hnp.arrays(np.bool_, shape))
        fill = draw(st.sampled_from(specials))
        x = np.where(mask, fill, x)
    with np.errstate(over="ignore"):
        return x.astype(dt)


def grid(draw, shape, lo, hi, step=1 / 8):
    """float64 multiples of `step` in [lo, hi]: exact in every float dtype, so a secondary
    input (weights, labels, cotangents) has the same value whatever dtype it is converted to."""
    k = draw(hnp.arrays(np.int64, shape, elements=st.integers(int(lo / step), int(hi / step))))
    return k * step


def any_float(draw, a):
    """`a` (exact grid values) in a random float dtype."""
    return a.astype(draw(st.sampled_from((F16, BF16, F32, F64))))


def _flip_all(a):
    a = np.asarray(a)
    return np.flip(np.ascontiguousarray(np.flip(a))) if a.ndim else a.copy()


def _broadcast(a):
    """A zero-stride view with `a`'s values when some axis is constant, else `a`."""
    a = np.asarray(a)
    for ax in range(a.ndim):
        if a.shape[ax] > 1 and a.size and np.all(a == np.take(a, [0], axis=ax)):
            return np.broadcast_to(np.take(a, [0], axis=ax), a.shape)
    return a


LAYOUT_NAMES = ("c", "c", "fortran", "strided", "strided_last", "negative_stride", "swapped_axes",
                "misaligned", "readonly", "byteswapped", "readonly_strided", "flip_all", "broadcast",
                "list")


def layout(draw, a):
    """`a` in a random memory layout (same values)."""
    name = draw(st.sampled_from(LAYOUT_NAMES))
    a = np.asarray(a)
    if name == "c":
        return a
    if name == "flip_all":
        return _flip_all(a)
    if name == "broadcast":
        return _broadcast(a)
    if name == "list" and (not L.layout_ok("list", a) or a.size == 0):
        return a          # (an empty list has no dtype: np.asarray([]) is float64)
    try:
        b = L.make_layout(a, name)
    except (TypeError, ValueError, AssertionError):   # a layout this dtype/size does not have
        return a
    return b if np.shape(b) == a.shape else a         # (np.asfortranarray makes 0-d 1-d)


def const_rows(draw, a):
    """Sometimes make every row along axis 0 equal (so the broadcast layout has a zero stride)."""
    a = np.array(a)
    if a.ndim >= 2 and a.shape[0] > 1 and draw(st.integers(0, 5)) == 0:
        a[...] = a[:1]
    return a


class Frozen:
    """Snapshot of the input arrays; `check()` asserts none was modified."""

    def __init__(self, *arrays):
        self.items = [(a, np.array(a, copy=True)) for a in arrays if isinstance(a, np.ndarray)]

    def check(self):
        for a, snap in self.items:
            assert a.tobytes() == np.ascontiguousarray(snap).tobytes(), "an input array was modified"


# ---------------------------------------------------------------------------------------------
# comparison
# ---------------------------------------------------------------------------------------------
def assert_close(got, want, bound, rd, what, nan_ok=None):
    """NaN where `want` is NaN, the same infinity where it is infinite, else within `bound`
    plus the result dtype's own rounding of `want` (half results) and a subnormal floor.
    Where `nan_ok` is True a NaN is accepted too (see ZERO_TIMES_INF)."""
    got = np.asarray(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    assert got.dtype == rd, f"{what}: dtype {got.dtype} != {rd}"
    g = got.astype(np.float64)
    if nan_ok is not None:
        g = np.where(np.broadcast_to(nan_ok, g.shape) & np.isnan(g), want, g)
    bound = np.nan_to_num(np.broadcast_to(np.asarray(bound, dtype=np.float64), want.shape), nan=0.0)
    fi = finfo(rd)
    sub = float(fi.smallest_subnormal)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        extra = 4 * sub + 64 * float(np.finfo(cdtype(rd) if rd in FLOATS else F64).smallest_subnormal)
        if rd.itemsize == 2:       # the half result's own rounding: half an ulp of want
            e = np.floor(np.log2(np.maximum(np.abs(want), float(fi.tiny))))
            extra = extra + np.exp2(e - fi.nmant)
        allowed = bound + extra
        err = np.abs(g - want)
        bad = np.isnan(want) & ~np.isnan(g)
        bad |= np.isinf(want) & (g != want)
        fin = np.isfinite(want)
        over = fin & (np.abs(want) + allowed >= float(fi.max))    # may round to +-inf
        ok_over = over & (np.isinf(g) & (np.sign(g) == np.sign(want)))
        bad |= fin & ~ok_over & ~(err <= allowed)
    if bad.any():
        idx = [tuple(int(v) for v in i) for i in np.argwhere(bad)[:5]]
        lines = [f"{what}: {int(bad.sum())} of {bad.size} elements out of tolerance"]
        lines += [f"  at {i}: expected {want[i]!r}, got {g[i]!r}, allowed {allowed[i]!r}" for i in idx]
        raise AssertionError("\n".join(lines))


def scalar_check(got, want, bound, rd, what, nan_ok=False):
    assert np.ndim(got) == 0 and not isinstance(got, np.ndarray), f"{what}: not a NumPy scalar"
    assert_close(np.asarray(got), np.asarray(want), bound, rd, what, nan_ok=np.asarray(bool(np.any(nan_ok))))


# ZERO_TIMES_INF: a row where a term's coefficient that is exactly 0 ((1 - eps) w_y with label
# smoothing 1, (eps / C) w_c with a zero class weight, w_c q_c with a zero probability label)
# meets a -inf logit (log-prob -inf). The reference takes 0 * inf = 0 (its _mul0 convention); stableloss, like PyTorch,
# evaluates the IEEE product, NaN, for every dtype. docs/api.md states the zero-coefficient
# rule for binary_cross_entropy only, so such rows accept either.
def zero_times_inf(x2, coef):
    """Rows (of x2) where a zero coefficient meets a -inf logit."""
    with np.errstate(invalid="ignore"):
        return np.any((coef == 0) & (x2 == -np.inf), axis=1) if x2.size else np.zeros(x2.shape[0], bool)


def reduced_bound(bounds, reduction, denom, mags):
    """Bound of a "sum"/"mean": the terms' bounds plus the float64 summation (sequential within
    a block: (n - 1) roundings of partial sums at most sum |terms| each); `mags` >= |terms|."""
    mags = np.nan_to_num(np.abs(np.asarray(mags, np.float64)), posinf=0.0)
    b = float(np.sum(bounds)) + 2 * mags.size * 2.0 ** -53 * float(np.sum(mags))
    if reduction == "sum":
        return b
    return b / denom if denom else 0.0


# ---------------------------------------------------------------------------------------------
# exact row statistics (mpmath on the exact input values)
# ---------------------------------------------------------------------------------------------
def row_stats(x2):
    """Per row of the float64 (exact) rows x2: kind, p, lp (rounded once from 60 digits),
    lse, the shifted logits d, log S and sum_k p_k |d_k|; delta (relative error model of p)."""
    N, C = x2.shape
    P = np.full((N, C), np.nan)
    LP = np.full((N, C), np.nan)
    LSE = np.full(N, np.nan)
    LOGS = np.zeros(N)
    SPD = np.zeros(N)
    D = np.zeros((N, C))
    ok = np.zeros(N, bool)
    mpp = [None] * N
    for n in range(N):
        r = ref._Row(x2[n])
        if r.kind != "ok":
            LSE[n] = {"empty": -np.inf, "allneginf": -np.inf, "nan": np.nan, "posinf": np.inf}[r.kind]
            continue
        ok[n] = True
        ps = [r.p(c) for c in range(C)]
        mpp[n] = (r, ps)
        P[n] = [ref._to_f64(v) for v in ps]
        LP[n] = [ref._to_f64(r.lp(c)) for c in range(C)]
        LSE[n] = ref._to_f64(r.lse)
        LOGS[n] = float(r.logS)
        with np.errstate(invalid="ignore"):
            d = x2[n] - float(r.m)
        D[n] = np.where(np.isfinite(d), np.abs(d), 0.0)
        SPD[n] = float(np.sum(P[n] * D[n]))
    delta = 2 + (C + 4) * LOGS[:, None] + D + SPD[:, None]
    return dict(ok=ok, P=P, LP=LP, LSE=LSE, LOGS=LOGS, SPD=SPD, D=D, delta=delta, mp=mpp, C=C)


def to_rows(a, axis):
    a = np.moveaxis(np.asarray(a, dtype=np.float64), axis, -1)
    return a.reshape(int(np.prod(a.shape[:-1], dtype=np.int64)), a.shape[-1]), a.shape[:-1]


def from_rows(a2, batch, axis):
    return np.moveaxis(np.asarray(a2).reshape(batch + (a2.shape[-1],)), -1, axis)


# ---------------------------------------------------------------------------------------------
# strategies shared by the row-wise functions
# ---------------------------------------------------------------------------------------------
def row_shape(draw, min_c=1, max_c=16):
    """(shape, class axis as passed (maybe negative), its position)."""
    ndim = draw(st.integers(1, 3))
    C = draw(st.integers(min_c, max_c))
    batch = [draw(st.integers(0, 4)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, 4))
             for _ in range(ndim - 1)]
    k = draw(st.integers(0, ndim - 1))
    shape = tuple(batch[:k]) + (C,) + tuple(batch[k:])
    axis = k if draw(st.booleans()) else k - ndim
    return shape, axis, k


def logits_values(draw, shape, dt, specials=(-np.inf,)):
    scale = draw(st.sampled_from([1.0, 10.0, 100.0, 1e4]))
    return values(draw, shape, dt, -scale, scale, specials if dt.kind == "f" else ())


def n_threads(draw):
    return draw(st.sampled_from([None, None, 1, 2, 3]))


def cotangent(draw, shape, rd):
    """None (ones) or grid values in [-4, 4] of `shape`, in the result dtype or another one."""
    if draw(st.booleans()):
        return None
    g = grid(draw, shape, -4, 4)
    return g.astype(rd) if draw(st.booleans()) else any_float(draw, g)


# ---------------------------------------------------------------------------------------------
# logsumexp (one axis, several axes, all) and its gradient
# ---------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_fuzz_logsumexp(data):
    draw = data.draw
    dt = main_dtype(draw)
    shape, ax, k = row_shape(draw, min_c=0)
    nd = len(shape)
    mode = draw(st.sampled_from(["int", "int", "tuple", "none"]))
    if mode == "int":
        axes, axis = (k,), ax
    elif mode == "none":
        axes, axis = tuple(range(nd)), None
    else:
        axes = tuple(sorted(draw(st.sets(st.integers(0, nd - 1), min_size=1))))
        axis = tuple(a - nd if draw(st.booleans()) else a for a in draw(st.permutations(axes)))
    keepdims = draw(st.booleans())
    x0 = logits_values(draw, shape, dt, specials=(-np.inf, -np.inf, np.inf, np.nan))
    x0 = const_rows(draw, x0)
    x = layout(draw, x0)
    rd, cd, u = rdtype(dt), cdtype(dt), unit(dt)
    nt = n_threads(draw)
    # reference: the reduced axes moved last and flattened into one row
    xe = x0.astype(np.float64)
    xm = np.moveaxis(xe, axes, range(nd - len(axes), nd))
    kept = xm.shape[:nd - len(axes)]
    x2 = xm.reshape(int(np.prod(kept, dtype=np.int64)), int(np.prod(xm.shape[len(kept):], dtype=np.int64)))
    S = row_stats(x2)
    oshape = tuple(1 if i in axes else s for i, s in enumerate(shape)) if keepdims else kept
    want = S["LSE"].reshape(oshape)
    with np.errstate(invalid="ignore"):
        m = np.max(x2, axis=1, initial=-np.inf) if x2.shape[1] else np.zeros(x2.shape[0])
    bound = K * u * (np.where(np.isfinite(m), np.abs(m), 0) + (x2.shape[1] + 4) * S["LOGS"] + S["SPD"])
    out = np.full(oshape, np.nan, dtype=rd) if draw(st.booleans()) else None
    fz = Frozen(x)
    got = sl.logsumexp(x, axis=axis, keepdims=keepdims, out=out, n_threads=nt)
    fz.check()
    if out is not None:
        assert got is out
    assert_close(got, want, bound.reshape(oshape), rd, "logsumexp")
    # gradient: g * softmax over the flattened axes
    g = cotangent(draw, oshape, rd)
    v2, gx = sl.value_and_grad(sl.logsumexp)(x, axis=axis, keepdims=keepdims, n_threads=nt, grad_output=g)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    ge = np.ones(x2.shape[0]) if g is None else np.asarray(g, np.float64).reshape(-1)
    gw = ge[:, None] * S["P"]
    gb = K * u * np.abs(gw) * S["delta"]
    gw = np.moveaxis(gw.reshape(xm.shape), range(nd - len(axes), nd), axes)
    gb = np.moveaxis(gb.reshape(xm.shape), range(nd - len(axes), nd), axes)
    assert_close(gx, gw, gb, rd, "logsumexp grad")


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax and their VJPs
# ---------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_fuzz_softmax_log_softmax(data):
    draw = data.draw
    log = draw(st.booleans())
    f = sl.log_softmax if log else sl.softmax
    dt = main_dtype(draw)
    shape, axis, k = row_shape(draw, min_c=0)
    x0 = logits_values(draw, shape, dt, specials=(-np.inf, -np.inf, np.inf, np.nan))
    x0 = const_rows(draw, x0)
    x = layout(draw, x0)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    x2, batch = to_rows(x0, k)
    S = row_stats(x2)
    C = x2.shape[1]
    if log:
        want = S["LP"]
        bound = K * u * ((C + 4) * S["LOGS"][:, None] + S["D"] + S["SPD"][:, None])
    else:
        want = S["P"]
        bound = K * u * S["P"] * S["delta"]
    out = None
    if draw(st.booleans()):
        out = np.full(shape, np.nan, dtype=rd)
        if draw(st.booleans()) and out.ndim >= 2:     # a non-contiguous out
            out = np.asfortranarray(out)
    fz = Frozen(x)
    got = f(x, axis=axis, out=out, n_threads=nt)
    fz.check()
    if out is not None:
        assert got is out
    assert_close(got, from_rows(want, batch, k), from_rows(bound, batch, k), rd, f.__name__)
    # VJP with a cotangent (exact mpmath from the exact p)
    g = cotangent(draw, shape, rd)
    gout = np.full(shape, np.nan, dtype=rd) if draw(st.integers(0, 3)) == 0 else None
    v2, gx = sl.value_and_grad(f)(x, axis=axis, n_threads=nt, grad_output=g, grad_out=gout)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    if gout is not None:
        assert gx is gout
    g2 = np.ones_like(x2) if g is None else to_rows(g, k)[0]
    gw = np.full(x2.shape, np.nan)
    gb = np.zeros(x2.shape)
    for n in range(x2.shape[0]):
        if not S["ok"][n]:
            continue
        r, ps = S["mp"][n]
        gm = [mp.mpf(float(v)) for v in g2[n]]
        if log:
            sg = ref._msum(gm)
            gw[n] = [ref._to_f64(gm[c] - ps[c] * sg) for c in range(C)]
            sa = float(np.sum(np.abs(g2[n])))
            gb[n] = K * u * ((C + 8) * (np.abs(g2[n]) + S["P"][n] * sa) + S["P"][n] * S["delta"][n] * sa)
        else:
            sgp = ref._msum(gm[c] * ps[c] for c in range(C))
            gw[n] = [ref._to_f64(ps[c] * (gm[c] - sgp)) for c in range(C)]
            sa = float(np.sum(np.abs(g2[n]) * S["P"][n]))
            dmax = float(np.max(np.where(S["P"][n] > 0, S["delta"][n], 0)))
            gb[n] = K * u * (C + 8) * S["P"][n] * (np.abs(g2[n]) + sa) * (S["delta"][n] + dmax)
    assert_close(gx, from_rows(gw, batch, k), from_rows(gb, batch, k), rd, f.__name__ + " grad")


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy with index labels
# ---------------------------------------------------------------------------------------------
LABEL_DTYPES = (np.dtype(np.int64), np.dtype(np.int32), np.dtype(np.int16), np.dtype(np.int8),
                np.dtype(np.uint8), np.dtype(np.uint64))


def index_labels(draw, batch, C, ignore):
    y = draw(hnp.arrays(np.int64, batch, elements=st.integers(0, C - 1)))
    if ignore is not None and y.size and draw(st.booleans()):
        mask = draw(hnp.arrays(np.bool_, batch))
        y = np.where(mask, ignore, y)
    ldt = draw(st.sampled_from(LABEL_DTYPES))
    if (y.size and (y.min() < np.iinfo(ldt).min or y.max() > np.iinfo(ldt).max)):
        ldt = np.dtype(np.int64)
    return y.astype(ldt)


def class_weight(draw, C):
    if draw(st.booleans()):
        return None, np.ones(C)
    w = grid(draw, (C,), 0, 4)
    if draw(st.integers(0, 3)) == 0:
        w = np.maximum(w, 0.125)
    return layout(draw, any_float(draw, w)), w


def _reduction(draw):
    return draw(st.sampled_from(["none", "sum", "mean"]))


def _scalar_cotangent(draw):
    return None if draw(st.booleans()) else float(grid(draw, (), -4, 4))


@FUZZ
@given(st.data())
def test_fuzz_ce_index(data):
    draw = data.draw
    dt = main_dtype(draw)
    shape, axis, k = row_shape(draw)
    C = shape[k]
    batch = shape[:k] + shape[k + 1:]
    ii = draw(st.sampled_from([None, None, -100, -1, 0, C - 1]))
    y0 = index_labels(draw, batch, C, ii)
    ign = (y0.astype(np.int64) == ii) if ii is not None else np.zeros(batch, bool)
    x0 = logits_values(draw, shape, dt, specials=(-np.inf, -np.inf, np.nan, np.inf))
    # the contract leaves non-finite logits in ignored rows open: keep those rows finite
    x0m = np.moveaxis(x0, k, -1)
    # (a zero of the array's own dtype: NumPy < 2 promotes a Python 0 to int64, and
    # ml_dtypes' bfloat16 has no common dtype with int64)
    x0m[ign] = np.where(np.isfinite(x0m[ign].astype(np.float64)), x0m[ign], np.zeros((), x0m.dtype))
    x0 = np.moveaxis(x0m, -1, k)
    x = layout(draw, x0)
    y = layout(draw, y0)
    w, we = class_weight(draw, C)
    eps = draw(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 0.25]))
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    kw = dict(axis=axis, weight=w, ignore_index=ii, label_smoothing=eps, reduction=red, n_threads=nt)
    out = np.full(batch, np.nan, dtype=rd) if red == "none" and draw(st.booleans()) else None
    # reference (exact weights: grid values are exact in every dtype)
    x2, _ = to_rows(x0, k)
    lab = y0.astype(np.int64).reshape(-1)
    want, gref = ref.softmax_cross_entropy(x0.astype(np.float64), y0.astype(np.int64), axis=k,
                                           weight=None if w is None else we, ignore_index=ii,
                                           label_smoothing=eps, reduction=red)
    S = row_stats(x2)
    a, b = 1 - eps, eps / C
    v = ~ign.reshape(-1)
    wy = we[lab.clip(0, C - 1)] * v
    coefsum = a * wy + b * float(np.sum(we)) * v
    lossrow = np.abs(np.nan_to_num(np.asarray(ref.softmax_cross_entropy(
        x0.astype(np.float64), y0.astype(np.int64), axis=k, weight=None if w is None else we,
        ignore_index=ii, label_smoothing=eps, reduction="none")[0]).reshape(-1), posinf=0.0))
    # + coefsum where the target does not hold the row maximum: the kernel then takes
    # log S = log(S) (absolute error ~u, not relative), which the loss keeps at full weight
    # when the target term vanishes (w_y = 0 or eps = 1) and sum_c w_c (m - x_c) = 0
    with np.errstate(invalid="ignore"):
        off_max = x2[np.arange(x2.shape[0]), lab.clip(0, C - 1)] != np.max(x2, axis=1, initial=-np.inf)
    lb = K * u * (C + 8) * (lossrow + coefsum * (S["SPD"] + off_max))
    denom = float(np.sum(wy))
    # the two terms separately: (1 - eps) w_y (-lp_y) and (eps / C) w_c (-lp_c)
    tgt = np.arange(C)[None, :] == lab[:, None]
    amb = (zero_times_inf(x2, np.where(tgt, a * we[lab.clip(0, C - 1)][:, None], 1.0))
           | zero_times_inf(x2, np.broadcast_to(b * we[None, :], x2.shape))) & v
    fz = Frozen(x, y, w)
    got = sl.softmax_cross_entropy(x, y, out=out, **kw)
    fz.check()
    if red == "none":
        assert_close(got, want, lb.reshape(batch), rd, "CE index loss", nan_ok=amb.reshape(batch))
        if out is not None:
            assert got is out
    else:
        scalar_check(got, want, reduced_bound(lb, red, denom, lossrow), rd, f"CE index loss ({red})", nan_ok=amb)
    # gradient
    g = cotangent(draw, batch, rd) if red == "none" else _scalar_cotangent(draw)
    v2, gx = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, grad_output=g, **kw)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    if red == "none":
        s = np.ones(x2.shape[0]) if g is None else np.asarray(g, np.float64).reshape(-1)
    else:
        s = np.full(x2.shape[0], 1.0 if g is None else g)
    g2 = to_rows(gref, k)[0] * s[:, None]
    # an ignored row's gradient is 0 even when the mean's scale is NaN (all ignored or zero
    # weights): the contract's factor v = 0, as PyTorch (the reference multiplies 0 by NaN)
    g2[~v] = 0.0
    if red == "mean":
        s = s / denom if denom else s * np.nan
    onehot = (np.arange(C)[None, :] == lab[:, None]) & v[:, None]
    A = (a * wy + b * float(np.sum(we)))[:, None]
    with np.errstate(invalid="ignore"):
        gb = K * u * (C + 8) * np.abs(s)[:, None] * (
            np.nan_to_num(S["P"]) * A * S["delta"] + a * wy[:, None] * onehot + b * we[None, :] * v[:, None])
    bt = to_rows(x0, k)[1]
    assert_close(gx, from_rows(g2, bt, k), from_rows(gb, bt, k), rd, f"CE index grad ({red})",
                 nan_ok=from_rows(np.broadcast_to(amb[:, None] | (red != "none" and amb.any()), g2.shape), bt, k))


# ---------------------------------------------------------------------------------------------
# softmax_cross_entropy with probability labels (gradients wrt both)
# ---------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_fuzz_ce_prob(data):
    draw = data.draw
    dt = main_dtype(draw, ints=False)
    shape, axis, k = row_shape(draw)
    C = shape[k]
    x0 = logits_values(draw, shape, dt, specials=(-np.inf,))
    z0 = grid(draw, shape, 0, 1, step=1 / 64)
    if draw(st.booleans()):    # rows that sum to 1 (a one-hot-ish distribution)
        zr = np.moveaxis(z0, k, -1)
        zr /= np.maximum(zr.sum(-1, keepdims=True), 1)
        z0 = np.moveaxis(np.round(zr * 64) / 64, -1, k)
    x0 = const_rows(draw, x0)
    x = layout(draw, x0)
    zdt = draw(st.sampled_from([dt, dt, F16, BF16, F32, F64]))
    z = layout(draw, z0.astype(zdt))
    w, we = class_weight(draw, C)
    eps = draw(st.sampled_from([0.0, 0.0, 0.2, 1.0]))
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    if dt == F32 and zdt in (F16, BF16):
        rd = F32
    nt = n_threads(draw)
    argnums = draw(st.sampled_from([0, 1, (0, 1)]))
    kw = dict(axis=axis, weight=w, label_smoothing=eps, reduction=red, n_threads=nt)
    x64, z64 = x0.astype(np.float64), z0
    want, gxr, gzr = ref.prob_cross_entropy(x64, z64, axis=k, weight=None if w is None else we,
                                            label_smoothing=eps, reduction=red)
    lrow = ref.prob_cross_entropy(x64, z64, axis=k, weight=None if w is None else we,
                                  label_smoothing=eps, reduction="none")[0]
    x2, batch = to_rows(x0, k)
    z2 = to_rows(z64, k)[0]
    N = x2.shape[0]
    S = row_stats(x2)
    q = (1 - eps) * z2 + eps / C
    wq = we[None, :] * q
    swq = wq.sum(1)
    lb = K * u * (C + 8) * (np.abs(np.nan_to_num(lrow.reshape(-1), posinf=0.0)) + swq * S["SPD"])
    amb = zero_times_inf(x2, wq)
    fz = Frozen(x, z, w)
    got = sl.softmax_cross_entropy(x, z, **kw)
    fz.check()
    if red == "none":
        assert_close(got, want, lb.reshape(batch), rd, "CE prob loss", nan_ok=amb.reshape(batch))
    else:
        scalar_check(got, want, reduced_bound(lb, red, N, lrow), rd, f"CE prob loss ({red})", nan_ok=amb)
    g = cotangent(draw, batch, rd) if red == "none" else _scalar_cotangent(draw)
    v2, grads = sl.value_and_grad(sl.softmax_cross_entropy, argnums=argnums)(x, z, grad_output=g, **kw)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    if red == "none":
        s = np.ones(N) if g is None else np.asarray(g, np.float64).reshape(-1)
    else:
        s = np.full(N, 1.0 if g is None else g)
    gs = s / N if red == "mean" else s
    gs = gs if N else gs
    grads = grads if isinstance(argnums, tuple) else (grads,)
    for i, gg in zip(argnums if isinstance(argnums, tuple) else (argnums,), grads):
        if i == 0:
            gw = to_rows(gxr, k)[0] * s[:, None]
            gb = K * u * (C + 8) * np.abs(gs)[:, None] * (S["P"] * swq[:, None] * S["delta"] + wq)
            name = "CE prob grad logits"
        else:
            with np.errstate(invalid="ignore"):
                gw = to_rows(gzr, k)[0] * s[:, None]
                gb = K * u * (C + 8) * np.abs(gs)[:, None] * (1 - eps) * we[None, :] * (
                    np.abs(S["LP"]) + S["SPD"][:, None])
            name = "CE prob grad labels"
            amb = amb | zero_times_inf(x2, np.broadcast_to((1 - eps) * we[None, :], x2.shape))
        nan_ok = np.broadcast_to(amb[:, None] | (red != "none" and amb.any()), gw.shape)
        assert_close(gg, from_rows(gw, batch, k), from_rows(np.nan_to_num(gb), batch, k), rd,
                     f"{name} ({red})", nan_ok=from_rows(nan_ok, batch, k))


# ---------------------------------------------------------------------------------------------
# nll_loss
# ---------------------------------------------------------------------------------------------
@FUZZ
@given(st.data())
def test_fuzz_nll_loss(data):
    draw = data.draw
    dt = main_dtype(draw)
    shape, axis, k = row_shape(draw)
    C = shape[k]
    batch = shape[:k] + shape[k + 1:]
    ii = draw(st.sampled_from([None, None, -100, 0, C - 1]))
    y0 = index_labels(draw, batch, C, ii)
    x0 = values(draw, shape, dt, -30.0, 0.0)
    x = layout(draw, x0)
    y = layout(draw, y0)
    w, we = class_weight(draw, C)
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    kw = dict(axis=axis, weight=w, ignore_index=ii, reduction=red, n_threads=nt)
    want, gref = ref.nll_loss(x0.astype(np.float64), y0.astype(np.int64), axis=k,
                              weight=None if w is None else we, ignore_index=ii, reduction=red)
    lrow, _ = ref.nll_loss(x0.astype(np.float64), y0.astype(np.int64), axis=k,
                           weight=None if w is None else we, ignore_index=ii, reduction="none")
    lab = y0.astype(np.int64).reshape(-1)
    v = lab != ii if ii is not None else np.ones(lab.shape, bool)
    denom = float(np.sum(we[lab.clip(0, C - 1)] * v))
    lb = K * u * np.abs(lrow.reshape(-1))
    out = np.full(batch, np.nan, dtype=rd) if red == "none" and draw(st.booleans()) else None
    fz = Frozen(x, y, w)
    got = sl.nll_loss(x, y, out=out, **kw)
    fz.check()
    if red == "none":
        assert_close(got, want, lb.reshape(batch), rd, "nll loss")
    else:
        scalar_check(got, want, reduced_bound(lb, red, denom, lrow), rd, f"nll loss ({red})")
    g = cotangent(draw, batch, rd) if red == "none" else _scalar_cotangent(draw)
    v2, gx = sl.value_and_grad(sl.nll_loss)(x, y, grad_output=g, **kw)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    x2, bt = to_rows(x0, k)
    s = (np.ones(x2.shape[0]) if g is None else np.asarray(g, np.float64).reshape(-1)) if red == "none" \
        else np.full(x2.shape[0], 1.0 if g is None else g)
    # -v w_y s at the target, 0 elsewhere -- also when the mean's scale is NaN (all ignored or
    # zero weights), as PyTorch; the reference multiplies the whole row, zeros too, by the scale
    if red == "mean":
        s = s / denom if denom else s * np.nan
    onehot = (np.arange(x2.shape[1])[None, :] == lab[:, None]) & v[:, None]
    with np.errstate(invalid="ignore"):
        gw = np.where(onehot, -we[lab.clip(0, x2.shape[1] - 1)][:, None] * s[:, None], 0.0)
    assert np.allclose(np.where(onehot, gw, 0), np.where(onehot, to_rows(gref, k)[0] * (
        s[:, None] * denom if red == "mean" else s[:, None]), 0), equal_nan=True)
    assert_close(gx, from_rows(gw, bt, k), from_rows(K * u * np.abs(gw), bt, k), rd, f"nll grad ({red})")


# ---------------------------------------------------------------------------------------------
# elementwise: sigmoid_cross_entropy, binary_cross_entropy, sigmoid, log_sigmoid
# ---------------------------------------------------------------------------------------------
def elem_shape(draw):
    nd = draw(st.integers(0, 3))
    return tuple(draw(st.integers(0, 4)) if draw(st.integers(0, 9)) == 0 else draw(st.integers(1, 5))
                 for _ in range(nd))


def elem_weight(draw, shape, lo=0.0, hi=4.0):
    """None, or a weight broadcastable to `shape` (scalar, last-axis vector, (1, K), full)."""
    kind = draw(st.sampled_from(["none", "none", "scalar", "vector", "lead1", "full"]))
    if kind == "none":
        return None, np.ones(shape)
    if kind == "scalar" or not shape:
        ws = ()
    elif kind == "vector":
        ws = shape[-1:]
    elif kind == "lead1":
        ws = (1,) + shape[-1:] if len(shape) >= 2 else shape[-1:]
    else:
        ws = shape
    we = grid(draw, ws, lo, hi)
    return layout(draw, any_float(draw, we)), np.broadcast_to(we, shape)


@FUZZ
@given(st.data())
def test_fuzz_sigmoid_cross_entropy(data):
    draw = data.draw
    dt = main_dtype(draw)
    shape = elem_shape(draw)
    x0 = values(draw, shape, dt, -draw(st.sampled_from([5.0, 50.0, 1e3])), 60.0)
    z0 = grid(draw, shape, 0, 1, step=1 / 64)
    x = layout(draw, x0)
    z = layout(draw, any_float(draw, z0) if draw(st.booleans()) else z0.astype(rdtype(dt)))
    w, we = elem_weight(draw, shape)
    pw, pwe = elem_weight(draw, shape, 0.25, 4.0)
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    argnums = draw(st.sampled_from([0, 1, (0, 1)]))
    kw = dict(weight=w, pos_weight=pw, reduction=red, n_threads=nt)
    xe = x0.astype(np.float64)
    want, gxr, gzr = ref.sigmoid_cross_entropy(xe, z0, weight=we, pos_weight=pwe, reduction=red)
    # magnitudes: w (|(1 - z) x| + L softplus(-x)), L = 1 + (pw - 1) z taken as 1 + |pw - 1| z
    sp = np.logaddexp(0, -xe)
    Lm = 1 + np.abs(pwe - 1) * z0
    with np.errstate(over="ignore"):
        sig = 1 / (1 + np.exp(-xe))
    lb = K * u * 8 * we * (np.abs((1 - z0) * xe) + Lm * sp)
    out = np.full(shape, np.nan, dtype=rd) if red == "none" and draw(st.booleans()) else None
    fz = Frozen(x, z, w, pw)
    got = sl.sigmoid_cross_entropy(x, z, out=out, **kw)
    fz.check()
    n = x0.size
    if red == "none":
        assert_close(got, want, lb, rd, "sigmoid CE loss")
    else:
        scalar_check(got, want, reduced_bound(lb, red, n, we * (np.abs((1 - z0) * xe) + Lm * sp)), rd, f"sigmoid CE loss ({red})")
    g = cotangent(draw, shape, rd) if red == "none" else _scalar_cotangent(draw)
    v2, grads = sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=argnums)(x, z, grad_output=g, **kw)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    s = (np.ones(shape) if g is None else np.asarray(g, np.float64)) if red == "none" \
        else np.full(shape, 1.0 if g is None else g)
    gs = s / n if red == "mean" else s
    grads = grads if isinstance(argnums, tuple) else (grads,)
    for i, gg in zip(argnums if isinstance(argnums, tuple) else (argnums,), grads):
        if i == 0:
            gw, gb = gxr * s, K * u * 8 * np.abs(gs) * we * (Lm * sig + pwe * z0)
        else:
            gw, gb = gzr * s, K * u * 8 * np.abs(gs) * we * (np.abs(xe) + np.abs(pwe - 1) * sp)
        assert_close(gg, gw, gb, rd, f"sigmoid CE grad {i} ({red})")


BCE_POLICIES = ("clamp", "clip", "add", "exact")


@FUZZ
@given(st.data())
def test_fuzz_binary_cross_entropy(data):
    draw = data.draw
    dt = main_dtype(draw, ints=False)
    shape = elem_shape(draw)
    policy = draw(st.sampled_from(BCE_POLICIES))
    p0 = values(draw, shape, dt, 0.0, 1.0)
    if draw(st.booleans()) and p0.size:     # exact ends and tiny values
        mask = draw(hnp.arrays(np.bool_, shape))
        p0 = np.where(mask, np.asarray(draw(st.sampled_from([0.0, 1.0, 1e-30, 1e-7, 1 - 2 ** -20])),
                                       dtype=p0.dtype), p0)
    if policy == "exact":
        # finite logs: p strictly inside (0, 1) after rounding to the dtype (1 - 2^-10 is
        # 1.0 in bfloat16; 1 - 2^-6 is exact in every dtype)
        p0 = np.clip(p0, 2 ** -6, 1 - 2 ** -6).astype(p0.dtype)
    z0 = grid(draw, shape, 0, 1, step=1 / 64)
    p = layout(draw, p0)
    z = layout(draw, any_float(draw, z0))
    w, we = elem_weight(draw, shape)
    eps = None
    if policy in ("clip", "add") and draw(st.booleans()):
        eps = draw(st.sampled_from([1e-7, 1e-4, 0.01, 0.1]))
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    kw = dict(weight=w, reduction=red, policy=policy, epsilon=eps, n_threads=nt)
    pf = p0.astype(np.float64)
    want, gref = ref.binary_cross_entropy(pf, z0, weight=we, reduction=red, policy=policy, epsilon=eps)
    e = 1e-7 if eps is None else eps
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy == "clamp":
            t1, t2 = np.maximum(np.log(pf), -100), np.maximum(np.log1p(-pf), -100)
        elif policy == "clip":
            pc = np.clip(pf, e, 1 - e)
            t1, t2 = np.log(pc), np.log1p(-pc)
        elif policy == "add":
            t1, t2 = np.log(pf + e), np.log1p(-pf + e)
        else:
            t1, t2 = np.log(pf), np.log1p(-pf)
        scale = np.where(z0 == 0, 0, np.abs(z0 * t1)) + np.where(z0 == 1, 0, np.abs((1 - z0) * t2))
        # 1 - p, p + eps, 1 - p + eps are rounded in the compute dtype: an absolute u per log
        lb = K * u * we * (scale + 2)
        if policy == "clip":   # 1 - (1 - eps) held in the compute dtype (test_accuracy.py)
            lb = lb + np.where(pf > 1 - e - 2 * u, 2 * we * (1 - z0) * 2 * u / e, 0.0)
    out = np.full(shape, np.nan, dtype=rd) if red == "none" and draw(st.booleans()) else None
    fz = Frozen(p, z, w)
    got = sl.binary_cross_entropy(p, z, out=out, **kw)
    fz.check()
    n = p0.size
    if red == "none":
        assert_close(got, want, lb, rd, f"BCE[{policy}] loss")
    else:
        scalar_check(got, want, reduced_bound(lb, red, n, we * scale), rd, f"BCE[{policy}] loss ({red})")
    g = cotangent(draw, shape, rd) if red == "none" else _scalar_cotangent(draw)
    v2, gp = sl.value_and_grad(sl.binary_cross_entropy)(p, z, grad_output=g, **kw)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    s = (np.ones(shape) if g is None else np.asarray(g, np.float64)) if red == "none" \
        else np.full(shape, 1.0 if g is None else g)
    gs = np.abs(s / n if red == "mean" else s)
    gw = gref * s
    with np.errstate(divide="ignore", invalid="ignore"):
        if policy == "clamp":
            den = np.maximum(pf * (1 - pf), 1e-12)
            gb = K * u * 8 * we * (pf + z0) / den
        elif policy == "add":
            gb = K * u * 8 * we * (z0 / (pf + e) + (1 - z0) / (1 - pf + e))
        else:
            gb = K * u * 8 * we * (z0 / pf + (1 - z0) / (1 - pf) + (pf + z0) / (pf * (1 - pf)))
        gb = gs * gb
    # unspecified: the clip gradient at (or one rounding from) a bound; "exact" at p in {0, 1}
    skip = np.isnan(gw)
    if policy == "clip":
        skip |= (np.abs(pf - e) <= 4 * u * e) | (np.abs(pf - (1 - e)) <= 4 * u)
        gb = np.where((pf < e) | (pf > 1 - e), 0.0, gb)
    g_got = np.where(skip, np.nan, np.asarray(gp, np.float64)).astype(np.asarray(gp).dtype)
    assert np.asarray(gp).dtype == rd
    assert_close(g_got, np.where(skip, np.nan, gw), np.nan_to_num(gb), rd, f"BCE[{policy}] grad ({red})")


@FUZZ
@given(st.data())
def test_fuzz_sigmoid_log_sigmoid(data):
    draw = data.draw
    log = draw(st.booleans())
    f = sl.log_sigmoid if log else sl.sigmoid
    dt = main_dtype(draw)
    shape = elem_shape(draw)
    bound_ = draw(st.sampled_from([5.0, 50.0, 800.0]))
    x0 = values(draw, shape, dt, -bound_, bound_, (np.nan, np.inf, -np.inf))
    x = layout(draw, x0)
    rd, u = rdtype(dt), unit(dt)
    nt = n_threads(draw)
    xe = x0.astype(np.float64)
    (val, dval) = ref.log_sigmoid(xe) if log else ref.sigmoid(xe)
    with np.errstate(over="ignore", invalid="ignore"):
        if log:
            vb = K * u * 4 * np.abs(val)
            db = K * u * 4 * (1 + np.abs(xe)) * np.abs(dval)      # sigma(-x): exp(-x) rounding
        else:
            vb = K * u * 4 * (1 + np.abs(xe)) * np.abs(val)
            db = K * u * 8 * (1 + np.abs(xe)) * np.abs(dval)
    out = np.full(shape, np.nan, dtype=rd) if draw(st.booleans()) else None
    fz = Frozen(x)
    got = f(x, out=out, n_threads=nt)
    fz.check()
    if out is not None:
        assert got is out
    assert_close(got, val, np.nan_to_num(vb), rd, f.__name__)
    g = cotangent(draw, shape, rd)
    v2, gx = sl.value_and_grad(f)(x, grad_output=g, n_threads=nt)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    s = np.ones(shape) if g is None else np.asarray(g, np.float64)
    with np.errstate(over="ignore", invalid="ignore"):     # reference products at inf/huge values
        want, bound = dval * s, np.nan_to_num(db) * np.abs(s)
    assert_close(gx, want, bound, rd, f.__name__ + " grad")


# ---------------------------------------------------------------------------------------------
# kl_div and sigmoid_focal_loss (their mpmath formulas, same recipe as _reference.py)
# ---------------------------------------------------------------------------------------------
def _mp_kl(x, t, log_target):
    xm, tm = mp.mpf(x), mp.mpf(t)
    if log_target:
        if tm == mp.ninf or mp.isnan(xm) or mp.isnan(tm):
            return math.nan, (0.0 if tm == mp.ninf else math.nan)
        et = mp.exp(tm)
        return ref._to_f64(et * (tm - xm)), ref._to_f64(-et)
    if tm == 0:
        return (0.0 if mp.isfinite(xm) else math.nan), 0.0
    return ref._to_f64(tm * (mp.log(tm) - xm)), ref._to_f64(-tm)


@FUZZ
@given(st.data())
def test_fuzz_kl_div(data):
    draw = data.draw
    dt = main_dtype(draw, ints=False)
    shape = elem_shape(draw)
    # target shape: broadcast-compatible (a suffix, with some 1s) or equal
    tshape = shape[draw(st.integers(0, len(shape))):] if shape else ()
    tshape = tuple(1 if draw(st.integers(0, 3)) == 0 else s for s in tshape)
    swap = draw(st.booleans())    # or the log_probs broadcast against the target
    xshape, tsh = (tshape, shape) if swap else (shape, tshape)
    log_target = draw(st.booleans())
    x0 = values(draw, xshape, dt, -30.0, 5.0)
    if log_target:
        t0 = grid(draw, tsh, -20, 2)
    else:
        t0 = grid(draw, tsh, 0, 1, step=1 / 64)
    x = layout(draw, x0)
    t = layout(draw, any_float(draw, t0))
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    bshape = np.broadcast_shapes(xshape, tsh)
    xb = np.broadcast_to(x0.astype(np.float64), bshape)
    tb = np.broadcast_to(t0, bshape)
    lw = np.empty(bshape)
    gwb = np.empty(bshape)
    for i in np.ndindex(bshape):
        lw[i], gwb[i] = _mp_kl(float(xb[i]), float(tb[i]), log_target)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if log_target:
            lb = K * u * 4 * np.exp(tb) * (np.abs(tb) + np.abs(xb)) * (1 + np.abs(tb))
            gbb = K * u * 4 * np.exp(tb) * (1 + np.abs(tb))
        else:
            lb = K * u * 4 * tb * (np.abs(np.log(np.where(tb > 0, tb, 1))) + np.abs(xb))
            gbb = K * u * np.abs(tb)
    n = int(np.prod(bshape, dtype=np.int64))
    fz = Frozen(x, t)
    got = sl.kl_div(x, t, log_target=log_target, reduction=red)
    fz.check()
    if red == "none":
        assert_close(got, lw, lb, rd, "kl_div")
        want = None
    else:
        tot = ref._msum(mp.mpf(float(v)) for v in lw.reshape(-1))   # per-element exact to 1/2 ulp
        want = ref._to_f64(tot if red == "sum" else (tot / n if n else mp.nan))
        scalar_check(got, want, reduced_bound(lb + np.abs(lw) * 2.0 ** -52, red, n, lw), rd, f"kl_div ({red})")
    g = cotangent(draw, bshape, rd) if red == "none" else _scalar_cotangent(draw)
    v2, gx = sl.value_and_grad(sl.kl_div)(x, t, log_target=log_target, reduction=red, grad_output=g)
    fz.check()
    s = (np.ones(bshape) if g is None else np.asarray(g, np.float64)) if red == "none" \
        else np.full(bshape, (1.0 if g is None else g) / (n if red == "mean" else 1) if n else np.nan)
    gsum = gwb * s
    gbs = gbb * np.abs(s)
    # summed back over the broadcast axes of the log_probs
    lead = len(bshape) - len(xshape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(xshape) if d == 1 and bshape[lead + i] != 1)
    gsum = np.sum(gsum, axis=axes).reshape(xshape)
    gbs = (np.sum(gbs, axis=axes) + K * u * np.sum(np.abs(gwb * s), axis=axes)).reshape(xshape)
    assert_close(gx, gsum, gbs, rd, f"kl_div grad ({red})")


def _mp_focal(x, z, alpha, gamma):
    xm, zm = mp.mpf(x), mp.mpf(z)
    s, sn = ref._sigmoid(xm), ref._sigmoid(-xm)
    bce = ref._mul0(1 - zm, xm) + ref._softplus(-xm)
    um = s * (1 - zm) + sn * zm
    g = mp.mpf(gamma)
    fac = um ** g if g != 0 else mp.mpf(1)
    at = mp.mpf(1) if alpha is None or alpha < 0 else mp.mpf(alpha) * zm + (1 - mp.mpf(alpha)) * (1 - zm)
    loss = at * fac * bce
    dfac = mp.mpf(0) if g == 0 else g * um ** (g - 1) * s * sn * (1 - 2 * zm)
    grad = at * ((s * (1 - zm) - zm * sn) * fac + bce * dfac)
    return ref._to_f64(loss), ref._to_f64(grad)


@FUZZ
@given(st.data())
def test_fuzz_sigmoid_focal_loss(data):
    draw = data.draw
    dt = main_dtype(draw)
    shape = elem_shape(draw)
    x0 = values(draw, shape, dt, -30.0, 30.0)
    z0 = grid(draw, shape, 0, 1, step=1 / 4)
    x = layout(draw, x0)
    z = layout(draw, any_float(draw, z0))
    alpha = draw(st.sampled_from([0.25, None, 0.5, -1.0]))
    gamma = draw(st.sampled_from([2.0, 0.0, 0.5, 1.0, 3.5]))
    red = _reduction(draw)
    rd, u = rdtype(dt), unit(dt)
    xe = x0.astype(np.float64)
    lw, gw = np.empty(shape), np.empty(shape)
    for i in np.ndindex(shape):
        lw[i], gw[i] = _mp_focal(float(xe[i]), float(z0[i]), alpha, gamma)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        sig, sn = 1 / (1 + np.exp(-xe)), 1 / (1 + np.exp(xe))
        um = sig * (1 - z0) + sn * z0
        at = 1.0 if alpha is None or alpha < 0 else np.abs(alpha * z0 + (1 - alpha) * (1 - z0)) + 0.0
        bce_m = np.abs((1 - z0) * xe) + np.logaddexp(0, -xe)
        fac = um ** gamma
        amp = (4 + 2 * gamma) * (1 + np.abs(xe))
        lb = K * u * amp * at * fac * bce_m
        dfm = 0.0 if gamma == 0 else gamma * um ** (gamma - 1) * sig * sn * np.abs(1 - 2 * z0)
        gb = K * u * amp * at * ((sig * (1 - z0) + z0 * sn) * fac + bce_m * dfm)
    n = x0.size
    fz = Frozen(x, z)
    got = sl.sigmoid_focal_loss(x, z, alpha=alpha, gamma=gamma, reduction=red)
    fz.check()
    if red == "none":
        assert_close(got, lw, lb, rd, "focal")
    else:
        tot = ref._msum(mp.mpf(float(v)) for v in lw.reshape(-1))
        want = ref._to_f64(tot if red == "sum" else (tot / n if n else mp.nan))
        scalar_check(got, want, reduced_bound(lb + np.abs(lw) * 2.0 ** -52, red, n, lw), rd, f"focal ({red})")
    g = cotangent(draw, shape, rd) if red == "none" else _scalar_cotangent(draw)
    v2, gx = sl.value_and_grad(sl.sigmoid_focal_loss)(x, z, alpha=alpha, gamma=gamma, reduction=red,
                                                       grad_output=g)
    fz.check()
    assert np.array_equal(np.asarray(v2), np.asarray(got), equal_nan=True)
    s = (np.ones(shape) if g is None else np.asarray(g, np.float64)) if red == "none" \
        else np.full(shape, (1.0 if g is None else g) / (n if red == "mean" else 1) if n else np.nan)
    assert_close(gx, gw * s, np.nan_to_num(gb) * np.abs(s), rd, f"focal grad ({red})")


# ---------------------------------------------------------------------------------------------
# regressions: what the fuzzer and the sanitizers found (docs/reliability.md), pinned down
# ---------------------------------------------------------------------------------------------
def test_regression_misaligned_arrays_are_copied_and_the_kernel_rejects_them():
    """UBSan (tools/sanitize.sh): a C-contiguous array at an odd byte offset was read through a
    double* (undefined behaviour). The dispatch layer copies it; the kernel refuses it."""
    from stableloss._core import _kernels as Kern
    x = L.misaligned(np.array([[0.5, -1.0, 2.0], [3.0, 0.0, -np.inf]]))
    assert not x.flags.aligned and x.flags.c_contiguous
    np.testing.assert_array_equal(sl.logsumexp(x), ref.logsumexp(np.array(x)))
    out = L.misaligned(np.zeros(2))
    assert sl.logsumexp(x, out=out) is out
    np.testing.assert_array_equal(out, ref.logsumexp(np.array(x)))
    with pytest.raises(ValueError, match="aligned"):
        Kern.lse(x, np.empty(2), 1)


@pytest.mark.parametrize("dt", [F16, BF16], ids=["float16", "bfloat16"])
def test_regression_byteswapped_half_gives_native_half(dt):
    """A '>f2' / '>bfloat16' input gave '>f2' / '>V2' (void) results."""
    x = np.array([[0.5, 1.0, 2.0]], dtype=dt)
    xs = x.astype(dt.newbyteorder("S"))
    assert not xs.dtype.isnative
    for f in (sl.logsumexp, sl.softmax, sl.log_softmax, sl.sigmoid):
        a, b = f(x), f(xs)
        assert b.dtype == dt and a.tobytes() == b.tobytes(), f.__name__
    assert sl.softmax_cross_entropy(xs, np.array([1])).dtype == dt


def test_regression_focal_loss_zero_dim():
    """np.negative of a 0-d array is a scalar, which the sigmoid kernel rejected (TypeError)."""
    v, g = sl.value_and_grad(sl.sigmoid_focal_loss)(np.array(1.5), np.array(1.0), reduction="none")
    want, gwant = _mp_focal(1.5, 1.0, 0.25, 2.0)
    assert np.shape(v) == () and abs(float(v) - want) <= 1e-15 * abs(want)
    assert np.shape(g) == () and abs(float(g) - gwant) <= 1e-15 * abs(gwant)


@pytest.mark.parametrize("dt", [F16, BF16, F32], ids=["float16", "bfloat16", "float32"])
def test_regression_empty_sigmoid_ce_with_empty_pos_weight(dt):
    """half_run takes a last axis of length 0 as 1: an empty half input with a (0,) pos_weight
    raised ValueError from the kernel."""
    x = np.zeros((2, 0), dt)
    for red, want in (("none", np.zeros((2, 0))), ("sum", 0.0)):
        v = sl.sigmoid_cross_entropy(x, x, pos_weight=np.zeros(0), reduction=red)
        assert np.shape(v) == np.shape(want) and v.dtype == dt and np.all(np.asarray(v) == want)
    assert np.isnan(sl.sigmoid_cross_entropy(x, x, pos_weight=np.zeros(0)))


def test_regression_multi_axis_logsumexp_of_empty_arrays():
    """reshape(..., -1) of an empty array is ambiguous: logsumexp over several axes raised."""
    x = np.zeros((0, 0, 3))
    assert sl.logsumexp(x, axis=(0, 1)).shape == (3,)
    assert np.all(sl.logsumexp(x, axis=(0, 1)) == -np.inf)
    assert sl.logsumexp(x, axis=(1, 2)).shape == (0,)
    assert sl.logsumexp(np.zeros((2, 0, 0)), axis=(1, 2), keepdims=True).shape == (2, 1, 1)
    _, g = sl.value_and_grad(sl.logsumexp)(x, axis=(0, 1))
    assert g.shape == x.shape
