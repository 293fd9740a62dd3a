"""The core API against PyTorch's own forward and autograd (float64), on the
semantics the core shares with torch (docs/api.md). Skipped without torch."""
import itertools

import numpy as np
import pytest

import stableloss as sl

torch = pytest.importorskip("torch")
F = torch.nn.functional

RTOL = 1e-12


def _close(a, b, rtol=RTOL):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(1.0, float(np.abs(b).max())) if b.size else 1.0
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * scale)


def _torch_grad(fn, x, *args, **kw):
    xt = torch.tensor(x, requires_grad=True)
    out = fn(xt, *args, **kw)
    out.backward(torch.ones_like(out))
    return out.detach().numpy(), xt.grad.numpy()


CE_GRID = list(itertools.product(
    [(6, 5), (3, 4, 2), (2, 3, 2, 2)],      # shapes, class dim 1
    [False, True],                          # weight
    [None, 1],                              # ignore_index
    [0.0, 0.1, 0.7],                        # label smoothing
    ["none", "mean", "sum"],
))


@pytest.mark.parametrize("shape,use_w,ii,eps,red", CE_GRID)
def test_cross_entropy_index(shape, use_w, ii, eps, red):
    rng = np.random.default_rng(hash((shape, use_w, ii, eps, red)) % 2**32)
    x = rng.standard_normal(shape) * 3
    C = shape[1]
    t = rng.integers(0, C, (shape[0],) + shape[2:])
    w = rng.uniform(0.2, 2.0, C) if use_w else None
    kw_t = dict(weight=None if w is None else torch.tensor(w), reduction=red, label_smoothing=eps,
                ignore_index=-100 if ii is None else ii)
    ref, gref = _torch_grad(F.cross_entropy, x, torch.tensor(t), **kw_t)
    val, g = sl.value_and_grad(sl.softmax_cross_entropy)(
        x, t, axis=1, weight=w, ignore_index=ii, label_smoothing=eps, reduction=red)
    _close(val, ref)
    _close(g, gref)


@pytest.mark.parametrize("use_w,eps,red", list(itertools.product([False, True], [0.0, 0.2], ["none", "mean", "sum"])))
def test_cross_entropy_probabilities(use_w, eps, red):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((5, 4, 3)) * 2
    q = rng.dirichlet(np.ones(4), (5, 3)).transpose(0, 2, 1).copy()
    w = rng.uniform(0.5, 2, 4) if use_w else None
    qt = torch.tensor(q, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out = F.cross_entropy(xt, qt, weight=None if w is None else torch.tensor(w), reduction=red,
                          label_smoothing=eps)
    out.backward(torch.ones_like(out))
    val, (gx, gq) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(
        x, q, axis=1, weight=w, label_smoothing=eps, reduction=red)
    _close(val, out.detach().numpy())
    _close(gx, xt.grad.numpy())
    _close(gq, qt.grad.numpy())


@pytest.mark.parametrize("use_w,ii,red", list(itertools.product([False, True], [None, 2], ["none", "mean", "sum"])))
def test_nll(use_w, ii, red):
    rng = np.random.default_rng(3)
    lp = np.log(rng.dirichlet(np.ones(5), 8))
    t = rng.integers(0, 5, 8)
    w = rng.uniform(0.5, 2, 5) if use_w else None
    ref, gref = _torch_grad(F.nll_loss, lp, torch.tensor(t), weight=None if w is None else torch.tensor(w),
                            ignore_index=-100 if ii is None else ii, reduction=red)
    val, g = sl.value_and_grad(sl.nll_loss)(lp, t, weight=w, ignore_index=ii, reduction=red)
    _close(val, ref)
    _close(g, gref)


@pytest.mark.parametrize("wshape,pw,red", list(itertools.product([None, (4,), (3, 4), ()], [None, (4,), ()],
                                                                  ["none", "mean", "sum"])))
def test_bce_with_logits(wshape, pw, red):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 4)) * 8
    x[0, 0], x[0, 1], x[1, 0] = 45.0, -45.0, 0.0
    z = rng.uniform(0, 1, (3, 4))
    z[0, :2] = [1.0, 0.0]
    w = None if wshape is None else rng.uniform(0.5, 2, wshape)
    p = None if pw is None else rng.uniform(0.5, 3, pw)
    zt = torch.tensor(z, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    out = F.binary_cross_entropy_with_logits(xt, zt, weight=None if w is None else torch.tensor(w),
                                             pos_weight=None if p is None else torch.tensor(p), reduction=red)
    out.backward(torch.ones_like(out))
    val, (gx, gz) = sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=(0, 1))(
        x, z, weight=w, pos_weight=p, reduction=red)
    # torch forms max(-x,0) + log1p(exp(-|x|)) and cancels in the tails, where
    # stableloss is exact: compare there against an absolute tolerance of torch's ulp.
    _close(val, out.detach().numpy(), rtol=1e-12)
    _close(gx, xt.grad.numpy())
    _close(gz, zt.grad.numpy())


@pytest.mark.parametrize("red", ["none", "mean", "sum"])
def test_bce_probs_clamp(red):
    rng = np.random.default_rng(9)
    p = rng.uniform(0, 1, (4, 5))
    p[0, :4] = [0.0, 1.0, 0.0, 1.0]
    z = rng.uniform(0, 1, (4, 5))
    z[0, :4] = [0.0, 1.0, 1.0, 0.0]
    w = rng.uniform(0.5, 2, (5,))
    ref, gref = _torch_grad(F.binary_cross_entropy, p, torch.tensor(z), weight=torch.tensor(w), reduction=red)
    val, g = sl.value_and_grad(sl.binary_cross_entropy)(p, z, weight=w, reduction=red)
    _close(val, ref)
    _close(g, gref)


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_family(axis):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 6, 3)) * 5
    go = rng.standard_normal(x.shape)
    for slf, tf in ((sl.softmax, torch.softmax), (sl.log_softmax, torch.log_softmax)):
        xt = torch.tensor(x, requires_grad=True)
        out = tf(xt, axis)
        out.backward(torch.tensor(go))
        val, g = sl.value_and_grad(slf)(x, axis, grad_output=go)
        _close(val, out.detach().numpy())
        _close(g, xt.grad.numpy())
    xt = torch.tensor(x, requires_grad=True)
    out = torch.logsumexp(xt, axis)
    gl = rng.standard_normal(out.shape)
    out.backward(torch.tensor(gl))
    val, g = sl.value_and_grad(sl.logsumexp)(x, axis, grad_output=gl)
    _close(val, out.detach().numpy())
    _close(g, xt.grad.numpy())


def test_sigmoid_pair():
    x = np.array([-60.0, -40.0, -3.0, -1e-3, 0.0, 2.5, 40.0, 60.0])
    for slf, tf in ((sl.sigmoid, torch.sigmoid), (sl.log_sigmoid, F.logsigmoid)):
        ref, gref = _torch_grad(tf, x)
        val, g = sl.value_and_grad(slf)(x)
        _close(val, ref)
        _close(g, gref)
