"""logsumexp over several axes / all axes (axis=tuple or None), against SciPy and mpmath."""
import numpy as np
import pytest
from scipy.special import logsumexp as sp_lse

import stableloss as sl
import _reference as ref

X = np.random.default_rng(0).normal(size=(3, 4, 5)) * 3


@pytest.mark.parametrize("axis", [(0, 2), (1, 2), [2, 0], None, (0, 1, 2), (-1,), (-3, -2)], ids=str)
@pytest.mark.parametrize("keepdims", [False, True])
def test_value_and_gradient(axis, keepdims):
    sp_axis = tuple(axis) if isinstance(axis, list) else axis
    want = sp_lse(X, axis=sp_axis, keepdims=keepdims)
    got = sl.logsumexp(X, axis, keepdims)
    assert got.shape == np.shape(want)
    np.testing.assert_allclose(got, want, rtol=1e-14)
    go = np.random.default_rng(1).normal(size=np.shape(want))
    v, g = sl.value_and_grad(sl.logsumexp)(X, axis, keepdims, grad_output=go)
    np.testing.assert_array_equal(v, got)
    full = sp_lse(X, axis=sp_axis, keepdims=True)
    axes = tuple(range(3)) if axis is None else tuple(sorted(a % 3 for a in axis))
    go_k = go if keepdims else np.expand_dims(go, axes)
    np.testing.assert_allclose(g, go_k * np.exp(X - full), rtol=1e-13)


def test_multi_axis_exact_on_confident_block():
    # one dominant entry across a 2x3 block: lse - m = log1p(5 e^-40), kept to full accuracy
    x = np.full((2, 3), -40.0)
    x[1, 2] = 0.0
    want = ref.logsumexp(x.reshape(1, 6))[0]
    assert want > 0
    np.testing.assert_allclose(sl.logsumexp(x, axis=None), want, rtol=1e-15)


def test_grad_out_and_dtype_kept():
    g = np.empty_like(X)
    _, r = sl.value_and_grad(sl.logsumexp)(X, (0, 1), grad_out=g)
    assert r is g
    assert sl.logsumexp(X.astype(np.float16), (0, 1)).dtype == np.float16
    assert sl.logsumexp(np.float64(3.0), None) == 3.0


@pytest.mark.parametrize("axis,exc", [((1, 1), ValueError), ((), ValueError), ((0, 3), np.exceptions.AxisError)],
                         ids=str)
def test_bad_axes(axis, exc):
    with pytest.raises(exc, match="axis"):
        sl.logsumexp(X, axis)
