"""Memory bounds: no leak over many calls, and the cross-entropy family's peak allocation.

- RSS (``/proc/self/statm``) does not grow over repeated calls -- forward, value_and_grad,
  the half path, multi-axis logsumexp and the LabelError path (an exception path that
  leaked a buffer would show here). 10,000 calls in the fast suite, 100,000 with
  ``--runslow`` (about 30 s on the 2-core CI machine).
- tracemalloc (NumPy reports its allocations to it) bounds the peak of CE forward and
  forward + backward: nothing beyond the gradient and O(N) (per-row losses, int64 labels);
  the in-place path (``grad_out=`` the logits) allocates no N x C array at all. The
  kernels themselves allocate nothing on the float32/float64 paths.
"""
from __future__ import annotations

import os
import sys
import tracemalloc

import numpy as np
import pytest

import stableloss as sl

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")

rng = np.random.default_rng(0)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _small_calls():
    x = rng.standard_normal((4, 6))
    t = np.array([1, 5, 2, 0])
    bad = np.array([1, 9, 2, 0])
    z = (x > 0).astype(np.float64)
    h = x.astype(np.float16)
    vg = sl.value_and_grad(sl.softmax_cross_entropy)

    def label_error():
        try:
            sl.softmax_cross_entropy(x, bad)
        except sl.LabelError:
            pass
        else:  # pragma: no cover
            raise AssertionError("no LabelError")

    return [
        lambda: sl.softmax_cross_entropy(x, t),
        lambda: vg(x, t, label_smoothing=0.1),
        lambda: sl.value_and_grad(sl.sigmoid_cross_entropy, argnums=(0, 1))(x, z),
        lambda: sl.log_softmax(h),
        lambda: sl.value_and_grad(sl.softmax)(h),
        lambda: sl.logsumexp(x, axis=(0, 1)),
        label_error,
    ]


def _rss_growth(n_calls):
    calls = _small_calls()
    for i in range(3000):                       # warm-up: caches, the allocator's arenas
        calls[i % len(calls)]()
    r0 = rss_bytes()
    for i in range(n_calls):
        calls[i % len(calls)]()
    return rss_bytes() - r0


def test_no_rss_growth_10k_calls():
    growth = _rss_growth(10_000)
    assert growth < 1 << 20, f"RSS grew by {growth / 1024:.0f} KiB over 10,000 calls"


@pytest.mark.slow
def test_no_rss_growth_100k_calls():
    growth = _rss_growth(100_000)
    assert growth < 2 << 20, f"RSS grew by {growth / 1024:.0f} KiB over 100,000 calls"


# ---------------------------------------------------------------- tracemalloc peaks
N, C = 4096, 1000


def _peak(f):
    f()                                         # warm-up (lazy imports, caches)
    tracemalloc.start()
    try:
        f()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module")
def big():
    x = rng.standard_normal((N, C)).astype(np.float32)
    t = rng.integers(0, C, N)
    q = rng.dirichlet(np.ones(C), N).astype(np.float32)
    z = (rng.uniform(size=(N, C)) > 0.5).astype(np.float32)
    return x, t, q, z


O_N = 64 * N + (256 << 10)      # per-row float64 losses, int64 labels, a few small arrays


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_ce_forward_allocates_o_n(big, reduction):
    x, t, q, z = big
    assert _peak(lambda: sl.softmax_cross_entropy(x, t, reduction=reduction)) <= O_N
    assert _peak(lambda: sl.softmax_cross_entropy(x, q, reduction=reduction)) <= O_N
    assert _peak(lambda: sl.nll_loss(x, t, reduction=reduction)) <= O_N


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_ce_forward_backward_allocates_gradient_plus_o_n(big, reduction):
    """Peak of value_and_grad <= the gradient + O(N) (the logits are the caller's)."""
    x, t, q, z = big
    vg = sl.value_and_grad
    for name, f in [
        ("ce_index", lambda: vg(sl.softmax_cross_entropy)(x, t, reduction=reduction, label_smoothing=0.1)),
        ("ce_prob", lambda: vg(sl.softmax_cross_entropy)(x, q, reduction=reduction)),
        ("nll", lambda: vg(sl.nll_loss)(x, t, reduction=reduction)),
    ]:
        peak = _peak(f)
        assert peak <= x.nbytes + O_N, f"{name}: peak {peak / 2**20:.2f} MiB, logits {x.nbytes / 2**20:.2f} MiB"
    # both gradients of probability-label CE: two N x C results, nothing more
    peak = _peak(lambda: vg(sl.softmax_cross_entropy, argnums=(0, 1))(x, q, reduction=reduction))
    assert peak <= 2 * x.nbytes + O_N


def test_in_place_gradients_allocate_no_n_by_c_array(big):
    """grad_out= the differentiated argument: nothing of the input's size is allocated
    (tests/test_zero_alloc.py checks the bits; this checks the bytes)."""
    x0, t, q, z = big
    vg = sl.value_and_grad
    p0 = np.clip(np.abs(x0) / 5, 0.01, 0.99).astype(np.float32)
    cases = [
        ("ce_index", lambda x: vg(sl.softmax_cross_entropy)(x, t, grad_out=x)),
        ("ce_index_none", lambda x: vg(sl.softmax_cross_entropy)(x, t, reduction="none", grad_out=x)),
        ("ce_prob", lambda x: vg(sl.softmax_cross_entropy)(x, q, grad_out=x)),
        ("nll", lambda x: vg(sl.nll_loss)(x, t, grad_out=x)),
        ("sigmoid_ce", lambda x: vg(sl.sigmoid_cross_entropy)(x, z, grad_out=x)),
        ("bce_probs", lambda x: vg(sl.binary_cross_entropy)(x, z, grad_out=x)),
    ]
    for name, f in cases:
        src = p0 if name == "bce_probs" else x0
        bufs = [src.copy(), src.copy()]
        f(bufs[0])                              # warm-up
        tracemalloc.start()
        try:
            f(bufs[1])
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < src.nbytes / 8, f"{name}: {peak / 2**20:.2f} MiB allocated"
