"""Fused linear cross-entropy (sl.linear_cross_entropy) and the z-loss / per-row lse
options of the index-label CE kernel.

References: the unfused stableloss path (logits = h @ W.T + b, then the CE kernel and
the three gradient products), PyTorch's autograd on the same float64 numbers, mpmath
(tests/_reference.py) for the 1e4-offset exactness test and the per-row lse, finite
differences, and an independent NumPy derivation of the z-loss and its gradient."""
import itertools
import tracemalloc

import numpy as np
import pytest

import stableloss as sl
import stableloss._dispatch as D

import _reference as R

RTOL = 1e-12
VG3 = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1, 3))


def _close(a, b, rtol=RTOL):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def _problem(N, d, V, seed, ii=None, frac_ignored=0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((N, d)).astype(dtype)
    W = (rng.standard_normal((V, d)) * 0.7).astype(dtype)
    b = rng.standard_normal(V).astype(dtype)
    t = rng.integers(0, V, N)
    if ii is not None and N:
        t[rng.random(N) < frac_ignored] = ii
    return h, W, b, t


def _unfused(h, W, b, t, **kw):
    """Value and the three gradients from the logits array (the path the fused one replaces)."""
    x = h @ W.T + b
    kw = dict(kw)
    if "class_weight" in kw:
        kw["weight"] = kw.pop("class_weight")
    val, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, **kw)
    if kw.get("return_lse"):
        val = val
    return val, (g @ W, g.T @ h, g.sum(0))


GRID = list(itertools.product(
    [(1, 3, 5), (9, 4, 13), (37, 6, 50)],      # (N, d, V)
    [None, 4],                                  # chunk_size (V never a multiple of it)
    [None, 2],                                  # ignore_index
    [False, True],                              # class weights
    [0.0, 0.15],                                # label smoothing
    ["mean", "sum", "none"],
))


@pytest.mark.parametrize("shape,cs,ii,use_w,eps,red", GRID)
def test_matches_unfused(shape, cs, ii, use_w, eps, red):
    N, d, V = shape
    h, W, b, t = _problem(N, d, V, hash((shape, cs, ii, use_w, eps, red)) % 2**32, ii)
    cw = np.random.default_rng(1).uniform(0.3, 2.0, V) if use_w else None
    kw = dict(class_weight=cw, ignore_index=ii, label_smoothing=eps, reduction=red)
    val, (gh, gw, gb) = VG3(h, W, t, b, chunk_size=cs, **kw)
    rv, (rh, rw, rb) = _unfused(h, W, b, t, **kw)
    _close(val, rv)
    _close(gh, rh)
    _close(gw, rw)
    _close(gb, rb)
    assert np.asarray(val).dtype == np.float64 and gh.dtype == gw.dtype == gb.dtype == np.float64


torch = None


def _torch():
    return pytest.importorskip("torch")


TORCH_GRID = list(itertools.product([(7, 5, 11), (33, 8, 70)], [10], [None, 3], [False, True],
                                    [0.0, 0.2], ["mean", "sum", "none"], [False, True]))


@pytest.mark.parametrize("shape,cs,ii,use_w,eps,red,bias", TORCH_GRID)
def test_matches_torch(shape, cs, ii, use_w, eps, red, bias):
    torch = _torch()
    F = torch.nn.functional
    N, d, V = shape
    h, W, b, t = _problem(N, d, V, hash((shape, cs, ii, use_w, eps, red, bias)) % 2**32, ii)
    b = b if bias else None
    cw = np.random.default_rng(2).uniform(0.3, 2.0, V) if use_w else None
    ht, Wt = torch.tensor(h, requires_grad=True), torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    out = F.linear_cross_entropy(ht, Wt, torch.tensor(t), linear_bias=bt,
                                 weight=None if cw is None else torch.tensor(cw), reduction=red,
                                 ignore_index=ii, label_smoothing=eps)
    out.backward(torch.ones_like(out))
    argnums = (0, 1, 3) if bias else (0, 1)
    val, gs = sl.value_and_grad(sl.linear_cross_entropy, argnums=argnums)(
        h, W, t, b, class_weight=cw, ignore_index=-100 if ii is None else ii, label_smoothing=eps,
        reduction=red, chunk_size=cs)
    _close(val, out.detach().numpy())
    _close(gs[0], ht.grad.numpy())
    _close(gs[1], Wt.grad.numpy())
    if bias:
        _close(gs[2], bt.grad.numpy())


def test_argnums_select_and_match():
    h, W, b, t = _problem(20, 5, 17, 3)
    full = VG3(h, W, t, b, chunk_size=6)
    for nums in (0, 1, 3, (1,), (3, 0), (0, 1)):
        val, g = sl.value_and_grad(sl.linear_cross_entropy, argnums=nums)(h, W, t, b, chunk_size=6)
        assert val == full[0]
        pos = {0: 0, 1: 1, 3: 2}
        if isinstance(nums, int):
            np.testing.assert_array_equal(g, full[1][pos[nums]])
        else:
            assert isinstance(g, tuple) and len(g) == len(nums)
            for n, gi in zip(nums, g):
                np.testing.assert_array_equal(gi, full[1][pos[n]])
    g = sl.grad(sl.linear_cross_entropy, argnums=1)(h, W, t, b, chunk_size=6)
    np.testing.assert_array_equal(g, full[1][1])
    with pytest.raises(TypeError, match="labels"):
        sl.value_and_grad(sl.linear_cross_entropy, argnums=2)(h, W, t, b)
    with pytest.raises(ValueError, match="bias: is None"):
        sl.value_and_grad(sl.linear_cross_entropy, argnums=3)(h, W, t)


def test_finite_differences():
    h, W, b, t = _problem(5, 3, 7, 11, ii=1)
    kw = dict(ignore_index=1, label_smoothing=0.1, z_loss=0.05, chunk_size=2,
              class_weight=np.linspace(0.5, 1.5, 7))
    val, (gh, gw, gb) = VG3(h, W, t, b, **kw)
    step = 1e-6
    for arr, g in ((h, gh), (W, gw), (b, gb)):
        fd = np.empty_like(arr)
        for idx in np.ndindex(arr.shape):
            old = arr[idx]
            arr[idx] = old + step
            fp = sl.linear_cross_entropy(h, W, t, b, **kw)
            arr[idx] = old - step
            fm = sl.linear_cross_entropy(h, W, t, b, **kw)
            arr[idx] = old
            fd[idx] = (fp - fm) / (2 * step)
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-9)


def test_common_offset_exact():
    """+1e4 on every logit (through the bias) leaves loss and gradients as they were, up to
    the rounding of the logits themselves (ulp(1e4) = 1.8e-12); both equal the mpmath loss of
    the very logits computed. A naive exp(x) would overflow."""
    h, W, b, t = _problem(24, 6, 40, 5)
    v0, g0 = VG3(h, W, t, b, chunk_size=7, reduction="none")
    v1, g1 = VG3(h, W, t, b + 1e4, chunk_size=7, reduction="none")
    np.testing.assert_allclose(v1, v0, rtol=0, atol=1e-10)
    for a, c in zip(g1, g0):
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-10)
    # against mpmath on the exact logits the fused pass forms (the same GEMM on one chunk)
    x = h @ W.T + (b + 1e4)
    ref, _ = R.softmax_cross_entropy(x, t, reduction="none")
    _close(sl.linear_cross_entropy(h, W, t, b + 1e4, chunk_size=24, reduction="none"), ref, rtol=1e-14)


def test_confident_rows_keep_their_digits():
    """Each row's target logit 60 above the rest (a one-hot feature times 60): the loss is
    ~ V e^-60 and is returned to full relative accuracy, as by the CE kernel (torch: 0)."""
    rng = np.random.default_rng(8)
    h = np.hstack([rng.standard_normal((6, 4)) * 0.1, np.eye(6)])
    W = np.hstack([rng.standard_normal((9, 4)) * 0.1, np.vstack([60 * np.eye(6), np.zeros((3, 6))])])
    t = np.arange(6)
    loss = sl.linear_cross_entropy(h, W, t, reduction="none", chunk_size=4)
    ref, _ = R.softmax_cross_entropy(h @ W.T, t, reduction="none")
    assert np.all(loss < 1e-24) and np.all(loss > 0)
    _close(loss, ref, rtol=1e-13)


def test_z_loss_and_lse_numpy_derivation():
    """z-loss against an independent derivation: lse by mpmath, loss_n + z lse_n^2 per
    non-ignored row, gradient of the z term 2 z lse_n softmax_n pushed through the GEMMs."""
    h, W, b, t = _problem(11, 4, 9, 21, ii=0, frac_ignored=0.3)
    z = 0.01
    x = h @ W.T + b
    lse_ref = R.logsumexp(x, axis=-1)
    ce_ref, _ = R.softmax_cross_entropy(x, t, ignore_index=0, reduction="none")
    valid = t != 0
    want = np.where(valid, ce_ref + z * lse_ref ** 2, 0.0)
    (loss, lse), (gh, gw, gb) = VG3(h, W, t, b, ignore_index=0, z_loss=z, return_lse=True,
                                    reduction="sum", chunk_size=4)
    _close(loss, want.sum())
    _close(lse, lse_ref)                                        # ignored rows get their lse too
    p = np.exp(x - lse_ref[:, None])
    gx = (p - np.eye(9)[t] + 2 * z * lse_ref[:, None] * p) * valid[:, None]
    _close(gh, gx @ W)
    _close(gw, gx.T @ h)
    _close(gb, gx.sum(0))
    # the same through softmax_cross_entropy, with "mean" and "none"
    (v, l2), g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, ignore_index=0, z_loss=z, return_lse=True)
    _close(v, want.sum() / valid.sum())
    _close(l2, lse_ref)
    _close(g, gx / valid.sum())
    v = sl.softmax_cross_entropy(x, t, ignore_index=0, z_loss=z, reduction="none")
    _close(v, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_z_loss_all_ce_paths(dtype):
    """z-loss / lse leave the tiled (C <= 16) and split (few rows, wide) kernels for the row
    kernel: same results as a wide multi-row call; z = 0 and no lse leave the bits as before."""
    rng = np.random.default_rng(4)
    for N, C in ((40, 5), (1, 20000)):
        x = rng.standard_normal((N, C)).astype(dtype) * 3
        t = rng.integers(0, C, N)
        base = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, reduction="sum")
        same = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, reduction="sum", z_loss=0.0)
        assert base[0] == same[0]
        np.testing.assert_array_equal(base[1], same[1])
        (v, lse), g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, reduction="sum", z_loss=0.2,
                                                                  return_lse=True)
        lse_ref = R.logsumexp(x, axis=-1)
        tol = 1e-6 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(lse, lse_ref, rtol=tol)
        np.testing.assert_allclose(v, float(base[0]) + 0.2 * float(np.sum(lse_ref ** 2)), rtol=tol)
        p = np.exp(x.astype(np.float64) - lse_ref[:, None])
        np.testing.assert_allclose(g, base[1] + 0.4 * lse_ref[:, None] * p, rtol=tol * 10, atol=tol)


def test_lse_special_rows_and_half():
    x = np.array([[0.0, 1.0, np.nan], [1.0, 2.0, 3.0], [-np.inf, -np.inf, -np.inf]])
    t = np.array([0, 1, 2])
    loss, lse = sl.softmax_cross_entropy(x, t, reduction="none", return_lse=True, ignore_index=2)
    assert np.isnan(loss[0]) and np.isnan(lse[0])
    _close(lse[1], R.logsumexp(x[1]))
    assert loss[2] == 0 and lse[2] == -np.inf                  # ignored all -inf row: its lse
    ml = pytest.importorskip("ml_dtypes")
    xb = np.random.default_rng(0).standard_normal((6, 7)).astype(ml.bfloat16)
    tb = np.arange(6)
    (v, l), g = sl.value_and_grad(sl.softmax_cross_entropy)(xb, tb, z_loss=0.1, return_lse=True)
    (v32, l32), g32 = sl.value_and_grad(sl.softmax_cross_entropy)(xb.astype(np.float32), tb, z_loss=0.1,
                                                                  return_lse=True)
    assert l.dtype == ml.bfloat16 and g.dtype == ml.bfloat16
    np.testing.assert_array_equal(l, l32.astype(ml.bfloat16))
    np.testing.assert_array_equal(g, g32.astype(ml.bfloat16))


def test_probability_labels_refuse_z_loss():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="z_loss: only with class-index labels"):
        sl.softmax_cross_entropy(x, np.full((2, 3), 1 / 3), z_loss=0.1)
    with pytest.raises(ValueError, match="return_lse"):
        sl.softmax_cross_entropy(x, np.full((2, 3), 1 / 3), return_lse=True)
    with pytest.raises(ValueError, match="z_loss: must be"):
        sl.softmax_cross_entropy(x, np.zeros(2, int), z_loss=-1.0)
    with pytest.raises(TypeError, match="z_loss"):
        sl.softmax_cross_entropy(x, np.zeros(2, int), z_loss="a")


def test_float32_and_half_inputs():
    h, W, b, t = _problem(30, 8, 45, 6, dtype=np.float32)
    val, (gh, gw, gb) = VG3(h, W, t, b, chunk_size=8)
    rv, rg = _unfused(h, W, b, t)
    assert val.dtype == gh.dtype == gw.dtype == gb.dtype == np.float32
    np.testing.assert_allclose(val, rv, rtol=1e-5)
    for a, c in zip((gh, gw, gb), rg):
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-6)
    ml = pytest.importorskip("ml_dtypes")
    for hd in (np.float16, ml.bfloat16):
        hh, Wh, bh = h.astype(hd), W.astype(hd), b.astype(hd)
        val, g = VG3(hh, Wh, t, bh, chunk_size=8)
        ref, rg = VG3(hh.astype(np.float32), Wh.astype(np.float32), t, bh.astype(np.float32), chunk_size=8)
        assert np.asarray(val).dtype == hd and all(x.dtype == hd for x in g)
        assert val == ref.astype(hd)                 # the float32 computation, rounded
        for a, c in zip(g, rg):
            np.testing.assert_array_equal(a, c.astype(hd))
    # mixed: float32 hidden, float64 weight -> float64
    v = sl.linear_cross_entropy(h, W.astype(np.float64), t)
    assert np.asarray(v).dtype == np.float64


def test_numpy_fallback_without_scipy(monkeypatch):
    h, W, b, t = _problem(25, 5, 300, 9)
    ref = VG3(h, W, t, b, chunk_size=7)
    monkeypatch.setattr(D, "_USE_SCIPY_BLAS", False)
    got = VG3(h, W, t, b, chunk_size=7)
    _close(got[0], ref[0])
    for a, c in zip(got[1], ref[1]):
        _close(a, c)


def test_batch_shapes_out_and_grad_out():
    rng = np.random.default_rng(12)
    h = rng.standard_normal((3, 4, 5))
    W = rng.standard_normal((11, 5))
    t = rng.integers(0, 11, (3, 4))
    out = np.empty((3, 4))
    r = sl.linear_cross_entropy(h, W, t, reduction="none", out=out, chunk_size=5)
    assert r is out
    _close(out, sl.softmax_cross_entropy(h @ W.T, t, reduction="none"))
    gh_o, gw_o = np.empty_like(h), np.empty_like(W)
    go = rng.standard_normal((3, 4))
    v, (gh, gw) = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1))(
        h, W, t, reduction="none", grad_output=go, grad_out=(gh_o, gw_o), chunk_size=5)
    assert gh is gh_o and gw is gw_o
    g = sl.value_and_grad(sl.softmax_cross_entropy)(h @ W.T, t, reduction="none", grad_output=go)[1]
    _close(gh, g @ W)
    _close(gw, np.einsum("abv,abd->vd", g, h))
    with pytest.raises(ValueError, match="must not overlap"):
        sl.value_and_grad(sl.linear_cross_entropy)(h, W, t, grad_out=h)
    # 1-D hidden: one row, scalar labels
    _close(sl.linear_cross_entropy(h[0, 0], W, t[0, 0]), sl.softmax_cross_entropy(W @ h[0, 0], t[0, 0]))
    # no rows: mean is NaN, gradients zero
    v, (gh, gw) = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1))(np.zeros((0, 5)), W,
                                                                               np.zeros(0, int))
    assert np.isnan(v) and gh.shape == (0, 5) and not gw.any()


def test_validation_messages():
    h, W, b, t = _problem(4, 3, 6, 0)
    with pytest.raises(ValueError, match="hidden: last dimension 3 does not match"):
        sl.linear_cross_entropy(h, W[:, :2], t)
    with pytest.raises(ValueError, match=r"bias: expected shape \(6,\)"):
        sl.linear_cross_entropy(h, W, t, b[:5])
    with pytest.raises(ValueError, match="weight: expected shape"):
        sl.linear_cross_entropy(h, W[0], t)
    with pytest.raises(sl.LabelError, match="labels: value 6"):
        sl.linear_cross_entropy(h, W, np.array([0, 1, 6, 2]))
    with pytest.raises(ValueError, match="chunk_size"):
        sl.linear_cross_entropy(h, W, t, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        sl.linear_cross_entropy(h, W, t, chunk_size=2.5)
    with pytest.raises(ValueError, match="class_weight"):
        sl.linear_cross_entropy(h, W, t, class_weight=np.ones(5))
    with pytest.raises(ValueError, match="probability labels"):
        sl.linear_cross_entropy(h, W, np.full((4, 6), 1 / 6))
    h0, W0 = h.copy(), W.copy()
    VG3(h, W, t, b)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(W, W0)


def test_chunk_rule():
    f = D.linear_ce_chunk_rows
    assert f(0, 10, 4) == 0
    assert f(100, 10, 4) == 100                       # small N: one chunk
    assert f(2048, 32000, 4) == 410                   # ceil(N / 5)
    assert f(4096, 128256, 4) == 523                  # the 256 MiB budget
    assert f(100000, 10**6, 8) == 256                 # the floor
    assert f(1000, 10, 4, chunk_size=7) == 7 and f(5, 10, 4, chunk_size=7) == 5


def test_peak_memory_bound():
    """tracemalloc: the fused pass's extra memory (beyond inputs and returned gradients) is
    at most 1/8 of the unfused path's (logits + their gradient, 2 N V)."""
    h, W, b, t = _problem(2560, 16, 2000, 13)
    vg1 = sl.value_and_grad(sl.softmax_cross_entropy)

    def unfused():
        x = h @ W.T + b
        _, g = vg1(x, t)
        return g @ W, g.T @ h, g.sum(0)

    def fused():
        return VG3(h, W, t, b)[1]

    peaks = {}
    for name, fn in (("unfused", unfused), ("fused", fused)):
        fn()
        tracemalloc.start()
        try:
            r = fn()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        peaks[name] = peak - sum(a.nbytes for a in r)
        del r
    assert peaks["unfused"] >= 2 * 2560 * 2000 * 8
    assert peaks["fused"] <= peaks["unfused"] / 8, peaks


# ------------------------------------------------------------------ the PyTorch mirror
def _mirror_case(seed, N=9, d=4, C=7, outf=()):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N, d)), rng.standard_normal((C, *outf, d)) * 0.8,
            rng.standard_normal((C, *outf)), rng.integers(0, C, (N, *outf)))


@pytest.mark.parametrize("red,ii,eps,use_w,bias", list(itertools.product(
    ["mean", "sum", "none"], [None, 2], [0.0, 0.1], [False, True], [False, True])))
def test_mirror_functional_vs_torch(red, ii, eps, use_w, bias):
    torch = _torch()
    from stableloss.torch.nn import functional as SF
    h, W, b, t = _mirror_case(5)
    t[::3] = 2 if ii == 2 else t[::3]
    cw = np.linspace(0.5, 2.0, 7) if use_w else None
    kw = dict(reduction=red, ignore_index=ii, label_smoothing=eps)
    ht, Wt = torch.tensor(h, requires_grad=True), torch.tensor(W, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True) if bias else None
    ref = torch.nn.functional.linear_cross_entropy(ht, Wt, torch.tensor(t), linear_bias=bt,
                                                   weight=None if cw is None else torch.tensor(cw), **kw)
    ref.backward(torch.ones_like(ref))
    val, (gh, gw) = sl.value_and_grad(SF.linear_cross_entropy, argnums=(0, 1))(
        h, W, t, linear_bias=b if bias else None, weight=cw, **kw)
    _close(val, ref.detach().numpy())
    _close(gh, ht.grad.numpy())
    _close(gw, Wt.grad.numpy())
    # the autograd bridge: all three gradients, tensors in and out
    from stableloss.torch import autograd as SA
    x = [torch.tensor(a, requires_grad=True) for a in (h, W, b)]
    out = SA.linear_cross_entropy(x[0], x[1], torch.tensor(t), linear_bias=x[2] if bias else None,
                                  weight=None if cw is None else torch.tensor(cw), **kw)
    out.backward(torch.ones_like(out) * 1.5)
    ref2 = [torch.tensor(a, requires_grad=True) for a in (h, W, b)]
    r2 = torch.nn.functional.linear_cross_entropy(ref2[0], ref2[1], torch.tensor(t),
                                                  linear_bias=ref2[2] if bias else None,
                                                  weight=None if cw is None else torch.tensor(cw), **kw)
    r2.backward(torch.ones_like(r2) * 1.5)
    _close(out.detach().numpy(), r2.detach().numpy())
    for p, q in zip(x[:3 if bias else 2], ref2):
        _close(p.grad.numpy(), q.grad.numpy())
    if not bias:
        assert x[2].grad is None


def test_mirror_kdim_probabilities_and_unbatched():
    torch = _torch()
    from stableloss.torch.nn import functional as SF
    TF = torch.nn.functional
    h, W, b, t = _mirror_case(6, outf=(2, 3))
    for bias in (None, b):
        ref = TF.linear_cross_entropy(torch.tensor(h), torch.tensor(W), torch.tensor(t),
                                      linear_bias=None if bias is None else torch.tensor(bias))
        _close(SF.linear_cross_entropy(h, W, t, linear_bias=bias), ref.numpy())
    h, W, b, t = _mirror_case(7)
    q = np.random.default_rng(0).dirichlet(np.ones(7), 9)
    ht, Wt = torch.tensor(h, requires_grad=True), torch.tensor(W, requires_grad=True)
    ref = TF.linear_cross_entropy(ht, Wt, torch.tensor(q), label_smoothing=0.1)
    ref.backward()
    val, (gh, gw) = sl.value_and_grad(SF.linear_cross_entropy, argnums=(0, 1))(h, W, q, label_smoothing=0.1)
    _close(val, ref.detach().numpy())
    _close(gh, ht.grad.numpy())
    _close(gw, Wt.grad.numpy())
    ref = TF.linear_cross_entropy(torch.tensor(h[0]), torch.tensor(W), torch.tensor(t[0]))
    _close(SF.linear_cross_entropy(h[0], W, t[0]), ref.numpy())


def test_mirror_errors_and_warnings_match_torch():
    torch = _torch()
    from stableloss.torch.nn import functional as SF
    import warnings
    TF = torch.nn.functional
    h, W, b, t = _mirror_case(8)
    W3 = np.zeros((7, 2, 4))
    # (an int32 target is accepted, as by the mirror's cross_entropy: docs/torch.md)
    cases = [
        ((h[None], W, t), {}),
        ((h, W[0], t), {}),
        ((h, W[:, :3], t), {}),
        ((h, W, t), dict(linear_bias=b[:5])),
        ((h[0], W3, t[0]), {}),
        ((h, W, np.full((9, 7), 1 / 7)), dict(ignore_index=1)),
        ((h, W, np.array([0, 1, 2, 3, 4, 5, 6, 7, 0])), {}),
        ((h, W, t), dict(reduction="avg")),
        ((h, W.astype(np.float32), t), {}),
        ((h, W, t), dict(label_smoothing=1.5)),
    ]
    for args, kw in cases:
        targs = [torch.tensor(a) for a in args]
        tkw = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
        with pytest.raises(Exception) as te:
            TF.linear_cross_entropy(*targs, **tkw)
        with pytest.raises(type(te.value)) as se:
            SF.linear_cross_entropy(*args, **kw)
        assert str(se.value) == str(te.value), (args[0].shape, kw)
    opts = torch.nn.LinearCrossEntropyOptions()
    for kw in (dict(label_smoothing=0.1), dict(linear_bias=np.zeros(7))):
        with warnings.catch_warnings(record=True) as tw:
            warnings.simplefilter("always")
            TF.linear_cross_entropy(torch.tensor(h), torch.tensor(W), torch.tensor(t), options=opts,
                                    **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                       for k, v in kw.items()})
        with warnings.catch_warnings(record=True) as sw:
            warnings.simplefilter("always")
            SF.linear_cross_entropy(h, W, t, options=opts, **kw)
        assert [str(w.message) for w in sw] == [str(w.message) for w in tw]
    # options.batch_chunk_size is the chunk size; values as without
    o3 = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=3)
    _close(SF.linear_cross_entropy(h, W, t, options=o3), SF.linear_cross_entropy(h, W, t))


def test_mirror_module_matches_torch_module():
    torch = _torch()
    import inspect
    import stableloss.torch.nn as snn
    assert (str(inspect.signature(snn.LinearCrossEntropyLoss.__init__)).replace("torch.nn.modules."
            "linear_cross_entropy_options.LinearCrossEntropyOptions | None", "NoneType")
            .count("=") == str(inspect.signature(torch.nn.LinearCrossEntropyLoss.__init__)).count("="))
    tm = torch.nn.LinearCrossEntropyLoss(4, 7, bias=True, dtype=torch.float64, ignore_index=1,
                                         label_smoothing=0.05)
    sm = snn.LinearCrossEntropyLoss(4, 7, bias=True, dtype=torch.float64, ignore_index=1, label_smoothing=0.05)
    assert sm.linear.weight.shape == tuple(tm.linear.weight.shape) and sm.linear.weight.dtype == np.float64
    sm.linear.weight = tm.linear.weight.detach().numpy().copy()
    sm.linear.bias = tm.linear.bias.detach().numpy().copy()
    h, _, _, t = _mirror_case(9)
    ht = torch.tensor(h, requires_grad=True)
    ref = tm(ht, torch.tensor(t))
    ref.backward()
    _close(sm(h, t), ref.detach().numpy())
    _close(sm.backward(), ht.grad.numpy())
    _close(sm.linear.grad_weight, tm.linear.weight.grad.numpy())
    _close(sm.linear.grad_bias, tm.linear.bias.grad.numpy())
    _close(sl.value_and_grad(sm)(h, t)[1], ht.grad.numpy())
    for bad in (dict(weight=np.ones(3)), dict(label_smoothing=2.0)):
        with pytest.raises(RuntimeError) as te:
            torch.nn.LinearCrossEntropyLoss(4, 7, **{k: torch.tensor(v) if isinstance(v, np.ndarray) else v
                                                     for k, v in bad.items()})
        with pytest.raises(RuntimeError, match=str(te.value).replace("(", r"\(").replace(")", r"\)")
                           .replace("[", r"\[").replace("]", r"\]")):
            snn.LinearCrossEntropyLoss(4, 7, **bad)


def test_mirror_float32_vs_torch():
    torch = _torch()
    from stableloss.torch.nn import functional as SF
    rng = np.random.default_rng(10)
    h = rng.standard_normal((300, 32)).astype(np.float32)
    W = (rng.standard_normal((1000, 32)) * 0.3).astype(np.float32)
    t = rng.integers(0, 1000, 300)
    ht, Wt = torch.tensor(h, requires_grad=True), torch.tensor(W, requires_grad=True)
    ref = torch.nn.functional.linear_cross_entropy(ht, Wt, torch.tensor(t))
    ref.backward()
    val, (gh, gw) = sl.value_and_grad(SF.linear_cross_entropy, argnums=(0, 1))(ht, Wt, torch.tensor(t))
    assert val.dtype == torch.float32 and gh.dtype == torch.float32
    np.testing.assert_allclose(val.numpy(), ref.detach().numpy(), rtol=2e-6)
    np.testing.assert_allclose(gh.numpy(), ht.grad.numpy(), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(gw.numpy(), Wt.grad.numpy(), rtol=1e-4, atol=1e-7)
