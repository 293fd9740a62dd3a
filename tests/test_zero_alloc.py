"""grad_out= (no gradient allocation), the in-place gradient (grad_out = the argument
itself), and n_threads=. The reference for each gradient is the same call without
grad_out: the bits must be identical."""
import tracemalloc

import numpy as np
import pytest

import stableloss as sl

rng = np.random.default_rng(0)


def _cases(dt):
    x = (rng.standard_normal((64, 37)) * 4).astype(dt)
    x[0, 3] = x[0].max() + 30                   # one confident row (exact path)
    t = rng.integers(0, 37, 64)
    t[0] = 3
    q = rng.dirichlet(np.ones(37), 64).astype(dt)
    z = (rng.uniform(size=x.shape) > 0.5).astype(dt)
    p = rng.uniform(0.01, 0.99, x.shape).astype(dt)
    lp = sl.log_softmax(x)
    return [
        ("ce_index", sl.softmax_cross_entropy, (x, t), dict(label_smoothing=0.1, ignore_index=5)),
        ("ce_prob", sl.softmax_cross_entropy, (x, q), dict(weight=np.linspace(0.5, 2, 37))),
        ("ce_prob_exact", sl.softmax_cross_entropy, (x * 0 + x[0], q), {}),
        ("nll", sl.nll_loss, (lp, t), dict(ignore_index=1)),
        ("bce_logits", sl.sigmoid_cross_entropy, (x, z), dict(pos_weight=2.0)),
        ("bce_probs", sl.binary_cross_entropy, (p, z), {}),
        ("softmax", sl.softmax, (x,), {}),
        ("log_softmax", sl.log_softmax, (x,), {}),
        ("logsumexp", sl.logsumexp, (x,), {}),
        ("sigmoid", sl.sigmoid, (x,), {}),
        ("log_sigmoid", sl.log_sigmoid, (x,), {}),
    ]


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_grad_out_same_bits_and_same_object(dt):
    for name, f, args, kw in _cases(dt):
        v0, g0 = sl.value_and_grad(f)(*args, **kw)
        buf = np.full_like(args[0], np.nan)
        v1, g1 = sl.value_and_grad(f)(*args, grad_out=buf, **kw)
        assert g1 is buf, name
        assert g1.tobytes() == g0.tobytes(), name
        assert np.asarray(v1).tobytes() == np.asarray(v0).tobytes(), name


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_in_place_gradient_overwrites_the_argument(dt):
    for name, f, args, kw in _cases(dt):
        v0, g0 = sl.value_and_grad(f)(*args, **kw)
        x = args[0].copy()
        v1, g1 = sl.value_and_grad(f)(x, *args[1:], grad_out=x, **kw)
        assert g1 is x, name
        assert x.tobytes() == g0.tobytes(), name
        assert np.asarray(v1).tobytes() == np.asarray(v0).tobytes(), name


def test_in_place_non_last_axis_and_strided():
    x = rng.standard_normal((5, 7, 3))
    t = rng.integers(0, 7, (5, 3))
    v0, g0 = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, axis=1)
    xc = x.copy()
    sl.value_and_grad(sl.softmax_cross_entropy)(xc, t, axis=1, grad_out=xc)
    assert np.array_equal(xc, g0)
    big = rng.standard_normal((10, 7))
    xs = big[::2]                                # non-contiguous logits
    v0, g0 = sl.value_and_grad(sl.softmax_cross_entropy)(xs.copy(), np.arange(5))
    sl.value_and_grad(sl.softmax_cross_entropy)(xs, np.arange(5), grad_out=xs)
    assert np.array_equal(big[::2], g0)


def test_partial_overlap_is_handled_through_scratch():
    buf = rng.standard_normal((9, 6))
    x = buf[:8]
    t = np.arange(8) % 6
    _, g0 = sl.value_and_grad(sl.softmax_cross_entropy)(x.copy(), t)
    out = buf[1:9]                               # C-contiguous, overlaps x shifted by a row
    sl.value_and_grad(sl.softmax_cross_entropy)(x, t, grad_out=out)
    assert np.array_equal(buf[1:9], g0)


def test_grad_out_may_not_overlap_other_inputs():
    x = rng.standard_normal((4, 5))
    q = rng.dirichlet(np.ones(5), 4)
    with pytest.raises(ValueError, match="^grad_out"):
        sl.value_and_grad(sl.softmax_cross_entropy)(x, q, grad_out=q)
    with pytest.raises(ValueError, match="^grad_out"):
        sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, q, grad_out=(x, None))
    with pytest.raises(ValueError, match="^grad_out"):
        sl.value_and_grad(sl.softmax_cross_entropy)(x, q, grad_out=np.empty((4, 4)))
    with pytest.raises(ValueError, match="^grad_out"):
        sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, q, grad_out=(np.empty_like(x),))


def test_grad_out_tuple_for_several_argnums():
    x = rng.standard_normal((4, 5))
    q = rng.dirichlet(np.ones(5), 4)
    ga, gb = np.empty_like(x), np.empty_like(q)
    v, (g1, g2) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, q, grad_out=(ga, gb))
    _, (r1, r2) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, q)
    assert g1 is ga and g2 is gb and np.array_equal(g1, r1) and np.array_equal(g2, r2)


def test_in_place_path_allocates_no_n_by_c_array():
    N, C = 2048, 1000
    x = rng.standard_normal((N, C)).astype(np.float32)
    t = rng.integers(0, C, N)
    vg = sl.value_and_grad(sl.softmax_cross_entropy)
    vg(x.copy(), t, grad_out=np.empty_like(x))  # warm up
    tracemalloc.start()
    vg(x, t, grad_out=x)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < x.nbytes / 8, peak        # O(N) only: per-row losses, labels checks


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_n_threads_validation(bad):
    with pytest.raises((TypeError, ValueError), match="^n_threads"):
        sl.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1]), n_threads=bad)


def test_n_threads_keyword_gives_the_same_bits():
    x = rng.standard_normal((3000, 300)).astype(np.float32)
    t = rng.integers(0, 300, 3000)
    r = [sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=n) for n in (1, 2, 3)]
    for v, g in r[1:]:
        assert v.tobytes() == r[0][0].tobytes() and g.tobytes() == r[0][1].tobytes()


def test_default_threads_respect_threadpoolctl():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from stableloss._config import get_num_threads
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert get_num_threads() == 1
    assert get_num_threads() >= 1
