"""Regression tests for the exact (confident-row) path of the softmax-family kernels.

Expected values are closed forms: for a row [a, b, b, ...] with target at a > b, the
loss is log1p((C-1) e^(b-a)) and the gradient at the target is -(C-1)e^(b-a)/(1+(C-1)e^(b-a)).
"""
import math

import numpy as np
import pytest

import stableloss as sl


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [2, 3, 17, 40, 1025])
def test_nan_in_a_confident_row_is_nan(dtype, C):
    x = np.zeros((1, C), dtype)
    x[0, 0] = 30
    x[0, C // 2] = np.nan
    loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, np.array([0]), reduction="none")
    assert np.isnan(loss).all() and np.isnan(g).all()
    assert np.isnan(sl.logsumexp(x)).all() and np.isnan(sl.log_softmax(x)).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [2, 3, 17, 40, 1025])
def test_minus_inf_in_a_confident_row(dtype, C):
    x = np.zeros((1, C), dtype)
    x[0, 0] = 25
    x[0, 1] = -np.inf
    k = C - 2                              # entries equal to 0
    s = k * math.exp(-25.0)
    loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, np.array([0]), reduction="none")
    tol = 1e-6 if dtype == np.float32 else 1e-14
    if k:
        assert abs(loss[0] / math.log1p(s) - 1) < tol
        assert abs(g[0, 0] / (-s / (1 + s)) - 1) < tol
    else:
        assert loss[0] == 0 and g[0, 0] == 0
    assert g[0, 1] == 0 and np.isfinite(g).all()
    assert abs(sl.logsumexp(x)[0] - (25 + math.log1p(s))) <= tol * 25


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_confident_value_bitwise_equal_to_forward(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 1000)).astype(dtype)
    t = rng.integers(0, 1000, 300)
    x[np.arange(300), t] = x.max(axis=1) + rng.uniform(0, 60, 300).astype(dtype)
    for red in ("none", "mean", "sum"):
        v, _ = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, reduction=red)
        assert np.asarray(v).tobytes() == np.asarray(sl.softmax_cross_entropy(x, t, reduction=red)).tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_tied_maximum_at_target(dtype):
    # [a, a, b]: target ties the max; loss = log(2 + e^(b-a)) (>= log 2), grad_t = p_t - 1
    x = np.array([[5.0, 5.0, 0.0]], dtype)
    s = 1 + math.exp(-5.0)
    loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, np.array([1]), reduction="none")
    tol = 1e-6 if dtype == np.float32 else 1e-14
    assert abs(loss[0] / math.log1p(s) - 1) < tol
    assert abs(g[0, 1] / (-s / (1 + s)) - 1) < tol
    assert abs(g[0, 0] / (1 / (1 + s)) - 1) < tol
