"""stableloss.tf without TensorFlow: the documented TF numbers (derived by hand or recorded from
TF 2.21's outputs) and the core
parameters the mirror added, checked against independent NumPy / mpmath computations.
Runs whether or not TensorFlow is installed (tests/test_tf_mirror.py covers TF itself)."""
import numpy as np
import pytest

import stableloss as sl
from stableloss import tf as stf
from stableloss.tf.compat.v1 import losses as v1

F32 = np.float32


def _softmax64(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_dense_gradient_is_softmax_minus_labels(dt):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4)).astype(dt)
    y = (rng.dirichlet(np.ones(4), 5) * rng.uniform(0.2, 3, (5, 1))).astype(dt)   # rows not summing to 1
    loss, (gy, gx) = sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=(0, 1))(y, x)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    lsm = x64 - x64.max(-1, keepdims=True) - np.log(np.exp(x64 - x64.max(-1, keepdims=True)).sum(-1, keepdims=True))
    tol = 1e-6 if dt == np.float32 else 1e-13
    np.testing.assert_allclose(loss, -(y64 * lsm).sum(-1), rtol=tol)
    np.testing.assert_allclose(gx, _softmax64(x64) - y64, rtol=tol, atol=tol)
    np.testing.assert_allclose(gy, -lsm, rtol=tol, atol=tol)
    # the core keeps the true derivative
    g_true = sl.grad(sl.softmax_cross_entropy)(x, y, reduction="sum")
    np.testing.assert_allclose(g_true, y64.sum(-1, keepdims=True) * _softmax64(x64) - y64, rtol=tol, atol=tol)


def test_doc_values():
    g = sl.grad(stf.nn.softmax_cross_entropy_with_logits, argnums=1)(np.array([[2., 0, 0]], F32),
                                                                      np.array([[4., 2, 1]], F32))
    np.testing.assert_allclose(g, [[-1.1562053, 0.1141952, 0.042010065]], rtol=1e-6)
    assert v1.log_loss([1.0], [1.0]) == F32(-1.1920928e-07)
    from stableloss import _guard
    _guard.reset_misuse_warnings()
    # TF's own docstring example passes rows that sum to 1 as logits: the guard says so
    with pytest.warns(sl.MisuseWarning, match="looks like a softmax output"):
        got = v1.softmax_cross_entropy([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
                                       weights=[0.3, 0.7], label_smoothing=0.2)
    assert float(got) == pytest.approx(0.5761805, rel=1e-6)


def _tf_weighted_f32(z, x, q):
    """TF's formula evaluated operation by operation in float32 (NumPy)."""
    z, x, q = (np.asarray(a, F32) for a in (z, x, q))
    l = F32(1) + (q - F32(1)) * z
    with np.errstate(invalid="ignore"):
        return (F32(1) - z) * x + l * (np.log1p(np.exp(-np.abs(x))) + np.maximum(-x, F32(0)))


def test_weighted_form_matches_tf_formula_elementwise():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.standard_normal(40) * 30, [0., -20., 30., np.inf, -np.inf]]).astype(F32)
    z = rng.uniform(0, 1, x.shape).astype(F32)
    z[:10] = np.round(z[:10])
    q = rng.uniform(0.2, 4, x.shape).astype(F32)            # a full-size pos_weight
    ours = stf.nn.weighted_cross_entropy_with_logits(z, x, q)
    want = _tf_weighted_f32(z, x, q)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(ours[ok], want[ok], rtol=2e-6, atol=2e-6 * np.abs(x[ok]).max())
    assert stf.nn.weighted_cross_entropy_with_logits(F32([0]), F32([-20]), 1.0)[0] == 0.0


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_weighted_gradient_tf_form(dt):
    x = np.array([-3., -0.5, 0.0, 0.0, 0.7, 4.0], dt)
    z = np.array([0.3, 1.0, 1.0, 0.0, 0.2, 0.9], dt)
    q = 2.5
    g = sl.grad(stf.nn.weighted_cross_entropy_with_logits, argnums=1)(z, x, q)
    x64, z64 = x.astype(np.float64), z.astype(np.float64)
    L = 1 + (q - 1) * z64
    want = np.where(x64 == 0, 1 - z64, (1 - z64) - L / (1 + np.exp(x64)))     # TF: 1 - z at exactly 0
    np.testing.assert_allclose(g, want, rtol=1e-6, atol=1e-7)


def test_sigmoid_infinities_as_tf():
    x = F32([np.inf, np.inf, -np.inf, -np.inf, -np.inf])
    z = F32([1, 0, 0, 1, 0.5])
    got = stf.nn.sigmoid_cross_entropy_with_logits(z, x)
    assert np.isnan(got[:3]).all() and got[3] == np.inf and got[4] == np.inf
    core = sl.sigmoid_cross_entropy(x, z, reduction="none")           # the core keeps the limits
    assert core[0] == 0.0 and core[2] == 0.0


def test_log_loss_add_policy_rounds_in_float32():
    # float32: 1 + 1e-7 rounds to 1 + 2^-23 before the log
    p, z = F32([1.0, 0.0, 0.5]), F32([1.0, 0.0, 1.0])
    got = sl.binary_cross_entropy(p, z, policy="add", reduction="none")
    assert got[0] == got[1] == F32(-np.log1p(2.0 ** -23))
    assert got[2] == pytest.approx(-np.log(float(F32(0.5) + F32(1e-7))), rel=1e-7)
    got64 = sl.binary_cross_entropy(p.astype(np.float64), z.astype(np.float64), policy="add", reduction="none")
    assert got64[0] == -np.log(1 + 1e-7)


def test_v1_reduction_table_and_float32():
    L = F32([0.40760595, 0.16984604, 1.0986123, 5.054985])
    w = F32([1, 0, 2, 0.5])
    assert v1.compute_weighted_loss(L, w) == F32(np.float32(5.1323233) / F32(3))
    assert v1.compute_weighted_loss(L, w, reduction="weighted_mean") == pytest.approx(1.4663781, rel=1e-7)
    r = v1.compute_weighted_loss(np.array([1.0, 1e-12]), reduction="weighted_sum")
    assert r.dtype == np.float64 and r == 1.0


def test_confident_rows_exact():
    # f32 [30, 0, 0], target 0: exact loss log1p(2 e^-30) (TF: 0.0)
    x = F32([[30, 0, 0]])
    for v in (stf.nn.sparse_softmax_cross_entropy_with_logits(np.array([0]), x),
              stf.nn.softmax_cross_entropy_with_logits(F32([[1, 0, 0]]), x)):
        assert v[0] == pytest.approx(np.log1p(2 * np.exp(-30.0)), rel=2e-7)


def test_errors_without_tf_types():
    with pytest.raises(stf.errors.InvalidArgumentError, match="outside the valid range"):
        stf.nn.sparse_softmax_cross_entropy_with_logits(np.array([3]), F32([[1, 2, 3]]))
    with pytest.raises(ValueError):
        stf.nn.softmax(F32(1.0))
    with pytest.raises(TypeError, match="only takes keyword args"):
        stf.raw_ops.SoftmaxCrossEntropyWithLogits(F32([[1, 2]]), F32([[0, 1]]))
    r = stf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=F32([[1, 2]]), labels=np.array([1]))
    assert r._fields == ("loss", "backprop")
    np.testing.assert_allclose(r.backprop, _softmax64(np.array([[1., 2]])) - [[0, 1]], rtol=1e-6)


def test_tf_keras_alias_is_stableloss_keras():
    import stableloss.keras
    import stableloss.tf
    assert stableloss.tf.keras.losses is stableloss.keras.losses
    assert stableloss.tf.keras.losses.CategoricalCrossentropy is stableloss.keras.losses.CategoricalCrossentropy
