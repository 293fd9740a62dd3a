"""float16 / bfloat16 logits for index-label cross-entropy are read directly by the
kernels (row blocks converted to float32 in cache, no full upcast copy): the results are
the float32 computation's, rounded to the half dtype -- bit for bit."""
import tracemalloc

import numpy as np
import pytest

import stableloss as sl

HALF = [np.float16]
try:
    import ml_dtypes
    HALF.append(ml_dtypes.bfloat16)
except ImportError:  # pragma: no cover
    pass

rng = np.random.default_rng(5)


def _as_f32_rounded(a, dt):
    return np.asarray(a).astype(np.float32).astype(dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("C", [3, 10, 1000])
@pytest.mark.parametrize("kw", [{}, dict(ignore_index=1), dict(label_smoothing=0.1),
                                 dict(weight="w"), dict(reduction="none"), dict(reduction="sum")])
def test_half_equals_float32_rounded(dt, C, kw):
    x = (rng.standard_normal((257, C)) * 3).astype(dt)
    t = rng.integers(0, C, 257)
    x[0, t[0]] = 20                                    # a confident row
    kw = dict(kw)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.5, 2, C)
    v, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, **kw)
    v32, g32 = sl.value_and_grad(sl.softmax_cross_entropy)(x.astype(np.float32), t, **kw)
    assert g.dtype == np.dtype(dt) and np.asarray(v).dtype == np.dtype(dt)
    assert np.array_equal(g.view(np.uint16), g32.astype(dt).view(np.uint16))
    assert np.array_equal(np.asarray(v).astype(np.float32), _as_f32_rounded(v32, dt).astype(np.float32))
    f = sl.softmax_cross_entropy(x, t, **kw)
    assert np.asarray(f).tobytes() == np.asarray(v).tobytes()


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
def test_half_axis_and_bad_label(dt):
    x = rng.standard_normal((4, 5, 3)).astype(dt)
    t = rng.integers(0, 5, (4, 3))
    v, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, axis=1, reduction="none")
    v32, g32 = sl.value_and_grad(sl.softmax_cross_entropy)(x.astype(np.float32), t, axis=1, reduction="none")
    assert np.array_equal(g.astype(np.float32), g32.astype(dt).astype(np.float32))
    t[2, 1] = 7
    with pytest.raises(sl.LabelError, match=r"^labels: value 7 at index \(2, 1\)"):
        sl.softmax_cross_entropy(x, t, axis=1)


def test_float16_makes_no_full_upcast_copy():
    N, C = 2048, 1000
    x = rng.standard_normal((N, C)).astype(np.float16)
    t = rng.integers(0, C, N)
    sl.softmax_cross_entropy(x, t)                     # warm up
    tracemalloc.start()
    sl.softmax_cross_entropy(x, t)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < N * C * 4 / 8, peak                  # a float32 copy would be N*C*4 bytes


# ---------------------------------------------------------------------------------------
# Every other function reads half inputs directly too (one block-conversion mechanism,
# stableloss._core._kernels.half_run). The reference is always the float32 call on the
# upcast inputs (what the upcast path computes), its results rounded to the half dtype.
# Per-element outputs are bitwise that rounding; per-row losses are rounded through
# float32 (the float32 call's dtype); reduced losses come from the same float64 block sums.

def _same(h, ref, dt):
    """h (half dtype dt, or float32) equals ref rounded to dt, bit for bit (any NaN for NaN)."""
    h = np.asarray(h)
    r = np.asarray(np.asarray(ref, np.float32).astype(dt))
    assert h.dtype == np.dtype(dt) and h.shape == r.shape, (h.dtype, h.shape, r.shape)
    bits = np.uint16 if h.itemsize == 2 else np.uint32
    nan = np.isnan(r.astype(np.float32))
    assert np.array_equal(np.isnan(h.astype(np.float32)), nan)
    assert np.array_equal(h.view(bits)[~nan], r.view(bits)[~nan])


def _f32(a):
    return a.astype(np.float32) if isinstance(a, np.ndarray) and a.dtype.itemsize == 2 else a


def _check_call(f, args, kw, argnums, dt, gdt=None):
    """value_and_grad of f on the half args equals it on the float32-upcast args, rounded;
    the plain call gives the same value; no input is modified."""
    before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]
    v, g = sl.value_and_grad(f, argnums)(*args, **kw)
    v32, g32 = sl.value_and_grad(f, argnums)(*[_f32(a) for a in args], **{k: _f32(x) for k, x in kw.items()})
    _same(v, v32, dt)
    for gh, gr in zip(g if isinstance(argnums, tuple) else (g,), g32 if isinstance(argnums, tuple) else (g32,)):
        _same(gh, gr, gdt or dt)
    fkw = {k: x for k, x in kw.items() if k != "grad_output"}
    assert np.asarray(f(*args, **fkw)).tobytes() == np.asarray(v).tobytes()
    for a, b in zip(args, before):
        if isinstance(a, np.ndarray):
            assert a.tobytes() == b.tobytes()


def _special(x):
    """A few rows/elements of special values in place: +-inf, NaN, huge, a confident row."""
    f = x.reshape(-1, x.shape[-1]) if x.ndim > 1 else x.reshape(1, -1)
    f[0, 0] = np.inf
    f[1, :] = -np.inf
    f[2, 1] = np.nan
    f[3, 0] = 60
    if f.shape[0] > 4:
        f[4, :] = -1e4 if np.dtype(x.dtype).name == "bfloat16" else -6e4
    return x


ROWWISE = [sl.softmax, sl.log_softmax, sl.logsumexp]


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("f", ROWWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape,axis", [((257, 10), -1), ((5, 9000), -1), ((4, 5, 6), 1), ((7,), 0), ((), 0)])
def test_rowwise_half(dt, f, shape, axis):
    x = (rng.standard_normal(shape) * 4).astype(dt)
    if len(shape) == 2:
        _special(x)
    _check_call(f, (x,), dict(axis=axis), 0, dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("f", ROWWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("gkind", ["half", "float32", "broadcast"])
def test_rowwise_half_grad_output(dt, f, gkind):
    x = (rng.standard_normal((40, 33)) * 3).astype(dt)
    oshape = (40,) if f is sl.logsumexp else (40, 33)
    g = rng.standard_normal(oshape if gkind != "broadcast" else oshape[-1:])
    g = g.astype(dt if gkind != "float32" else np.float32)
    v, gx = sl.value_and_grad(f)(x, grad_output=g)
    v32, gx32 = sl.value_and_grad(f)(x.astype(np.float32), grad_output=g.astype(np.float32))
    _same(v, v32, dt)
    _same(gx, gx32, dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("f", [sl.softmax, sl.log_softmax], ids=lambda f: f.__name__)
def test_rowwise_half_out(dt, f):
    x = (rng.standard_normal((6, 7, 50)) * 3).astype(dt)
    ref = f(x.astype(np.float32), axis=1)
    for axis, want in ((-1, f(x.astype(np.float32))), (1, ref)):
        out = np.full(x.shape, 7, dt)
        assert f(x, axis=axis, out=out) is out
        _same(out, want, dt)
    y = x.copy()
    assert f(y, out=y) is y                            # in place: each block read before written
    _same(y, f(x.astype(np.float32)), dt)
    out = np.empty(x.shape, dt)
    v, _ = sl.value_and_grad(f)(x, out=out)
    assert v is out
    _same(out, f(x.astype(np.float32)), dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("labels", ["same", "float32", "float64"])
@pytest.mark.parametrize("kw", [{}, dict(weight="w"), dict(label_smoothing=0.2), dict(reduction="none"),
                                dict(reduction="sum"), dict(reduction="none", grad_output="g")])
def test_prob_ce_half(dt, labels, kw):
    N, C = 300, 37
    x = _special((rng.standard_normal((N, C)) * 3).astype(dt))
    t = rng.dirichlet(np.ones(C), N).astype(dt if labels == "same" else labels)
    kw = dict(kw)
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.5, 2, C)
    if kw.get("grad_output") == "g":
        kw["grad_output"] = rng.standard_normal(N)
    argnums = (0, 1) if labels != "float64" else 0
    # labels' gradient comes in the logits' dtype
    _check_call(sl.softmax_cross_entropy, (x, t), kw, argnums, dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("C", [5, 9000])
def test_prob_ce_half_labels_float32_logits(dt, C):
    """float32 logits with half labels: the labels are read directly, results in float32."""
    N = 4
    x = (rng.standard_normal((N, C)) * 3).astype(np.float32)
    t = rng.dirichlet(np.ones(C), N).astype(dt)
    _check_call(sl.softmax_cross_entropy, (x, t), dict(reduction="none"), (0, 1), np.float32)
    _check_call(sl.softmax_cross_entropy, (x, t), dict(axis=0), (0, 1), np.float32)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kw", [{}, dict(weight="w"), dict(ignore_index=2), dict(reduction="none"),
                                dict(reduction="sum"), dict(axis=1, reduction="none")])
def test_nll_half(dt, kw):
    kw = dict(kw)
    shape = (40, 6, 3) if kw.get("axis") == 1 else (300, 6)
    lp = sl.log_softmax(rng.standard_normal(shape) * 3, axis=kw.get("axis", -1)).astype(dt)
    lab = rng.integers(0, 6, shape[:1] + shape[2:])
    if kw.get("weight") == "w":
        kw["weight"] = rng.uniform(0.5, 2, 6)
    _check_call(sl.nll_loss, (lp, lab), kw, 0, dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(300, 37), (3, 10000), (5,)])
@pytest.mark.parametrize("kw", [{}, dict(weight="col"), dict(weight="full"), dict(pos_weight="col"),
                                dict(pos_weight="full"),  # full-size pos_weight: the upcast fallback
                                dict(weight="col", pos_weight="col", reduction="none"),
                                dict(reduction="sum"), dict(reduction="none", grad_output="g")])
def test_sigmoid_ce_half(dt, shape, kw):
    """(300, 37): blocks of 8192 elements start mid-row, so the per-column weights are
    taken from the block's first column (rotated), as the float32 call does."""
    x = (rng.standard_normal(shape) * 4).astype(dt)
    x.reshape(-1)[:3] = [np.inf, -np.inf, np.nan]
    z = rng.uniform(0, 1, shape).astype(dt)
    kw = dict(kw)
    for k in ("weight", "pos_weight"):
        if kw.get(k) == "col":
            kw[k] = rng.uniform(0.5, 2, shape[-1])
        elif kw.get(k) == "full":
            kw[k] = rng.uniform(0.5, 2, shape)
    if kw.get("grad_output") == "g":
        kw["grad_output"] = rng.standard_normal(shape).astype(dt)
    _check_call(sl.sigmoid_cross_entropy, (x, z), kw, (0, 1), dt)
    _check_call(sl.sigmoid_cross_entropy, (x, z.astype(np.float32)), kw, (0, 1), dt)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kw", [{}, dict(policy="clip"), dict(policy="add", epsilon=1e-3), dict(policy="exact"),
                                dict(weight="col", reduction="none"), dict(reduction="sum")])
def test_bce_probs_half(dt, kw):
    shape = (300, 37)
    p = rng.uniform(0, 1, shape).astype(dt)
    p.reshape(-1)[:4] = [0, 1, 1e-4, 0.5]
    z = rng.uniform(0, 1, shape).astype(dt)
    kw = dict(kw)
    if kw.get("weight") == "col":
        kw["weight"] = rng.uniform(0.5, 2, shape[-1])
    with np.errstate(all="ignore"):
        _check_call(sl.binary_cross_entropy, (p, z), kw, 0, dt)
    bad = p.copy()
    bad[3, 4] = 1.5
    with pytest.raises(ValueError, match=r"^probs: probabilities must lie in \[0, 1\]; .* at index \(3, 4\)"):
        sl.binary_cross_entropy(bad, z)


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("f", [sl.sigmoid, sl.log_sigmoid], ids=lambda f: f.__name__)
@pytest.mark.parametrize("shape", [(300, 37), (), (10,)])
def test_sigmoid_half(dt, f, shape):
    x = (rng.standard_normal(shape) * 6).astype(dt)
    if x.size >= 5:
        x.reshape(-1)[:5] = [np.inf, -np.inf, np.nan, 80, -80]
    _check_call(f, (x,), {}, 0, dt)
    g = rng.standard_normal(shape).astype(dt)
    v, gx = sl.value_and_grad(f)(x, grad_output=g)
    _same(gx, sl.value_and_grad(f)(x.astype(np.float32), grad_output=g.astype(np.float32))[1], dt)


# one call of every function, for the thread-count and fallback tests
def _calls(dt, n=300, C=200):
    x = (rng.standard_normal((n, C)) * 3).astype(dt)
    t = rng.dirichlet(np.ones(C), n).astype(dt)
    lab = rng.integers(0, C, n)
    p = rng.uniform(0.01, 0.99, (n, C)).astype(dt)
    w = rng.uniform(0.5, 2, C)
    return [(sl.softmax, (x,), {}), (sl.log_softmax, (x,), {}), (sl.logsumexp, (x,), {}),
            (sl.softmax_cross_entropy, (x, t), dict(weight=w)), (sl.softmax_cross_entropy, (x, lab), {}),
            (sl.nll_loss, (x, lab), dict(weight=w)),
            (sl.sigmoid_cross_entropy, (x, p), dict(pos_weight=w)),
            (sl.sigmoid_cross_entropy, (x, p), dict(reduction="none")),
            (sl.binary_cross_entropy, (p, t), dict(weight=w)),
            (sl.sigmoid, (x,), {}), (sl.log_sigmoid, (x,), {})]


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
def test_half_deterministic_across_threads(dt):
    """Blocks depend on the shape only, so 1, 2 and 3 threads give the same bits (the
    60000-element calls are above the parallel threshold)."""
    for f, args, kw in _calls(dt):
        res = [sl.value_and_grad(f)(*args, n_threads=k, **kw) for k in (1, 2, 3)]
        for v, g in res[1:]:
            assert np.asarray(v).tobytes() == np.asarray(res[0][0]).tobytes(), f.__name__
            assert g.tobytes() == res[0][1].tobytes(), f.__name__


@pytest.mark.parametrize("dt", HALF, ids=lambda d: np.dtype(d).name)
def test_half_fallbacks_agree(dt):
    """Layouts the direct path does not take -- grad_out given, non-native byte order --
    go through the float32 upcast and give the same results."""
    for f, args, kw in _calls(dt, 50, 30):
        v, g = sl.value_and_grad(f)(*args, **kw)
        gbuf = np.empty(args[0].shape, dt)
        v2, g2 = sl.value_and_grad(f)(*args, grad_out=gbuf, **kw)
        assert g2 is gbuf
        _same(v2, np.asarray(v).astype(np.float32), dt)
        _same(g2, g.astype(np.float32), dt)
        if dt == np.float16:
            swapped = tuple(a.astype(a.dtype.newbyteorder()) if a.dtype == np.float16 else a for a in args)
            v3, g3 = sl.value_and_grad(f)(*swapped, **kw)
            assert np.asarray(v3).astype(np.float32).tobytes() == np.asarray(v).astype(np.float32).tobytes()
            assert g3.astype(np.float32).tobytes() == g.astype(np.float32).tobytes()


def _peak_beyond_outputs(call):
    call()                                            # warm up
    tracemalloc.start()
    res = call()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    outs = res if isinstance(res, tuple) else (res,)
    return peak - sum(np.asarray(o).nbytes for o in outs)


@pytest.mark.parametrize("family", ["rowwise", "prob_ce", "nll", "bce_logits", "bce_probs", "sigmoid"])
def test_half_makes_no_full_upcast_copy(family):
    """Beyond the returned arrays themselves, the calls allocate less than an eighth of
    a float32 copy of the input (which the upcast path made: N*C*4 bytes)."""
    N, C = 2048, 1000
    dt = np.float16 if sl._core._kernels.half_supported() else HALF[-1]
    x = rng.standard_normal((N, C)).astype(dt)
    t = rng.dirichlet(np.ones(C), N).astype(dt)
    p = rng.uniform(0.01, 0.99, (N, C)).astype(dt)
    lab = rng.integers(0, C, N)
    vg = sl.value_and_grad
    calls = {
        "rowwise": [lambda: sl.softmax(x), lambda: vg(sl.softmax)(x), lambda: vg(sl.log_softmax)(x),
                    lambda: vg(sl.logsumexp)(x)],
        "prob_ce": [lambda: sl.softmax_cross_entropy(x, t), lambda: vg(sl.softmax_cross_entropy, (0, 1))(x, t)],
        "nll": [lambda: vg(sl.nll_loss)(x, lab)],
        "bce_logits": [lambda: sl.sigmoid_cross_entropy(x, p),
                       lambda: vg(sl.sigmoid_cross_entropy, (0, 1))(x, p, reduction="none")],
        "bce_probs": [lambda: vg(sl.binary_cross_entropy)(p, t)],
        "sigmoid": [lambda: vg(sl.sigmoid)(x), lambda: vg(sl.log_sigmoid)(x)],
    }[family]
    for call in calls:
        extra = _peak_beyond_outputs(lambda: _flat(call()))
        assert extra < N * C * 4 / 8, extra


def _flat(res):
    if isinstance(res, tuple):
        v, g = res
        return (v,) + (tuple(g) if isinstance(g, tuple) else (g,))
    return res


@pytest.mark.skipif(len(HALF) < 2, reason="needs ml_dtypes")
def test_half_mixed_kinds():
    """float16 logits with bfloat16 labels (and the reverse, and a byte-swapped float16):
    the labels go through float32, the results come in the logits' dtype."""
    f16, bf16 = np.float16, HALF[1]
    x = (rng.standard_normal((30, 7)) * 3)
    t = rng.dirichlet(np.ones(7), 30)
    for xd, td in ((f16, bf16), (bf16, f16), (np.dtype(">f2"), bf16)):
        xh, th = x.astype(xd), t.astype(td)
        v, (gx, gt) = sl.value_and_grad(sl.softmax_cross_entropy, (0, 1))(xh, th, reduction="none")
        v32, (gx32, gt32) = sl.value_and_grad(sl.softmax_cross_entropy, (0, 1))(
            xh.astype(np.float32), th.astype(np.float32), reduction="none")
        rd = np.dtype(xd).newbyteorder("=")
        for h, r in ((v, v32), (gx, gx32), (gt, gt32)):
            _same(h.astype(rd), r, rd)
        z = t.astype(td)
        v, (gx, gz) = sl.value_and_grad(sl.sigmoid_cross_entropy, (0, 1))(xh, z, reduction="none")
        v32, (gx32, gz32) = sl.value_and_grad(sl.sigmoid_cross_entropy, (0, 1))(
            xh.astype(np.float32), z.astype(np.float32), reduction="none")
        for h, r in ((v, v32), (gx, gx32), (gz, gz32)):
            _same(h.astype(rd), r, rd)
