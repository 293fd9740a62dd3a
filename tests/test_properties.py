"""Hypothesis property tests of stableloss.

Number of examples comes from the hypothesis profile selected by the environment variable
``STABLELOSS_HYPOTHESIS_PROFILE`` (``ci`` by default, ``thorough`` for long runs), registered
in tests/conftest.py.  Inputs are small (N <= 6 rows, C <= 40 classes) so every test stays
well under a few seconds with the ci profile.

Tolerances are in units of ``eps = finfo(dtype).eps`` and are justified next to each test.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import stableloss as sl

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SETTINGS = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------
@st.composite
def logits_2d(draw, max_n=6, max_c=40, bound=1e3, dtypes=DTYPES, min_c=1):
    dt = draw(st.sampled_from(dtypes))
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(min_c, max_c))
    width = 32 if dt == np.float32 else 64
    x = draw(hnp.arrays(dt, (n, c), elements=st.floats(-bound, bound, width=width)))
    return x


@st.composite
def grid_logits(draw):
    """Logits on the grid k/8 with |k| <= 800 plus an integer shift s with |s| <= 1000:
    x, x + s and every difference are exactly representable in float32 and float64."""
    dt = draw(st.sampled_from(DTYPES))
    n = draw(st.integers(1, 6))
    c = draw(st.integers(1, 40))
    k = draw(hnp.arrays(np.int64, (n, c), elements=st.integers(-800, 800)))
    s = draw(st.integers(-1000, 1000))
    x = (k / 8.0).astype(dt)
    xs = (k / 8.0 + s).astype(dt)
    assert np.array_equal(xs.astype(np.float64) - s, x.astype(np.float64))
    return x, xs


def _labels(draw, n, c):
    return draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))


# ---------------------------------------------------------------------------------------------
# softmax / log_softmax
# ---------------------------------------------------------------------------------------------
@SETTINGS
@given(logits_2d())
def test_softmax_rows_sum_to_one(x):
    p = sl.softmax(x)
    assert p.dtype == x.dtype and p.shape == x.shape
    assert np.all(p >= 0) and np.all(p <= 1)
    c = x.shape[1]
    eps = np.finfo(x.dtype).eps
    # p_c = e_c / S (each ~2 eps relative) with S a sum of c terms (<= c eps/2 relative): the
    # row sum (taken exactly enough in float64) is within (c + 8) eps of 1.
    s = np.sum(p.astype(np.float64), axis=1)
    assert np.all(np.abs(s - 1) <= (c + 8) * eps), (s - 1, x)


@SETTINGS
@given(logits_2d())
def test_log_softmax_nonpositive(x):
    lp = sl.log_softmax(x)
    assert lp.dtype == x.dtype
    # lp_c = (x_c - m) - log S with x_c - m <= 0 and S >= 1 (monotone rounding): exactly <= 0
    assert np.all(lp <= 0), x
    assert np.all(np.isfinite(lp))


@SETTINGS
@given(grid_logits())
def test_softmax_shift_invariance(pair):
    x, xs = pair
    eps = np.finfo(x.dtype).eps
    p1, p2 = sl.softmax(x).astype(np.float64), sl.softmax(xs).astype(np.float64)
    # the shift is exact, so the shifted logits x_c - max(x) are the same numbers; only the
    # rounding of the max-subtraction could differ -- it cannot (exact) -- and of the final
    # exp/log (a few eps relative, amplified by |lp| <= 200 in exp(lp)).
    lp = np.log(np.maximum(np.minimum(p1, p2), np.finfo(np.float64).tiny))
    tol = 8 * eps * np.maximum(1, np.abs(lp)) * np.maximum(p1, p2) + np.finfo(x.dtype).tiny
    assert np.all(np.abs(p1 - p2) <= tol), (x, xs)


@SETTINGS
@given(grid_logits(), st.data())
def test_ce_loss_shift_invariance(pair, data):
    x, xs = pair
    n, c = x.shape
    y = _labels(data.draw, n, c)
    eps = np.finfo(x.dtype).eps
    l1 = sl.softmax_cross_entropy(x, y, reduction="none").astype(np.float64)
    l2 = sl.softmax_cross_entropy(xs, y, reduction="none").astype(np.float64)
    # loss = (m - x_y) + log S from identical exact differences: a few eps relative
    assert np.all(np.abs(l1 - l2) <= 8 * eps * np.abs(l1) + np.finfo(x.dtype).tiny), (x, xs, y)


@SETTINGS
@given(logits_2d(), st.data())
def test_ce_grad_rows_sum_to_zero(x, data):
    n, c = x.shape
    y = _labels(data.draw, n, c)
    _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none")
    assert g.dtype == x.dtype and g.shape == x.shape
    eps = np.finfo(x.dtype).eps
    # g = p - onehot: sum_j g_j = sum_j p_j - 1, within the softmax row-sum bound
    s = np.sum(g.astype(np.float64), axis=1)
    assert np.all(np.abs(s) <= (c + 8) * eps), (s, x, y)
    # every p_j - [j = y] lies in [-1, 1]
    assert np.all(np.abs(g) <= 1)


# ---------------------------------------------------------------------------------------------
# value_and_grad's value is bit-for-bit f(...) for every registered function
# ---------------------------------------------------------------------------------------------
def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _cotangent(draw, value, dt):
    if draw(st.booleans()):
        return None
    shape = np.shape(value)
    if shape == ():
        return float(draw(st.floats(-3, 3)))
    return draw(hnp.arrays(dt, shape, elements=st.floats(-3, 3, width=dt.itemsize * 8)))


def _call_case(draw):
    """Draw (f, args, kwargs, argnums) with valid random inputs for a registered function."""
    name = draw(st.sampled_from([
        "logsumexp", "softmax", "log_softmax", "sigmoid", "log_sigmoid", "ce_index", "ce_prob",
        "nll_loss", "sigmoid_cross_entropy", "binary_cross_entropy"]))
    dt = draw(st.sampled_from(DTYPES))
    width = dt.itemsize * 8
    n = draw(st.integers(1, 5))
    c = draw(st.integers(1, 12))
    fl = lambda lo, hi, shape: draw(hnp.arrays(dt, shape, elements=st.floats(lo, hi, width=width)))
    x = fl(-50, 50, (n, c))
    red = draw(st.sampled_from(["none", "sum", "mean"]))
    if name == "logsumexp":
        return sl.logsumexp, (x,), dict(axis=draw(st.sampled_from([-1, 0])),
                                        keepdims=draw(st.booleans())), 0
    if name in ("softmax", "log_softmax"):
        return getattr(sl, name), (x,), dict(axis=draw(st.sampled_from([-1, 0]))), 0
    if name in ("sigmoid", "log_sigmoid"):
        return getattr(sl, name), (x,), {}, 0
    if name in ("ce_index", "nll_loss"):
        y = draw(hnp.arrays(np.int64, (n,), elements=st.integers(0, c - 1)))
        kw = dict(reduction=red)
        if draw(st.booleans()):
            kw["weight"] = fl(0.25, 4, (c,))
        ig = draw(st.sampled_from([None, -100, 0]))
        if ig is not None:
            kw["ignore_index"] = ig
            if ig == -100 and n > 1:
                y[0] = -100
        if name == "nll_loss":
            return sl.nll_loss, (x, y), kw, 0
        kw["label_smoothing"] = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
        return sl.softmax_cross_entropy, (x, y), kw, 0
    if name == "ce_prob":
        z = fl(0, 1, (n, c))
        kw = dict(reduction=red, label_smoothing=draw(st.sampled_from([0.0, 0.2])))
        if draw(st.booleans()):
            kw["weight"] = fl(0.25, 4, (c,))
        return sl.softmax_cross_entropy, (x, z), kw, draw(st.sampled_from([0, 1, (0, 1)]))
    if name == "sigmoid_cross_entropy":
        z = fl(0, 1, (n, c))
        kw = dict(reduction=red)
        if draw(st.booleans()):
            kw["weight"] = fl(0.25, 4, (n, c))
        if draw(st.booleans()):
            kw["pos_weight"] = fl(0.25, 4, (c,))
        return sl.sigmoid_cross_entropy, (x, z), kw, draw(st.sampled_from([0, 1, (0, 1)]))
    p = fl(0, 1, (n, c))
    z = fl(0, 1, (n, c))
    kw = dict(reduction=red, policy=draw(st.sampled_from(["clamp", "clip", "add", "exact"])))
    if kw["policy"] == "exact":
        p = np.clip(p, dt.type(0.01), dt.type(0.99))  # keep the unprotected logs finite
    if draw(st.booleans()):
        kw["weight"] = fl(0.25, 4, (n, c))
    return sl.binary_cross_entropy, (p, z), kw, 0


@SETTINGS
@given(st.data())
def test_value_and_grad_value_is_bitwise_f(data):
    f, args, kw, argnums = _call_case(data.draw)
    want = f(*args, **kw)
    dt = np.asarray(args[0]).dtype
    go = _cotangent(data.draw, want, dt)
    extra = {} if go is None else {"grad_output": go}
    val, grads = sl.value_and_grad(f, argnums=argnums)(*args, **kw, **extra)
    assert _same_bits(val, want), (f.__name__, kw, val, want)
    assert type(val) is type(want)
    # gradients: right count, shapes and dtypes
    idx = argnums if isinstance(argnums, tuple) else (argnums,)
    gs = grads if isinstance(argnums, tuple) else (grads,)
    assert len(gs) == len(idx)
    for i, g in zip(idx, gs):
        assert isinstance(g, np.ndarray)
        assert g.shape == np.shape(args[i]) and g.dtype == dt, (f.__name__, i, g.shape, g.dtype)
    # sl.grad returns the same gradients, bit for bit
    g2 = sl.grad(f, argnums=argnums)(*args, **kw, **extra)
    g2s = g2 if isinstance(argnums, tuple) else (g2,)
    for a, b in zip(gs, g2s):
        assert _same_bits(a, b)


@SETTINGS
@given(logits_2d(max_c=20), st.data())
def test_value_and_grad_ce_families_bitwise(x, data):
    """Same property on wider-range logits (|x| <= 1e3) with -inf entries sprinkled in."""
    n, c = x.shape
    y = _labels(data.draw, n, c)
    mask = data.draw(hnp.arrays(np.bool_, x.shape))
    x = np.where(mask, x.dtype.type(-np.inf), x)
    for red in ("none", "sum", "mean"):
        want = sl.softmax_cross_entropy(x, y, reduction=red)
        val, _ = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction=red)
        assert _same_bits(val, want), (red, x, y)


def test_unregistered_function_raises():
    # (whether at wrapping time or at call time)
    with pytest.raises(TypeError):
        sl.value_and_grad(np.exp)(np.ones(3))
    with pytest.raises(TypeError):
        sl.grad(lambda x: x)(np.ones(3))
