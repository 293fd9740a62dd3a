"""docs/porting.md, row by row: each TF/Keras call against its PyTorch counterpart, both
through the stableloss mirrors (which tests/test_tf_mirror.py, test_keras_mirror.py and
test_torch_mirror.py hold to the real frameworks). Each test shows the two agree, or
differ exactly as the table says. No framework is needed to run this file.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import stableloss as sl
import stableloss.keras.losses as KL
import stableloss.tf as T
import stableloss.torch as ST
from stableloss.torch.nn import functional as F

R = np.random.default_rng(2024)
X = R.normal(size=(6, 5)) * 2                       # logits, class axis last (TF) = dim 1 (torch, 2-D)
Y = R.dirichlet(np.ones(5), size=6)                  # probability rows
I = R.integers(0, 5, size=6)                         # class indices
OH = np.eye(5)[I]                                    # one-hot


@pytest.fixture(autouse=True)
def _quiet():
    prev = sl.set_misuse_warnings(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    sl.set_misuse_warnings(prev)


def close(a, b, rtol=1e-13):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=1e-15)


def test_row_softmax():
    close(T.nn.softmax(X), F.softmax(X, dim=-1))
    close(T.nn.log_softmax(X), F.log_softmax(X, dim=-1))
    # TF's default axis is -1; torch's dim=None is the implicit rule (1 for 2-D, 0 for 3-D)
    X3 = R.normal(size=(2, 3, 4))
    close(T.nn.softmax(X3), F.softmax(X3, dim=-1))
    assert not np.allclose(T.nn.softmax(X3), F.softmax(X3))        # torch's implicit dim is 0 here


def test_row_reduce_logsumexp():
    close(T.math.reduce_logsumexp(X), ST.logsumexp(X, dim=tuple(range(X.ndim))))
    close(T.math.reduce_logsumexp(X, axis=1), ST.logsumexp(X, 1))
    with pytest.raises(TypeError):
        ST.logsumexp(X)                                  # torch: dim is required


def test_row_dense_softmax_ce():
    Yu = Y * R.uniform(0.5, 2.0, size=(6, 1))            # unnormalised label rows
    close(T.nn.softmax_cross_entropy_with_logits(Yu, X), F.cross_entropy(X, Yu, reduction="none"))
    _, g_tf = sl.value_and_grad(T.nn.softmax_cross_entropy_with_logits, argnums=1)(Yu, X)
    _, g_pt = sl.value_and_grad(F.cross_entropy)(X, Yu, reduction="none")
    p = sl.softmax(X)
    close(g_tf, p - Yu)                                  # TF: softmax - y
    close(g_pt, Yu.sum(1, keepdims=True) * p - Yu)      # torch: (sum y) softmax - y
    _, g_tf1 = sl.value_and_grad(T.nn.softmax_cross_entropy_with_logits, argnums=1)(Y, X)
    _, g_pt1 = sl.value_and_grad(F.cross_entropy)(X, Y, reduction="none")
    close(g_tf1, g_pt1, rtol=1e-12)                      # equal when rows sum to 1
    # labels gradient (TF gives one): -log_softmax
    _, gl = sl.value_and_grad(T.nn.softmax_cross_entropy_with_logits, argnums=0)(Yu, X)
    close(gl, -sl.log_softmax(X))


def test_row_sparse_softmax_ce():
    close(T.nn.sparse_softmax_cross_entropy_with_logits(I, X), F.cross_entropy(X, I, reduction="none"))
    bad = I.copy()
    bad[0] = -100
    assert F.cross_entropy(X, bad, reduction="none")[0] == 0.0     # torch ignores -100 by default
    with pytest.raises(T.InvalidArgumentError):                      # TF: every bad label is an error
        T.nn.sparse_softmax_cross_entropy_with_logits(bad, X)
    bad[0] = 5
    with pytest.raises(IndexError, match="Target 5 is out of bounds."):
        F.cross_entropy(X, bad)
    with pytest.raises(T.InvalidArgumentError):
        T.nn.sparse_softmax_cross_entropy_with_logits(bad, X)


def test_row_sigmoid_ce():
    Z = R.uniform(size=(6, 5))
    close(T.nn.sigmoid_cross_entropy_with_logits(labels=Z, logits=X),
          F.binary_cross_entropy_with_logits(X, Z, reduction="none"))
    x = np.array([np.inf, -np.inf, np.inf, -np.inf])
    z = np.array([0.0, 1.0, 1.0, 0.0])
    tf_v = T.nn.sigmoid_cross_entropy_with_logits(labels=z, logits=x)
    pt_v = F.binary_cross_entropy_with_logits(x, z, reduction="none")
    assert np.isnan(tf_v[0]) and pt_v[0] == np.inf                  # (+inf, 0)
    assert tf_v[1] == np.inf and np.isnan(pt_v[1])                  # (-inf, 1)
    assert np.isnan(tf_v[2:]).all() and np.isnan(pt_v[2:]).all()    # (+inf, 1), (-inf, 0)


def test_row_weighted_ce():
    Z = (R.uniform(size=(6, 5)) > 0.5) * 1.0
    q = 3.0
    close(T.nn.weighted_cross_entropy_with_logits(Z, X, q),
          F.binary_cross_entropy_with_logits(X, Z, pos_weight=np.array(q), reduction="none"), rtol=1e-12)
    # the gradient at x = 0: TF 1 - z (wrong), torch's q z ... = correct
    x0, z1 = np.array([0.0]), np.array([1.0])
    _, g_tf = sl.value_and_grad(T.nn.weighted_cross_entropy_with_logits, argnums=1)(z1, x0, q)
    _, g_pt = sl.value_and_grad(F.binary_cross_entropy_with_logits)(x0, z1, pos_weight=np.array(q), reduction="none")
    assert g_tf[0] == 0.0 and g_pt[0] == -1.5
    # very negative logit (float32): TF's formula cancels to 0; the torch mirror returns the
    # true value (torch itself returns 0 there too: the mirror is exact on purpose)
    f32 = np.float32
    v_tf = T.nn.weighted_cross_entropy_with_logits(np.array([0.0], f32), np.array([-20.0], f32), f32(q))
    v_pt = F.binary_cross_entropy_with_logits(np.array([-20.0], f32), np.array([0.0], f32),
                                              pos_weight=np.array(q, f32), reduction="none")
    assert v_tf[0] == 0.0
    close(v_pt, np.log1p(np.exp(-20.0)), rtol=1e-6)


def test_row_log_loss():
    p = np.array([0.0, 1.0, 0.3, 0.7], np.float32)
    z = np.array([1.0, 1.0, 0.0, 1.0], np.float32)
    tf_l = T.compat.v1.losses.log_loss(z, p, reduction=T.compat.v1.losses.Reduction.NONE)
    pt_l = F.binary_cross_entropy(p, z, reduction="none")
    np.testing.assert_allclose(tf_l[0], 16.118095, rtol=1e-6)      # log(0 + 1e-7)
    assert pt_l[0] == 100.0                                        # torch clamps the log at -100
    assert tf_l[1] == np.float32(-1.1920928e-07) and pt_l[1] == 0  # a perfect prediction
    close(tf_l[2:], pt_l[2:], rtol=1e-5)                           # in between: agree (to eps)


def test_row_v1_softmax_ce():
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    for ls in (0.0, 0.2):
        tf_v = T.compat.v1.losses.softmax_cross_entropy(OH, X, weights=w, label_smoothing=ls)
        l = F.cross_entropy(X, OH, label_smoothing=ls, reduction="none")
        close(tf_v, (l * w).sum() / (w != 0).sum(), rtol=1e-6)       # TF reduces in float32
    with pytest.raises(RuntimeError, match="label_smoothing must be between 0.0 and 1.0"):
        F.cross_entropy(X, OH, label_smoothing=1.5)


def test_row_v1_sparse_ce():
    w = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    tf_v = T.compat.v1.losses.sparse_softmax_cross_entropy(I, X, weights=w)
    l = F.cross_entropy(X, I, reduction="none")
    close(tf_v, (l * w).sum() / (w != 0).sum(), rtol=1e-6)


def test_row_v1_sigmoid_ce():
    Z = (R.uniform(size=(6, 5)) > 0.5) * 1.0
    ls = 0.2
    tf_v = T.compat.v1.losses.sigmoid_cross_entropy(Z, X, label_smoothing=ls)
    pt_v = F.binary_cross_entropy_with_logits(X, Z * (1 - ls) + 0.5 * ls)
    close(tf_v, pt_v, rtol=1e-6)


def test_row_keras_bce():
    p = R.uniform(0.01, 0.99, size=(6, 5))
    y = (R.uniform(size=(6, 5)) > 0.5) * 1.0
    close(KL.BinaryCrossentropy(dtype="float64")(y, p), F.binary_cross_entropy(p, y), rtol=1e-6)   # Keras's eps-level clip
    y0, p0 = np.array([[1.0]], np.float32), np.array([[0.0]], np.float32)
    np.testing.assert_allclose(KL.BinaryCrossentropy()(y0, p0), 16.118095, rtol=1e-6)  # clipped to 1e-7
    assert F.binary_cross_entropy(p0, y0) == 100.0
    _, gk = sl.value_and_grad(KL.BinaryCrossentropy(), argnums=1)(y0, p0)
    _, gt = sl.value_and_grad(F.binary_cross_entropy)(p0, y0)
    assert gk[0, 0] == 0.0 and gt[0, 0] < -1e11                  # zero gradient outside the clip


def test_row_keras_bce_logits():
    y = (R.uniform(size=(6, 5)) > 0.5) * 1.0
    close(KL.BinaryCrossentropy(from_logits=True, dtype="float64")(y, X), F.binary_cross_entropy_with_logits(X, y), rtol=1e-12)


def test_row_keras_cce_logits():
    for ls in (0.0, 0.1):
        close(KL.CategoricalCrossentropy(from_logits=True, label_smoothing=ls, dtype="float64")(Y, X),
              F.cross_entropy(X, Y, label_smoothing=ls), rtol=1e-12)
    Yu = Y * 2.0
    _, gk = sl.value_and_grad(KL.CategoricalCrossentropy(from_logits=True, dtype="float64"), argnums=1)(Yu, X)
    _, gt = sl.value_and_grad(F.cross_entropy)(X, Yu)
    p = sl.softmax(X)
    close(gk, (p - Yu) / 6)                                       # TF's softmax - y, over the batch
    close(gt, (2.0 * p - Yu) / 6)


def test_row_keras_cce_probs():
    P = sl.softmax(X) * 1.7                                      # not normalised: Keras renormalises
    yk = KL.CategoricalCrossentropy(dtype="float64")(OH, P)
    lp = np.log(np.clip(P / P.sum(1, keepdims=True), 1e-7, 1 - 1e-7))
    close(yk, F.nll_loss(lp, I), rtol=1e-6)


def test_row_keras_scce_ignore():
    y = I.copy()
    y[:2] = 3
    close(KL.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3, dtype="float64")(y, X),
          F.cross_entropy(X, y, ignore_index=3), rtol=1e-12)
    allk = np.full(6, 3)
    assert KL.SparseCategoricalCrossentropy(from_logits=True, ignore_class=3)(allk, X) == 0.0
    assert np.isnan(F.cross_entropy(X, allk, ignore_index=3))


def test_row_keras_binary_focal():
    y = (R.uniform(size=(6, 5)) > 0.5) * 1.0
    for a, g in ((0.25, 2.0), (0.6, 0.5)):
        k = KL.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=a, gamma=g, from_logits=True,
                                       dtype="float64")(y, X)
        t = ST.ops.sigmoid_focal_loss(X, y, alpha=a, gamma=g, reduction="none").mean(-1).mean()
        close(k, t, rtol=1e-10)
    # without class balancing Keras applies no alpha; torchvision's alpha<0 is the same
    k = KL.BinaryFocalCrossentropy(gamma=2.0, from_logits=True, dtype="float64")(y, X)
    close(k, ST.ops.sigmoid_focal_loss(X, y, alpha=-1, gamma=2.0, reduction="mean"), rtol=1e-10)


def test_row_reductions():
    cw = np.array([1.0, 2.0, 0.5, 3.0, 1.5])
    sw = cw[I]                                                   # per-sample weights = class weight of y
    keras_v = KL.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")(I, X, sample_weight=sw)
    torch_v = F.cross_entropy(X, I, weight=cw)
    close(keras_v * len(I) / sw.sum(), torch_v, rtol=1e-12)      # Keras: sum(w l)/N; torch: sum(w l)/sum(w)
    keras_m = KL.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight",
                                               dtype="float64")(
        I, X, sample_weight=sw)
    close(keras_m, torch_v, rtol=1e-12)


def test_row_empty_means():
    # torch's mean of nothing is NaN; TF v1 gives 0.0
    assert np.isnan(F.cross_entropy(np.ones((0, 5)), np.zeros(0, np.int64)))
    assert T.compat.v1.losses.sparse_softmax_cross_entropy(np.zeros(0, np.int64), np.ones((0, 5))) == 0.0


def test_every_row_of_the_table_has_its_test():
    import pathlib
    import re
    doc = pathlib.Path(__file__).resolve().parents[1] / "docs" / "porting.md"
    if not doc.exists():
        pytest.skip("docs/ not shipped with this copy")
    rows = re.findall(r"^\| `(\w+)` \|", doc.read_text(), re.M)
    assert len(rows) >= 15
    missing = [r for r in rows if f"test_row_{r}" not in globals()]
    assert not missing, missing
