"""stableloss.tf against real TensorFlow (2.21, CPU): signatures, values and gradients
(tf.GradientTape) over a generated grid, errors, edge rows. Skipped without TensorFlow.

Count the generated cases with ``pytest --collect-only -q tests/test_tf_mirror.py | tail -1``
(every parametrized item is one case: one TF call and its tape against one stableloss
call with value_and_grad).

Tolerance: ``|ours - tf| <= tol * max(1, |tf|)`` elementwise (docs/tensorflow-keras.md
section 16: both are within ~3e-7 of the exact value in float32), with NaN and infinities
required in the same places. Confident rows (the target logit far ahead), where
stableloss returns the exact tiny loss and TensorFlow 0, fit in that tolerance; their
exact values are checked against mpmath in test_confident_rows_exact_not_tf_zero.
"""
import inspect
import itertools
import zlib

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import stableloss as sl                                        # noqa: E402
from stableloss import tf as stf                                # noqa: E402
from stableloss.tf.compat.v1 import losses as v1                # noqa: E402

import _reference as ref                                        # noqa: E402

TFV1 = tf.compat.v1.losses
TOL = {np.float32: 4e-6, np.float64: 1e-12}
DTYPES = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _quiet_guard():
    prev = sl.set_misuse_warnings(False)   # the grid feeds probabilities-like rows on purpose
    yield
    sl.set_misuse_warnings(prev)


def _rng(*key):
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


WORST = {}     # what -> largest scaled difference seen (printed at the end with -s)


@pytest.fixture(scope="module", autouse=True)
def _report_worst():
    yield
    if WORST:
        print("\nmax |ours - tf| / max(1, |tf|) per quantity:")
        for k in sorted(WORST):
            print(f"  {k:40s} {WORST[k]:.3g}")


def _match(ours, theirs, tol, what=""):
    a = np.asarray(ours)
    b = np.asarray(theirs)
    assert a.shape == b.shape, f"{what}: shape {a.shape} vs TF {b.shape}"
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    na, nb = np.isnan(a), np.isnan(b)
    assert np.array_equal(na, nb), f"{what}: NaN at {np.argwhere(na != nb)[:5].tolist()}\nours {a}\ntf {b}"
    inf = np.isinf(b)
    assert np.array_equal(a[inf], b[inf]), f"{what}: infinities differ\nours {a}\ntf {b}"
    fin = ~(nb | inf)
    err = np.abs(a[fin] - b[fin]) / np.maximum(1.0, np.abs(b[fin]))
    assert not np.isinf(a[fin]).any(), f"{what}: ours infinite where TF is finite\nours {a}\ntf {b}"
    worst = float(err.max()) if err.size else 0.0
    assert worst <= tol, f"{what}: max scaled difference {worst:.3g} > {tol:.3g}\nours {a}\ntf {b}"
    WORST[what] = max(WORST.get(what, 0.0), worst)
    return worst


def _tape(fn, diff, upstream=None):
    """TF value and gradients of fn() wrt the tensors `diff` (upstream cotangent optional)."""
    with tf.GradientTape(persistent=True) as t:
        for d in diff:
            t.watch(d)
        out = fn()
    grads = [t.gradient(out, d, output_gradients=upstream) for d in diff]
    return out, grads


def _up(rng, shape, dt):
    return rng.uniform(0.5, 1.5, shape).astype(dt)


def _logits(rng, shape, dt, kind):
    x = rng.standard_normal(shape) * 3
    if kind == "wide":
        x = rng.standard_normal(shape) * 300
    elif kind == "confident" and len(shape) and shape[-1] > 1:
        d = 25.0 if dt == np.float32 else 45.0
        x = rng.standard_normal(shape) * 0.5
        idx = rng.integers(0, shape[-1], shape[:-1])
        np.put_along_axis(x, idx[..., None], d, axis=-1)
    elif kind == "big":
        x = 1e4 + rng.integers(-3, 4, shape).astype(np.float64)
    elif kind == "neginf" and x.size:
        flat = x.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 5))] = -np.inf
    return x.astype(dt)


# ---------------------------------------------------------------- signatures
SIGNATURES = [
    (stf.nn.softmax, tf.nn.softmax), (stf.nn.log_softmax, tf.nn.log_softmax),
    (stf.nn.softmax_cross_entropy_with_logits, tf.nn.softmax_cross_entropy_with_logits),
    (stf.nn.sparse_softmax_cross_entropy_with_logits, tf.nn.sparse_softmax_cross_entropy_with_logits),
    (stf.nn.sigmoid_cross_entropy_with_logits, tf.nn.sigmoid_cross_entropy_with_logits),
    (stf.nn.weighted_cross_entropy_with_logits, tf.nn.weighted_cross_entropy_with_logits),
    (stf.math.reduce_logsumexp, tf.math.reduce_logsumexp), (stf.reduce_logsumexp, tf.reduce_logsumexp),
    (stf.math.sigmoid, tf.math.sigmoid), (stf.math.log_sigmoid, tf.math.log_sigmoid),
    (v1.log_loss, TFV1.log_loss), (v1.softmax_cross_entropy, TFV1.softmax_cross_entropy),
    (v1.sparse_softmax_cross_entropy, TFV1.sparse_softmax_cross_entropy),
    (v1.sigmoid_cross_entropy, TFV1.sigmoid_cross_entropy),
    (v1.compute_weighted_loss, TFV1.compute_weighted_loss),
    (stf.raw_ops.SoftmaxCrossEntropyWithLogits, tf.raw_ops.SoftmaxCrossEntropyWithLogits),
    (stf.raw_ops.SparseSoftmaxCrossEntropyWithLogits, tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits),
]


def _sig(f):
    """f's signature without annotations (the mirror's are typed): names, kinds and defaults."""
    s = inspect.signature(f)
    return s.replace(parameters=[p.replace(annotation=p.empty) for p in s.parameters.values()],
                     return_annotation=s.empty)


@pytest.mark.parametrize("ours,theirs", SIGNATURES, ids=lambda f: getattr(f, "__name__", "?"))
def test_signature(ours, theirs):
    assert _sig(ours) == _sig(theirs)


def test_reduction_constants():
    for k in ("NONE", "SUM", "MEAN", "SUM_OVER_BATCH_SIZE", "SUM_OVER_NONZERO_WEIGHTS", "SUM_BY_NONZERO_WEIGHTS"):
        assert getattr(v1.Reduction, k) == getattr(TFV1.Reduction, k)
    assert v1.Reduction.all() == TFV1.Reduction.all()
    with pytest.raises(ValueError) as theirs:
        TFV1.Reduction.validate("mean")
    with pytest.raises(ValueError) as ours:
        v1.Reduction.validate("mean")
    assert str(ours.value) == str(theirs.value)


def test_import_does_not_load_tensorflow():
    import subprocess
    import sys
    code = "import sys, stableloss.tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------- softmax / log_softmax
SOFTMAX_GRID = [c for c in itertools.product(
    ["softmax", "log_softmax"], [(7,), (3, 5), (2, 3, 4), (0, 3)], [None, 0, -1], DTYPES,
    ["normal", "wide", "neginf"])]


@pytest.mark.parametrize("fn,shape,axis,dt,kind", SOFTMAX_GRID)
def test_softmax_grid(fn, shape, axis, dt, kind):
    rng = _rng("sm", fn, shape, axis, dt, kind)
    x = _logits(rng, shape, dt, kind)
    up = _up(rng, shape, dt)
    xt = tf.constant(x)
    out, (g,) = _tape(lambda: getattr(tf.nn, fn)(xt, axis=axis), [xt], tf.constant(up))
    f = getattr(stf.nn, fn)
    val, mine = sl.value_and_grad(f)(x, axis=axis, grad_output=up)
    assert val.dtype == out.dtype.as_numpy_dtype
    _match(val, out.numpy(), TOL[dt], f"{fn} value")
    _match(mine, g.numpy(), TOL[dt], f"{fn} grad")
    np.testing.assert_array_equal(f(x, axis), val)


# ---------------------------------------------------------------- reduce_logsumexp
LSE_GRID = [c for c in itertools.product(
    [(6,), (3, 4), (2, 3, 4)], [None, 0, -1, (0, -1), []], [False, True], DTYPES,
    ["normal", "wide", "special"]) if not (c[1] == (0, -1) and len(c[0]) == 1)]


def _lse_input(rng, shape, dt, kind):
    if kind != "special":
        return _logits(rng, shape, dt, kind)
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    picks = rng.choice([np.inf, -np.inf, np.nan, -np.inf], size=max(2, flat.size // 4))
    flat[rng.choice(flat.size, size=picks.size, replace=False)] = picks
    return x.astype(dt)


@pytest.mark.parametrize("shape,axis,keepdims,dt,kind", LSE_GRID)
def test_reduce_logsumexp_grid(shape, axis, keepdims, dt, kind):
    rng = _rng("lse", shape, axis, keepdims, dt, kind)
    x = _lse_input(rng, shape, dt, kind)
    xt = tf.constant(x)
    out = tf.math.reduce_logsumexp(xt, axis=axis, keepdims=keepdims)
    up = _up(rng, out.shape, dt)
    out, (g,) = _tape(lambda: tf.math.reduce_logsumexp(xt, axis=axis, keepdims=keepdims), [xt], tf.constant(up))
    val, mine = sl.value_and_grad(stf.math.reduce_logsumexp)(x, axis, keepdims, grad_output=up)
    assert val.dtype == dt
    _match(val, out.numpy(), TOL[dt], "reduce_logsumexp value")
    _match(mine, g.numpy(), TOL[dt], "reduce_logsumexp grad")


# ---------------------------------------------------------------- sigmoid / log_sigmoid
SIG_GRID = list(itertools.product(["sigmoid", "log_sigmoid"], [(9,), (3, 4)], DTYPES, ["normal", "wide"]))


@pytest.mark.parametrize("fn,shape,dt,kind", SIG_GRID)
def test_sigmoid_grid(fn, shape, dt, kind):
    rng = _rng("sig", fn, shape, dt, kind)
    x = (rng.standard_normal(shape) * (3 if kind == "normal" else 40)).astype(dt)
    up = _up(rng, shape, dt)
    xt = tf.constant(x)
    out, (g,) = _tape(lambda: getattr(tf.math, fn)(xt), [xt], tf.constant(up))
    val, mine = sl.value_and_grad(getattr(stf.math, fn))(x, grad_output=up)
    _match(val, out.numpy(), TOL[dt], f"{fn} value")
    _match(mine, g.numpy(), TOL[dt], f"{fn} grad")


# ---------------------------------------------------------------- dense cross-entropy
def _labels(rng, shape, dt, kind, axis=-1):
    C = shape[axis] if len(shape) else 1
    moved = tuple(np.moveaxis(np.empty(shape), axis, -1).shape) if len(shape) else ()
    if kind == "onehot":
        y = np.eye(C)[rng.integers(0, C, moved[:-1])]
    elif kind == "soft":
        y = rng.dirichlet(np.ones(C), moved[:-1])
    elif kind == "unnorm":
        y = rng.dirichlet(np.ones(C), moved[:-1]) * 2.0
    else:  # "negative": anything goes, TF does not check
        y = rng.standard_normal(moved)
    y = np.moveaxis(y.reshape(moved), -1, axis)
    return y.astype(dt)


DENSE_GRID = [c for c in itertools.product(
    [(4, 5), (6,), (2, 3, 4), (5, 1)], [-1, 0], ["onehot", "soft", "unnorm", "negative"], DTYPES,
    ["normal", "wide", "confident", "neginf"])]


@pytest.mark.parametrize("shape,axis,lkind,dt,kind", DENSE_GRID)
def test_softmax_cross_entropy_with_logits_grid(shape, axis, lkind, dt, kind):
    rng = _rng("dense", shape, axis, lkind, dt, kind)
    x = _logits(rng, shape, dt, kind)
    y = _labels(rng, shape, dt, lkind, axis)
    oshape = tuple(s for i, s in enumerate(shape) if i != axis % len(shape))
    up = _up(rng, oshape, dt)
    xt, yt = tf.constant(x), tf.constant(y)
    out, (gy, gx) = _tape(lambda: tf.nn.softmax_cross_entropy_with_logits(yt, xt, axis=axis), [yt, xt],
                          tf.constant(up))
    val, (my, mx) = sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=(0, 1))(
        y, x, axis, grad_output=up)
    tol = TOL[dt] * (1 if kind != "wide" else 10)   # |x| ~ 1000: the loss has ~1000's ulp
    _match(val, out.numpy(), tol, "dense CE value")
    _match(mx, gx.numpy(), TOL[dt], "dense CE d/dlogits")
    _match(my, gy.numpy(), tol, "dense CE d/dlabels")


# ---------------------------------------------------------------- sparse cross-entropy
SPARSE_GRID = list(itertools.product([(4, 5), (6,), (2, 3, 4), (5, 1)], [np.int32, np.int64], DTYPES,
                                     ["normal", "wide", "confident", "neginf"]))


@pytest.mark.parametrize("shape,ldt,dt,kind", SPARSE_GRID)
def test_sparse_softmax_cross_entropy_with_logits_grid(shape, ldt, dt, kind):
    rng = _rng("sparse", shape, ldt, dt, kind)
    x = _logits(rng, shape, dt, kind)
    y = rng.integers(0, shape[-1], shape[:-1]).astype(ldt)
    up = _up(rng, shape[:-1], dt)
    xt = tf.constant(x)
    out, (gx,) = _tape(lambda: tf.nn.sparse_softmax_cross_entropy_with_logits(y, xt), [xt], tf.constant(up))
    val, mx = sl.value_and_grad(stf.nn.sparse_softmax_cross_entropy_with_logits, argnums=1)(y, x, grad_output=up)
    tol = TOL[dt] * (1 if kind != "wide" else 10)
    _match(val, out.numpy(), tol, "sparse CE value")
    _match(mx, gx.numpy(), TOL[dt], "sparse CE d/dlogits")


# ---------------------------------------------------------------- sigmoid / weighted CE
def _bin_logits(rng, shape, dt, kind):
    if kind == "normal":
        x = rng.standard_normal(shape) * 3
    elif kind == "wide":
        x = rng.standard_normal(shape) * 40
    else:  # "edge": zeros, +-inf, large
        x = rng.choice([0.0, np.inf, -np.inf, 30.0, -30.0, -20.0, 1.5], size=shape)
    return np.asarray(x, dtype=dt)


def _bin_labels(rng, shape, dt, kind):
    z = rng.integers(0, 2, shape) if kind == "binary" else rng.uniform(0, 1, shape)
    return np.asarray(z, dtype=dt)


SIGCE_GRID = list(itertools.product([(4, 5), (7,), ()], ["binary", "fractional"], DTYPES,
                                    ["normal", "wide", "edge"]))


@pytest.mark.parametrize("shape,lkind,dt,kind", SIGCE_GRID)
def test_sigmoid_cross_entropy_with_logits_grid(shape, lkind, dt, kind):
    rng = _rng("sigce", shape, lkind, dt, kind)
    x = _bin_logits(rng, shape, dt, kind)
    z = _bin_labels(rng, shape, dt, lkind)
    up = _up(rng, shape, dt)
    xt, zt = tf.constant(x), tf.constant(z)
    out, (gz, gx) = _tape(lambda: tf.nn.sigmoid_cross_entropy_with_logits(labels=zt, logits=xt), [zt, xt],
                          tf.constant(up))
    val, (mz, mx) = sl.value_and_grad(stf.nn.sigmoid_cross_entropy_with_logits, argnums=(0, 1))(
        z, x, grad_output=up)
    tol = TOL[dt] * (1 if kind == "normal" else 40)   # TF's max(x,0) - x z cancels for |x| ~ 100
    _match(val, out.numpy(), tol, "sigmoid CE value")
    _match(mx, gx.numpy(), TOL[dt], "sigmoid CE d/dlogits")
    _match(mz, gz.numpy(), TOL[dt], "sigmoid CE d/dlabels")


WEIGHTED_GRID = list(itertools.product([(4, 5), (7,)], [0.5, 1.0, 3.0, "column", "full"],
                                       ["binary", "fractional"], DTYPES, ["normal", "wide", "edge"]))


@pytest.mark.parametrize("shape,q,lkind,dt,kind", WEIGHTED_GRID)
def test_weighted_cross_entropy_with_logits_grid(shape, q, lkind, dt, kind):
    rng = _rng("wce", shape, q, lkind, dt, kind)
    x = _bin_logits(rng, shape, dt, kind)
    z = _bin_labels(rng, shape, dt, lkind)
    if q == "column":
        q = rng.uniform(0.2, 4, shape[-1:]).astype(dt)
    elif q == "full":
        q = rng.uniform(0.2, 4, shape).astype(dt)
    up = _up(rng, shape, dt)
    xt, zt = tf.constant(x), tf.constant(z)
    qt = q if isinstance(q, float) else tf.constant(q)
    out, (gz, gx) = _tape(lambda: tf.nn.weighted_cross_entropy_with_logits(zt, xt, qt), [zt, xt], tf.constant(up))
    val, (mz, mx) = sl.value_and_grad(stf.nn.weighted_cross_entropy_with_logits, argnums=(0, 1))(
        z, x, q, grad_output=up)
    _match(val, out.numpy(), TOL[dt], "weighted CE value")
    _match(mx, gx.numpy(), TOL[dt], "weighted CE d/dlogits")
    _match(mz, gz.numpy(), TOL[dt], "weighted CE d/dlabels")


# ---------------------------------------------------------------- compat.v1.losses
REDUCTIONS = list(TFV1.Reduction.all())
B, K = 4, 3


def _weights(rng, kind, lshape):
    if kind == "one":
        return 1.0
    if kind == "zero":
        return 0.0
    if kind == "rows":     # [B] for CE (loss shape [B]); [B, 1] for the elementwise losses
        return rng.uniform(0.2, 2, (B,) + (1,) * (len(lshape) - 1)).astype(np.float32)
    if kind == "zeros":    # full loss shape, with zeros and a negative weight
        w = rng.uniform(0.2, 2, lshape)
        w.reshape(-1)[[0, 2]] = 0.0
        w.reshape(-1)[1] = -0.5
        return w.astype(np.float32)
    if kind == "cols":     # [1, K] for elementwise, [1] for CE
        return rng.uniform(0.2, 2, (1,) * (len(lshape) - 1) + (lshape[-1],)).astype(np.float32) \
            if len(lshape) > 1 else np.array([1.7], np.float32)
    raise ValueError(kind)


WKINDS = ["one", "zero", "rows", "zeros", "cols"]


def _v1_check(tf_fn, our_fn, args_tf, args_ours, diff_tf, argnums, kw, dt, red, rng, lshape):
    outshape = lshape if red == "none" else ()
    up = _up(rng, outshape, dt if tf_fn is not TFV1.log_loss else np.float32)
    out, grads = _tape(lambda: tf_fn(*args_tf, reduction=red, **kw), diff_tf, tf.constant(up))
    val, mine = sl.value_and_grad(our_fn, argnums=argnums)(*args_ours, reduction=red, grad_output=up, **kw)
    assert np.asarray(val).dtype == out.dtype.as_numpy_dtype
    tol = TOL[np.float32]     # v1 reduces in float32 whatever the input dtype
    _match(val, out.numpy(), tol, f"{tf_fn.__name__} value")
    if not isinstance(argnums, tuple):
        mine = (mine,)
    for m, g in zip(mine, grads):
        assert m.dtype == g.dtype.as_numpy_dtype
        _match(m, g.numpy(), tol, f"{tf_fn.__name__} grad")


@pytest.mark.parametrize("red,wk,dt", list(itertools.product(REDUCTIONS, WKINDS, DTYPES)))
def test_v1_log_loss_grid(red, wk, dt):
    rng = _rng("logloss", red, wk, dt)
    p = rng.uniform(0, 1, (B, K)).astype(dt)
    p.reshape(-1)[:3] = [0.0, 1.0, 1e-9]
    z = rng.integers(0, 2, (B, K)).astype(dt)
    w = _weights(rng, wk, (B, K))
    pt = tf.constant(p)
    _v1_check(TFV1.log_loss, v1.log_loss, (z, pt), (z, p), [pt], 1, {"weights": w}, dt, red, rng, (B, K))


@pytest.mark.parametrize("red,wk,ls,dt", list(itertools.product(REDUCTIONS, WKINDS, [0, 0.1], DTYPES)))
def test_v1_softmax_cross_entropy_grid(red, wk, ls, dt):
    rng = _rng("v1sce", red, wk, ls, dt)
    x = _logits(rng, (B, K), dt, "normal")
    y = np.eye(K)[rng.integers(0, K, B)].astype(np.int32)
    w = _weights(rng, wk, (B,))
    xt = tf.constant(x)
    _v1_check(TFV1.softmax_cross_entropy, v1.softmax_cross_entropy, (y, xt), (y, x), [xt], 1,
              {"weights": w, "label_smoothing": ls}, dt, red, rng, (B,))


@pytest.mark.parametrize("red,wk,dt", list(itertools.product(REDUCTIONS, WKINDS + ["rows1"], DTYPES)))
def test_v1_sparse_softmax_cross_entropy_grid(red, wk, dt):
    rng = _rng("v1sparse", red, wk, dt)
    x = _logits(rng, (B, K), dt, "normal")
    y = rng.integers(0, K, B)
    w = rng.uniform(0.2, 2, (B, 1)).astype(np.float32) if wk == "rows1" else _weights(rng, wk, (B,))
    xt = tf.constant(x)
    _v1_check(TFV1.sparse_softmax_cross_entropy, v1.sparse_softmax_cross_entropy, (y, xt), (y, x), [xt], 1,
              {"weights": w}, dt, red, rng, (B,))


@pytest.mark.parametrize("red,wk,ls,dt", list(itertools.product(REDUCTIONS, WKINDS, [0, 0.2], DTYPES)))
def test_v1_sigmoid_cross_entropy_grid(red, wk, ls, dt):
    rng = _rng("v1sig", red, wk, ls, dt)
    x = _logits(rng, (B, K), dt, "normal")
    z = rng.integers(0, 2, (B, K)).astype(dt)
    w = _weights(rng, wk, (B, K))
    xt, zt = tf.constant(x), tf.constant(z)
    _v1_check(TFV1.sigmoid_cross_entropy, v1.sigmoid_cross_entropy, (zt, xt), (z, x), [zt, xt], (0, 1),
              {"weights": w, "label_smoothing": ls}, dt, red, rng, (B, K))


@pytest.mark.parametrize("red,wk,dt", list(itertools.product(REDUCTIONS, WKINDS, DTYPES)))
def test_v1_compute_weighted_loss_grid(red, wk, dt):
    rng = _rng("cwl", red, wk, dt)
    L = rng.uniform(0, 3, (B, K)).astype(dt)
    w = _weights(rng, wk, (B, K))
    Lt = tf.constant(L)
    _v1_check(TFV1.compute_weighted_loss, v1.compute_weighted_loss, (Lt,), (L,), [Lt], 0, {"weights": w}, dt,
              red, rng, (B, K))


# ---------------------------------------------------------------- raw ops
RAW_DENSE_GRID = list(itertools.product([((4, 5), (4, 5)), ((4, 5), (5,)), ((1, 5), (4, 5))], DTYPES,
                                        ["normal", "wide", "confident", "neginf"]))


@pytest.mark.parametrize("shapes,dt,kind", RAW_DENSE_GRID)
def test_raw_softmax_cross_entropy_grid(shapes, dt, kind):
    rng = _rng("rawd", shapes, dt, kind)
    x = _logits(rng, shapes[0], dt, kind)
    y = rng.dirichlet(np.ones(5), shapes[1][:-1]).astype(dt) * 1.5
    theirs = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
    ours = stf.raw_ops.SoftmaxCrossEntropyWithLogits(features=x, labels=y)
    assert type(ours).__name__ == type(theirs).__name__ and ours._fields == theirs._fields
    tol = TOL[dt] * (1 if kind != "wide" else 10)
    _match(ours.loss, theirs.loss.numpy(), tol, "raw dense loss")
    _match(ours.backprop, theirs.backprop.numpy(), TOL[dt], "raw dense backprop")
    if x.shape == y.shape:
        xt, yt = tf.constant(x), tf.constant(y)
        up = _up(rng, x.shape[:1], dt)
        _, (gx, gy) = _tape(lambda: tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=xt, labels=yt)[0],
                            [xt, yt], tf.constant(up))
        _, (mx, my) = sl.value_and_grad(stf.raw_ops.SoftmaxCrossEntropyWithLogits, argnums=(0, 1))(
            features=x, labels=y, grad_output=up)
        _match(mx, gx.numpy(), TOL[dt], "raw dense d/dfeatures")
        _match(my, gy.numpy(), tol, "raw dense d/dlabels")


@pytest.mark.parametrize("ldt,dt,kind", list(itertools.product([np.int32, np.int64], DTYPES,
                                                                  ["normal", "wide", "confident", "neginf"])))
def test_raw_sparse_softmax_cross_entropy_grid(ldt, dt, kind):
    rng = _rng("raws", ldt, dt, kind)
    x = _logits(rng, (6, 4), dt, kind)
    y = rng.integers(0, 4, 6).astype(ldt)
    theirs = tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=x, labels=y)
    ours = stf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=x, labels=y)
    assert ours._fields == theirs._fields
    tol = TOL[dt] * (1 if kind != "wide" else 10)
    _match(ours.loss, theirs.loss.numpy(), tol, "raw sparse loss")
    _match(ours.backprop, theirs.backprop.numpy(), TOL[dt], "raw sparse backprop")


# ---------------------------------------------------------------- errors: same type, TF's message
X23 = np.arange(6, dtype=np.float32).reshape(2, 3)
F32 = np.float32
ERRORS = {
    "softmax int": lambda m: m.nn.softmax([1, 2, 3]),
    "softmax rank0": lambda m: m.nn.softmax(F32(1.0)),
    "log_softmax rank0": lambda m: m.nn.log_softmax(F32(1.0)),
    "softmax axis out of range": lambda m: m.nn.softmax(X23, axis=2),
    "lse int": lambda m: m.math.reduce_logsumexp([1, 2]),
    "lse axis out of range": lambda m: m.math.reduce_logsumexp(X23, axis=2),
    "lse duplicate axes": lambda m: m.math.reduce_logsumexp(X23, axis=[1, -1]),
    "dense axis -2": lambda m: m.nn.softmax_cross_entropy_with_logits(X23, X23, axis=-2),
    "dense axis = rank": lambda m: m.nn.softmax_cross_entropy_with_logits(X23, X23, axis=2),
    "dense axis with lower-rank labels": lambda m: m.nn.softmax_cross_entropy_with_logits(X23[0], X23, axis=0),
    "dense int logits": lambda m: m.nn.softmax_cross_entropy_with_logits([[0, 1]], [[1, 2]]),
    "dense rank0": lambda m: m.nn.softmax_cross_entropy_with_logits(F32(1), F32(1)),
    "dense labels not broadcastable": lambda m: m.nn.softmax_cross_entropy_with_logits(np.ones((2, 2), F32), X23),
    "dense logits broadcast": lambda m: m.nn.softmax_cross_entropy_with_logits(np.ones((2, 3), F32), X23[:1]),
    "sparse float labels": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([0., 1.], F32), X23),
    "sparse int16 labels": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 1], np.int16), X23),
    "sparse labels rank": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([[0], [1]]), X23),
    "sparse labels shape": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 1, 2]), X23),
    "sparse scalar logits": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array(0), F32(1.0)),
    "sparse label >= C": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 3]), X23),
    "sparse label -1": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([-1, 0]), X23),
    "sparse zero classes": lambda m: m.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 0]),
                                                                                   np.zeros((2, 0), F32)),
    "sigmoid labels None": lambda m: m.nn.sigmoid_cross_entropy_with_logits(logits=np.array([1.], F32)),
    "sigmoid shapes": lambda m: m.nn.sigmoid_cross_entropy_with_logits(np.ones(1, F32), np.ones(2, F32)),
    "sigmoid float64 labels": lambda m: m.nn.sigmoid_cross_entropy_with_logits(np.ones(2), np.ones(2, F32)),
    "sigmoid int labels": lambda m: m.nn.sigmoid_cross_entropy_with_logits(np.ones(2, np.int32), np.ones(2, F32)),
    "weighted int labels": lambda m: m.nn.weighted_cross_entropy_with_logits(np.ones(2, np.int32),
                                                                             np.ones(2, F32), 2.0),
    "weighted pos_weight tensor dtype": lambda m: m.nn.weighted_cross_entropy_with_logits(
        np.ones(2), np.ones(2), tf.constant(2.0)),
    "weighted no pos_weight": lambda m: m.nn.weighted_cross_entropy_with_logits(np.ones(2, F32), np.ones(2, F32)),
    "raw positional": lambda m: m.raw_ops.SparseSoftmaxCrossEntropyWithLogits(X23, np.array([0, 1])),
    "raw tensors' dtypes differ": lambda m: m.raw_ops.SoftmaxCrossEntropyWithLogits(
        features=tf.constant(X23), labels=tf.ones((2, 3), tf.float64)),
    "raw rank 1": lambda m: m.raw_ops.SoftmaxCrossEntropyWithLogits(features=X23[0], labels=X23[0]),
    "raw not broadcastable": lambda m: m.raw_ops.SoftmaxCrossEntropyWithLogits(features=X23,
                                                                              labels=np.ones((2, 2), F32)),
    "raw sparse rank 3": lambda m: m.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=np.ones((2, 2, 3), F32), labels=np.array([0, 1])),
    "raw sparse labels 2-D": lambda m: m.raw_ops.SparseSoftmaxCrossEntropyWithLogits(
        features=X23, labels=np.array([[0], [1]])),
    "raw sparse batch": lambda m: m.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=X23,
                                                                               labels=np.array([0, 1, 2])),
    "v1 reduction key": lambda m: _v1(m).log_loss([1.], [0.5], reduction="mean"),
    "v1 weights rank": lambda m: _v1(m).softmax_cross_entropy(X23, X23, weights=np.ones((2, 1), F32)),
    "v1 weights dim": lambda m: _v1(m).log_loss(np.ones(4, F32), np.ones(4, F32) / 2, weights=np.ones(2, F32)),
    "v1 log_loss shapes": lambda m: _v1(m).log_loss(np.ones(1, F32), np.ones(2, F32)),
    "v1 softmax shapes": lambda m: _v1(m).softmax_cross_entropy(np.ones((1, 3)), np.ones((1, 2), F32)),
    "v1 sparse label_smoothing": lambda m: _v1(m).sparse_softmax_cross_entropy([0], X23[:1], label_smoothing=0.1),
    "v1 sparse weights [B,C]": lambda m: _v1(m).sparse_softmax_cross_entropy(np.array([0, 1]), X23,
                                                                            weights=np.ones((2, 3), F32)),
    "v1 labels None": lambda m: _v1(m).log_loss(None, [0.5]),
    "v1 sigmoid labels None": lambda m: _v1(m).sigmoid_cross_entropy(None, [0.5]),
}
# messages of Python's own argument binding (TF's dispatch wrapper words them differently)
ERRORS_TYPE_ONLY = {"weighted no pos_weight", "v1 sparse label_smoothing"}


def _v1(m):
    return TFV1 if m is tf else v1


@pytest.mark.parametrize("case", list(ERRORS))
def test_errors_match_tf(case):
    fn = ERRORS[case]
    with pytest.raises(Exception) as theirs:
        fn(tf)
    with pytest.raises(Exception) as ours:
        fn(stf)
    t, o = theirs.value, ours.value
    if isinstance(t, tf.errors.AbortedError) and case in EIGEN_CALLS:
        # TF's oneDNN softmax (some CPUs' default) aborts on rank 0; the mirror follows TF's
        # reference kernel, compared in test_rank_limits_follow_reference_kernel
        assert _onednn_on() is not False and ONEDNN_ABORT in str(t), t
        assert isinstance(o, stf.errors.InvalidArgumentError)
        return
    if isinstance(t, tf.errors.InvalidArgumentError):
        assert isinstance(o, tf.errors.InvalidArgumentError) and isinstance(o, stf.errors.InvalidArgumentError)
        assert isinstance(o, ValueError)
    else:
        assert type(o) is type(t), (type(o), type(t))
    if case not in ERRORS_TYPE_ONLY:   # TF prints its computed values after "Received": ulps may differ
        assert str(o).split("Received weights")[0] in str(t), f"\nours: {o}\ntf:   {t}"


def test_invalid_argument_error_without_tf_loaded():
    import subprocess
    import sys
    code = ("import sys, numpy as np\nfrom stableloss import tf as stf\n"
            "try:\n    stf.nn.softmax(np.array(1.0, np.float32))\n"
            "except stf.errors.InvalidArgumentError as e:\n"
            "    print(type(e).__mro__[1].__name__, isinstance(e, ValueError), 'tensorflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ValueError", "True", "False"]


# ---------------------------------------------------------------- documented edge values and quirks
def _tf_and_ours(name, *args, argnums=None, **kw):
    """(tf value, ours value) for tf.nn / stableloss.tf.nn function `name`."""
    return getattr(tf.nn, name)(*args, **kw).numpy(), getattr(stf.nn, name)(*args, **kw)


def test_dense_unnormalised_labels_gradient_is_softmax_minus_y():
    """Doc section 4: y = [2,0,0], x = [4,2,1] -> TF gives softmax - y (not the true (sum y) softmax - y)."""
    y, x = np.array([[2., 0, 0]], F32), np.array([[4., 2, 1]], F32)
    loss, g = sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=1)(y, x)
    np.testing.assert_allclose(g, [[-1.1562053, 0.1141952, 0.042010065]], rtol=1e-6)
    np.testing.assert_allclose(loss, 2 * stf.nn.softmax_cross_entropy_with_logits(y / 2, x), rtol=1e-6)
    true = sl.grad(sl.softmax_cross_entropy)(x, y, reduction="none")      # the core: exact derivative
    np.testing.assert_allclose(true, [[-0.3124106, 0.2283904, 0.08402013]], rtol=1e-6)


@pytest.mark.parametrize("x,y,want_loss,want_gx", [
    ([-np.inf, 0, 1], [0, 1, 0], np.nan, [0, -0.7310586, 0.7310586]),
    ([-np.inf, 0, 1], [1, 0, 0], np.inf, [-1, 0.26894143, 0.7310586]),
    ([0, 0, -np.inf], [0, 1, 0], np.nan, [0.5, -0.5, 0]),
])
def test_dense_inf_logit_rows(x, y, want_loss, want_gx):
    x, y = np.array([x], F32), np.array([y], F32)
    loss, g = sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=1)(y, x)
    np.testing.assert_array_equal(np.isnan(loss), np.isnan([want_loss]))
    if not np.isnan(want_loss):
        assert loss[0] == want_loss
    np.testing.assert_allclose(g[0], want_gx, rtol=1e-6, atol=1e-7)
    theirs = tf.nn.softmax_cross_entropy_with_logits(y, x).numpy()
    np.testing.assert_array_equal(np.isnan(theirs), np.isnan(loss))


def test_sparse_neginf_nontarget_is_finite():
    x = np.array([[-np.inf, 0, 1]], F32)
    theirs, ours = _tf_and_ours("sparse_softmax_cross_entropy_with_logits", np.array([1]), x)
    assert ours[0] == pytest.approx(1.3132616, rel=1e-6) and theirs[0] == pytest.approx(ours[0], rel=1e-6)


def test_dense_edge_shapes():
    # zero classes -> loss 0; one class -> loss 0 and gradient 1 - y; batch 0 -> empty
    assert stf.nn.softmax_cross_entropy_with_logits(np.zeros((2, 0), F32), np.zeros((2, 0), F32)).tolist() == [0, 0]
    x, y = np.array([[3.], [-2.]], F32), np.array([[1.], [0.5]], F32)
    loss, g = sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=1)(y, x)
    assert loss.tolist() == [0, 0] and g.tolist() == [[0.0], [0.5]]
    e = stf.nn.softmax_cross_entropy_with_logits(np.zeros((0, 3), F32), np.zeros((0, 3), F32))
    assert e.shape == (0,) and e.dtype == F32


def test_dense_broadcast_labels_have_no_gradient():
    y, x = np.array([0., 1., 0.], F32), np.ones((2, 3), F32)
    np.testing.assert_allclose(stf.nn.softmax_cross_entropy_with_logits(y, x),
                               tf.nn.softmax_cross_entropy_with_logits(y, x).numpy(), rtol=1e-6)
    sl.grad(stf.nn.softmax_cross_entropy_with_logits, argnums=1)(y, x)     # logits: fine
    with pytest.raises(stf.errors.InvalidArgumentError, match="Input to reshape is a tensor with 6 values"):
        sl.grad(stf.nn.softmax_cross_entropy_with_logits, argnums=0)(y, x)
    yt, xt = tf.constant(y), tf.constant(x)
    with pytest.raises(tf.errors.InvalidArgumentError, match="Input to reshape is a tensor with 6 values"):
        _tape(lambda: tf.nn.softmax_cross_entropy_with_logits(yt, xt), [yt])


@pytest.mark.parametrize("z,q,want_g", [(1.0, 3.0, 0.0), (0.0, 3.0, 1.0), (0.3, 2.0, 0.7)])
def test_weighted_gradient_at_zero_is_tfs(z, q, want_g):
    """Doc section 8: TF's logits gradient at exactly x = 0 is 1 - z (the true value differs)."""
    x, zz = np.zeros(1, F32), np.full(1, z, F32)
    g = sl.grad(stf.nn.weighted_cross_entropy_with_logits, argnums=1)(zz, x, q)
    assert g[0] == pytest.approx(want_g, abs=1e-7)
    true = sl.grad(sl.sigmoid_cross_entropy)(x, zz, pos_weight=np.array([q], F32), reduction="none")
    assert true[0] == pytest.approx((1 + (q - 1) * z) * 0.5 - q * z, abs=1e-7)     # the core: exact
    assert abs(true[0] - want_g) > 0.09


def test_weighted_cancellation_reproduced():
    """x = -20, z = 0: TF's formula cancels to 0 (true 2.06e-9); the core keeps it."""
    x, z = np.array([-20., 30.], F32), np.array([0., 1.], F32)
    ours = stf.nn.weighted_cross_entropy_with_logits(z, x, 3.0)
    theirs = tf.nn.weighted_cross_entropy_with_logits(z, x, 3.0).numpy()
    assert ours[0] == 0.0 == theirs[0]
    assert ours[1] == pytest.approx(2.8072867e-13, rel=1e-5)
    exact = sl.sigmoid_cross_entropy(x, z, pos_weight=np.array([3.], F32), reduction="none")
    assert exact[0] == pytest.approx(2.0611537e-09, rel=1e-6)
    q1 = stf.nn.weighted_cross_entropy_with_logits(z[:1], x[:1], 1.0)
    assert q1[0] == 0.0 != stf.nn.sigmoid_cross_entropy_with_logits(z[:1], x[:1])[0]


@pytest.mark.parametrize("x,z,want", [(np.inf, 1, np.nan), (np.inf, 0, np.nan), (-np.inf, 0, np.nan),
                                      (-np.inf, 1, np.inf), (-100., 1, 100.), (30., 1, 9.357623e-14)])
def test_sigmoid_edge_values(x, z, want):
    x, z = np.array([x], F32), np.array([z], F32)
    theirs, ours = _tf_and_ours("sigmoid_cross_entropy_with_logits", z, x)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    if np.isnan(want):
        assert np.isnan(ours[0])
    else:
        assert ours[0] == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("p,z,want", [(1.0, 1.0, -1.1920928e-07), (0.0, 0.0, -1.1920928e-07),
                                      (0.0, 1.0, 16.118095), (1.5, 1.0, np.nan), (-0.5, 0.0, np.nan)])
def test_log_loss_epsilon_inside_the_logs(p, z, want):
    ours = v1.log_loss(np.array([z]), np.array([p]), reduction=v1.Reduction.NONE)
    theirs = TFV1.log_loss(np.array([z]), np.array([p]), reduction=TFV1.Reduction.NONE).numpy()
    assert ours.dtype == np.float32 == theirs.dtype
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    if not np.isnan(want):
        assert ours[0] == pytest.approx(want, rel=1e-6) and theirs[0] == pytest.approx(want, rel=1e-6)


def test_v1_float64_reduced_in_float32():
    """Doc section 9: a float64 softmax_cross_entropy of 1.20194285 comes back as float32's 1.2019428."""
    x = np.array([[0.5, 1.5, -0.3]])
    y = np.array([[1.0, 0.0, 0.0]])
    ours = v1.softmax_cross_entropy(y, x, reduction=v1.Reduction.NONE)
    exact = sl.softmax_cross_entropy(x, y, reduction="none")
    assert ours.dtype == np.float64
    assert ours[0] == float(np.float32(exact[0])) != exact[0]
    assert ours[0] == TFV1.softmax_cross_entropy(y, x, reduction=TFV1.Reduction.NONE).numpy()[0]
    s = v1.compute_weighted_loss(np.array([1.0, 1e-12]), reduction=v1.Reduction.SUM)
    assert s - 1.0 == 0.0


def test_v1_reduction_table():
    """Doc section 9's table: L = [0.40760595, 0.16984604, 1.0986123, 5.054985], w = [1, 0, 2, 0.5]."""
    L = np.array([0.40760595, 0.16984604, 1.0986123, 5.054985], F32)
    w = np.array([1, 0, 2, 0.5], F32)
    want = {v1.Reduction.SUM: 5.1323233, v1.Reduction.MEAN: 1.4663781,
            v1.Reduction.SUM_OVER_BATCH_SIZE: 1.2830808, v1.Reduction.SUM_BY_NONZERO_WEIGHTS: 1.7107744}
    for red, v in want.items():
        assert float(v1.compute_weighted_loss(L, w, reduction=red)) == pytest.approx(v, rel=1e-7)
    np.testing.assert_allclose(v1.compute_weighted_loss(L, w, reduction="none"),
                               [0.40760595, 0, 2.1972246, 2.5274925], rtol=1e-7)
    assert float(v1.compute_weighted_loss(L, np.array([1, -1, 0, 0], F32))) == pytest.approx(0.11887995, rel=1e-7)
    assert v1.compute_weighted_loss(L, 0.0) == 0.0
    assert v1.compute_weighted_loss(L, np.zeros(4, F32), reduction="weighted_mean") == 0.0
    for red in v1.Reduction.all()[1:]:
        assert v1.compute_weighted_loss(np.zeros(0, F32), reduction=red) == 0.0


def test_v1_docstring_example():
    got = v1.softmax_cross_entropy([[0, 1, 0], [0, 0, 1]], [[0.05, 0.95, 0], [0.1, 0.8, 0.1]],
                                   weights=[0.3, 0.7], label_smoothing=0.2)
    assert float(got) == pytest.approx(0.5761805, rel=1e-6)


@pytest.mark.parametrize("row,want,grad", [
    ([np.inf, 0, 1], np.inf, [np.nan, 0, 0]), ([np.inf, np.inf, 0], np.inf, [np.nan, np.nan, 0]),
    ([-np.inf, np.inf, 0], np.inf, [0, np.nan, 0]), ([-np.inf] * 3, -np.inf, [np.nan] * 3),
    ([np.nan, np.inf, 0], np.nan, [np.nan] * 3), ([1000, 1000, -1000], 1000.6932, [0.5, 0.5, 0])])
def test_reduce_logsumexp_special_rows(row, want, grad):
    x = np.array(row, F32)
    v, g = sl.value_and_grad(stf.math.reduce_logsumexp)(x)
    np.testing.assert_allclose(v, want, rtol=1e-7)
    np.testing.assert_allclose(g, grad, rtol=1e-7, atol=1e-30)


def test_reduce_logsumexp_empty_and_scalar():
    assert stf.math.reduce_logsumexp(np.zeros(0, F32)) == -np.inf
    assert stf.math.reduce_logsumexp(np.zeros((0, 3), F32), axis=0).tolist() == [-np.inf] * 3
    assert stf.math.reduce_logsumexp(np.zeros((0, 3), F32), axis=1).shape == (0,)
    assert stf.math.reduce_logsumexp(F32(2.5)) == F32(2.5)
    x = np.arange(6, dtype=F32).reshape(2, 3)
    np.testing.assert_array_equal(stf.math.reduce_logsumexp(x, axis=[]), x)


# ---------------------------------------------------------------- TF's two CPU softmax kernels
# TensorFlow's CPU softmax has two implementations: its reference (Eigen) kernel, and the
# oneDNN kernel it switches to on CPUs with AVX-512 VNNI / AMX unless TF_ENABLE_ONEDNN_OPTS=0
# (float32 and bfloat16 only). They differ on rows holding +inf or NaN, and oneDNN rejects
# rank 0 and rank > 5 with AbortedError. The mirror promises the reference kernel's results
# (docs/tensorflow.md, "When TensorFlow's CPU back ends disagree"): it is checked against a
# TensorFlow started with oneDNN off, and the TensorFlow in this process against whichever of
# the two documented behaviours its back end has.
EDGE_ROWS = [[-np.inf, 0, 1], [-np.inf] * 3, [np.inf, 0, 1], [np.nan, 0, 1], [1000, 0, -1000],
             [np.inf, np.inf, 0], [-np.inf, np.inf, 0], [np.nan, np.inf, 0], [np.nan, -np.inf, 0],
             [np.inf] * 3, [np.nan] * 3, [0.5, -0.25, 2]]
EDGE_DTYPES = {"float32": 1e-6, "float64": 1e-12, "bfloat16": 1e-2}
ONEDNN_DTYPES = ("float32", "bfloat16")          # TF's oneDNN softmax kernel (float16: AVX-512 FP16 only)
ONEDNN_ABORT = "Input dims must be <= 5 and >=1"
# TensorFlow expressions run in both processes (np, tf names); errors recorded as (type, message)
EIGEN_CALLS = {
    "softmax rank0": "tf.nn.softmax(np.float32(1.0))",
    "log_softmax rank0": "tf.nn.log_softmax(np.float32(1.0))",
    "softmax rank6": "tf.nn.softmax(X6)",
    "log_softmax rank6": "tf.nn.log_softmax(X6)",
}
_X6 = "np.arange(2 * 3, dtype=np.float32).reshape(1, 1, 1, 1, 2, 3) / 4"

_EIGEN_SCRIPT = """
import json, os, sys
import numpy as np
import tensorflow as tf
try:
    from tensorflow.python.util import _pywrap_util_port
    assert not _pywrap_util_port.IsMklEnabled(), "TF_ENABLE_ONEDNN_OPTS=0 did not turn oneDNN off"
except ImportError:
    pass
rows, calls = json.loads(sys.stdin.read())
X6 = {x6}
out = {{"rows": {{}}, "calls": {{}}}}
for dt in {dtypes}:
    x = tf.constant(np.array(rows, np.float64), dtype=dt)
    for fn in ("softmax", "log_softmax"):
        out["rows"][fn + " " + dt] = getattr(tf.nn, fn)(x).numpy().astype(np.float64).tolist()
for name, expr in calls.items():
    try:
        out["calls"][name] = ["ok", eval(expr).numpy().astype(np.float64).tolist()]
    except Exception as e:
        out["calls"][name] = [type(e).__name__, str(e)]
print(json.dumps(out))
""".format(x6=_X6, dtypes=tuple(EDGE_DTYPES))


@pytest.fixture(scope="module")
def tf_eigen():
    """TensorFlow's reference-kernel results: the edge rows and EIGEN_CALLS evaluated by a
    TensorFlow started with TF_ENABLE_ONEDNN_OPTS=0 (it is read when TF is imported)."""
    import json
    import os
    import subprocess
    import sys
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, "-c", _EIGEN_SCRIPT], input=json.dumps([EDGE_ROWS, EIGEN_CALLS]),
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _onednn_on():
    """Whether this process's TensorFlow uses oneDNN kernels (None: cannot tell)."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def _onednn_softmax_rule(x, reference):
    """TF 2.21's oneDNN softmax as documented: a row holding +inf or NaN gives NaN at those
    entries and 0 at the others; every other row is the reference kernel's."""
    x = np.asarray(x, np.float64)
    bad = np.isnan(x) | (x == np.inf)
    row = bad.any(axis=-1, keepdims=True)
    return np.where(row, np.where(bad, np.nan, 0.0), reference)


@pytest.mark.parametrize("dt", list(EDGE_DTYPES))
def test_softmax_edge_rows(dt, tf_eigen):
    x = tf.constant(np.array(EDGE_ROWS, np.float64), dtype=dt)
    tol = EDGE_DTYPES[dt]
    onednn = _onednn_on()
    for fn in ("softmax", "log_softmax"):
        eigen = np.array(tf_eigen["rows"][f"{fn} {dt}"])
        ours = np.asarray(getattr(stf.nn, fn)(x), np.float64)
        _match(ours, eigen, tol, f"{fn} edge rows")                 # the promise: TF's reference kernel
        theirs = getattr(tf.nn, fn)(x).numpy().astype(np.float64)   # this process's TF, either back end
        quirk = _onednn_softmax_rule(EDGE_ROWS, eigen)
        if fn == "softmax" and dt in ONEDNN_DTYPES and onednn:
            _match(theirs, quirk, tol, f"{fn} edge rows, TF oneDNN")
        elif fn == "softmax" and dt in ONEDNN_DTYPES and onednn is None:
            assert np.array_equal(np.isnan(theirs), np.isnan(eigen)) or \
                np.array_equal(np.isnan(theirs), np.isnan(quirk)), theirs
        else:                                                       # float64, log_softmax: one kernel
            _match(theirs, eigen, tol, f"{fn} edge rows, TF")
    assert np.isnan(stf.nn.softmax(np.array([-np.inf], F32))[0])
    assert stf.nn.softmax(np.zeros((0, 3), F32)).shape == (0, 3)
    assert stf.nn.log_softmax(np.zeros((3, 0), F32)).shape == (3, 0)
    assert tf.nn.softmax(np.zeros((0, 3), F32)).shape == (0, 3)


def test_onednn_rule_differs_from_reference_on_edge_rows(tf_eigen):
    """The two documented behaviours are distinguishable on the edge rows (so the test above
    tells them apart), and agree on the rows without +inf / NaN."""
    eigen = np.array(tf_eigen["rows"]["softmax float32"])
    quirk = _onednn_softmax_rule(EDGE_ROWS, eigen)
    assert np.isnan(eigen[2]).all() and quirk[2].tolist()[1:] == [0.0, 0.0] and np.isnan(quirk[2, 0])
    clean = ~np.any(np.isnan(EDGE_ROWS) | (np.array(EDGE_ROWS) == np.inf), axis=1)
    np.testing.assert_array_equal(quirk[clean], eigen[clean])


@pytest.mark.parametrize("case", list(EIGEN_CALLS))
def test_rank_limits_follow_reference_kernel(case, tf_eigen):
    """Rank 0 fails (InvalidArgumentError, the reference kernel's message) and rank 6 works,
    whichever back end this process's TF uses; TF's oneDNN softmax aborts on both instead."""
    X6 = eval(_X6)                                                  # noqa: F841  (used by the expression)
    kind, eigen = tf_eigen["calls"][case]
    expr = EIGEN_CALLS[case]
    try:
        ours = eval(expr.replace("tf.nn.", "stf.nn."))
    except Exception as e:                                          # noqa: BLE001
        assert kind != "ok", f"ours raised {e!r}, TF's reference kernel gave {eigen}"
        assert kind == "InvalidArgumentError" and isinstance(e, stf.errors.InvalidArgumentError)
        assert str(e) in eigen, f"\nours: {e}\ntf:   {eigen}"
    else:
        assert kind == "ok", f"ours gave {ours}, TF's reference kernel raised {kind}: {eigen}"
        _match(ours, np.array(eigen), 1e-6, case)
    try:
        theirs = eval(expr).numpy()
    except tf.errors.AbortedError as e:
        assert case.startswith("softmax") and _onednn_on() is not False and ONEDNN_ABORT in str(e), e
    except tf.errors.InvalidArgumentError as e:
        assert kind == "InvalidArgumentError" and str(e) == eigen
    else:
        assert kind == "ok"
        _match(theirs, np.array(eigen), 1e-6, case + ", TF")


# ---------------------------------------------------------------- confident rows: exact, not TF's 0
@pytest.mark.parametrize("dt,d", [(np.float32, 17.0), (np.float32, 30.0), (np.float64, 37.0), (np.float64, 50.0)])
def test_confident_rows_exact_not_tf_zero(dt, d):
    """TF returns loss 0 (and a 0 target gradient) once the target logit is ahead by
    >= 17 (float32) / 37 (float64); stableloss keeps the exact tiny values. Checked
    against mpmath (tests/_reference.py), with TF's 0 shown alongside."""
    x = np.array([[d, 0, 0]], dt)
    tol = 2e-7 if dt == np.float32 else 1e-15
    want = ref.softmax_cross_entropy(x, np.array([0]), reduction="none")
    want_l = want[0] if isinstance(want, tuple) else want
    for fn, args in (("sparse_softmax_cross_entropy_with_logits", (np.array([0]), x)),
                     ("softmax_cross_entropy_with_logits", (np.array([[1, 0, 0]], dt), x))):
        v, g = sl.value_and_grad(getattr(stf.nn, fn), argnums=1)(*args)
        theirs = getattr(tf.nn, fn)(*args).numpy()
        assert theirs[0] == 0.0 and v[0] > 0
        np.testing.assert_allclose(v, np.asarray(want_l).reshape(1), rtol=tol)
        # gradient: non-target entries exp(-d)/S as TF; the target -s'/S where TF has 0
        s = 2 * np.exp(-d)
        np.testing.assert_allclose(g[0], [-s / (1 + s), np.exp(-d) / (1 + s), np.exp(-d) / (1 + s)], rtol=tol)
    lsm = stf.nn.log_softmax(x)
    assert lsm[0, 0] == pytest.approx(-np.log1p(2 * np.exp(-d)), rel=tol)
    assert tf.nn.log_softmax(x).numpy()[0, 0] == 0.0
    lse = stf.math.reduce_logsumexp(np.array([0, -d, -d], dt))
    assert lse == pytest.approx(np.log1p(2 * np.exp(-d)), rel=tol)


# ---------------------------------------------------------------- dtypes, inputs
@pytest.mark.parametrize("dt", ["float16", "bfloat16"])
def test_half_precision_dense(dt):
    rng = _rng("half", dt)
    x = tf.constant(rng.standard_normal((4, 5)), dtype=dt)
    y = tf.constant(rng.dirichlet(np.ones(5), 4), dtype=dt)
    theirs = tf.nn.softmax_cross_entropy_with_logits(y, x)
    ours = stf.nn.softmax_cross_entropy_with_logits(y, x)     # tf.Tensors in, NumPy out
    assert isinstance(ours, np.ndarray) and ours.dtype == theirs.numpy().dtype
    _match(ours, theirs.numpy(), 1e-2, f"dense CE {dt}")
    ls = tf.nn.log_softmax(x)
    _match(stf.nn.log_softmax(x), ls.numpy(), 1e-2, f"log_softmax {dt}")


def test_sparse_half():
    rng = _rng("shalf")
    x = rng.standard_normal((4, 5)).astype(np.float16)
    y = rng.integers(0, 5, 4)
    _match(stf.nn.sparse_softmax_cross_entropy_with_logits(y, x),
           tf.nn.sparse_softmax_cross_entropy_with_logits(y, x).numpy(), 2e-3, "sparse CE float16")


def test_python_lists_are_float32_like_tf():
    ours = stf.nn.softmax([1.0, 2.0, 3.0])
    assert ours.dtype == np.float32 == tf.nn.softmax([1.0, 2.0, 3.0]).numpy().dtype
    assert stf.nn.sparse_softmax_cross_entropy_with_logits([0, 1], [[1.0, 2.0], [0.5, 0.1]]).dtype == np.float32


def test_inputs_not_modified():
    rng = _rng("nomod")
    x = rng.standard_normal((3, 4))
    y = rng.dirichlet(np.ones(4), 3)
    xc, yc = x.copy(), y.copy()
    sl.value_and_grad(stf.nn.softmax_cross_entropy_with_logits, argnums=(0, 1))(y, x, 0)
    v1.softmax_cross_entropy(y, x, label_smoothing=0.3)
    np.testing.assert_array_equal(x, xc)
    np.testing.assert_array_equal(y, yc)


def test_name_is_ignored_and_not_differentiable_args():
    x = np.array([[1., 2, 3]], F32)
    np.testing.assert_array_equal(stf.nn.softmax(x, name="whatever"), stf.nn.softmax(x))
    with pytest.raises(TypeError, match="not differentiable"):
        sl.grad(stf.nn.sparse_softmax_cross_entropy_with_logits, argnums=0)(np.array([0]), x)
    with pytest.raises(TypeError, match="not differentiable"):
        sl.grad(v1.softmax_cross_entropy, argnums=0)(np.array([[1, 0, 0]]), x)


# ---------------------------------------------------------------- misuse guard
def test_guard_softmax_rows_as_logits():
    sl.set_misuse_warnings(True)
    from stableloss import _guard
    _guard.reset_misuse_warnings()
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], F32)
    y = np.eye(3, dtype=F32)[[0, 2]]
    with pytest.warns(sl.MisuseWarning, match="looks like a softmax output") as rec:
        stf.nn.softmax_cross_entropy_with_logits(y, p)
    assert rec[0].filename == __file__            # points at the caller
    with pytest.warns(sl.MisuseWarning, match="sparse_softmax_cross_entropy_with_logits"):
        stf.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 2]), p)
    with pytest.warns(sl.MisuseWarning, match="v1.losses.softmax_cross_entropy"):
        v1.softmax_cross_entropy(y, p)


def test_guard_log_loss_given_logits():
    sl.set_misuse_warnings(True)
    from stableloss import _guard
    _guard.reset_misuse_warnings()
    with pytest.warns(sl.MisuseWarning, match="sigmoid_cross_entropy"):
        v1.log_loss(np.array([1., 0.]), np.array([2.5, -1.0]))


def test_guard_no_false_alarm():
    import warnings
    sl.set_misuse_warnings(True)
    from stableloss import _guard
    _guard.reset_misuse_warnings()
    x = np.array([[0.2, 0.9, 0.5], [0.0, 1.0, 0.3]], F32)      # logits that happen to lie in [0, 1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stf.nn.softmax_cross_entropy_with_logits(np.eye(3, dtype=F32)[[0, 1]], x)
        stf.nn.sparse_softmax_cross_entropy_with_logits(np.array([0, 1]), x)
        v1.log_loss(np.array([1., 0.]), np.array([0.9, 0.2]))
        sl.set_misuse_warnings(False)
        stf.nn.softmax_cross_entropy_with_logits(np.eye(3, dtype=F32)[:1], np.array([[0.5, 0.5, 0.]], F32))


# ---------------------------------------------------------------- bridge
def _bridge():
    from stableloss.tf import bridge
    return bridge


BRIDGE_CASES = ["dense", "dense_axis0", "sparse", "sigmoid", "weighted"]


def _bridge_inputs(case, rng):
    if case.startswith("dense"):
        x = rng.standard_normal((4, 5)).astype(F32)
        y = (rng.dirichlet(np.ones(5), 4) * 1.5).astype(F32)
        return y, x
    if case == "sparse":
        return rng.integers(0, 5, 4).astype(np.int32), rng.standard_normal((4, 5)).astype(F32)
    return rng.uniform(0, 1, (4, 5)).astype(F32), (rng.standard_normal((4, 5)) * 4).astype(F32)


def _bridge_call(mod, case, y, x):
    if case == "dense":
        return mod.softmax_cross_entropy_with_logits(y, x)
    if case == "dense_axis0":
        return mod.softmax_cross_entropy_with_logits(y, x, axis=0)
    if case == "sparse":
        return mod.sparse_softmax_cross_entropy_with_logits(y, x)
    if case == "sigmoid":
        return mod.sigmoid_cross_entropy_with_logits(labels=y, logits=x)
    return mod.weighted_cross_entropy_with_logits(y, x, 2.5)


@pytest.mark.parametrize("case", BRIDGE_CASES)
@pytest.mark.parametrize("compiled", [False, True])
def test_bridge_gradients_match_tf(case, compiled):
    bridge = _bridge()
    rng = _rng("bridge", case)
    y, x = _bridge_inputs(case, rng)
    xv = tf.Variable(x)
    yv = tf.Variable(y) if y.dtype.kind == "f" else tf.constant(y)

    def run(mod):
        def step():
            with tf.GradientTape() as t:
                out = _bridge_call(mod, case, yv, xv)
                ramp = tf.reshape(tf.cast(tf.range(1, 1 + tf.size(out)), out.dtype), tf.shape(out))
                loss = tf.reduce_sum(out * ramp / tf.cast(tf.size(out), out.dtype))   # a non-uniform upstream
            srcs = [xv] + ([yv] if isinstance(yv, tf.Variable) else [])
            return (loss,) + tuple(t.gradient(loss, srcs))
        return tf.function(step)() if compiled else step()

    theirs = run(tf.nn)
    ours = run(bridge)
    for o, t in zip(ours, theirs):
        assert isinstance(o, tf.Tensor)
        _match(o.numpy(), t.numpy(), 2e-6, f"bridge {case}")


def test_bridge_upstream_and_shape_in_function():
    bridge = _bridge()
    rng = _rng("bridge2")
    y, x = _bridge_inputs("dense", rng)
    w = tf.constant(rng.uniform(0.5, 2, 4).astype(F32))

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32)])
    def f(xx):
        with tf.GradientTape() as t:
            t.watch(xx)
            out = bridge.softmax_cross_entropy_with_logits(y, xx)
            assert out.shape.as_list() == [None]
            loss = tf.reduce_sum(out * w)
        return t.gradient(loss, xx)

    xt = tf.constant(x)
    with tf.GradientTape() as t:
        t.watch(xt)
        loss = tf.reduce_sum(tf.nn.softmax_cross_entropy_with_logits(y, xt) * w)
    _match(f(xt).numpy(), t.gradient(loss, xt).numpy(), 2e-6, "bridge weighted upstream")
