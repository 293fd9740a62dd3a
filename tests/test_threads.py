"""Thread safety and thread policy.

- 8 Python threads calling the kernels (and value_and_grad) at once on shared inputs give
  the serial results bit for bit (the kernels hold no global state; results do not depend
  on the thread count by design, so any race would show as different bits or a crash).
- Thread-count controls: ``threadpoolctl.threadpool_limits`` and ``sl.set_num_threads``
  reach the kernels (``sl.get_num_threads`` / ``show_config``); the caveat that OpenMP's
  thread count is a per-thread setting (a limit set in the main thread does not reach the
  workers of a Python thread pool; ``sl.set_num_threads`` does) is pinned here and
  documented in docs/reliability.md.
- A process forked (multiprocessing, "fork") after the parent ran OpenMP kernels can run
  them again without hanging (a timeout turns a hang into a failure). GNU libgomp's worker
  threads do not survive fork() and a parallel region in the child hung before
  stableloss._config made forked children single-threaded (os.register_at_fork).
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import sys
import threading

import numpy as np
import pytest

import stableloss as sl
from stableloss._core import _kernels as K

rng = np.random.default_rng(0)
N, C = 512, 300          # 153,600 elements: above the parallel threshold, so OpenMP runs


def _inputs(dt):
    x = (rng.standard_normal((N, C)) * 3).astype(dt)
    x[0, 5] = x[0].max() + 40                    # a confident row (exact path)
    t = rng.integers(0, C, N)
    q = rng.dirichlet(np.ones(C), N).astype(dt)
    z = (rng.uniform(size=(N, C)) > 0.5).astype(dt)
    p = rng.uniform(0.01, 0.99, (N, C)).astype(dt)
    w = np.linspace(0.5, 2.0, C)
    return x, t, q, z, p, w


def _jobs(dt):
    x, t, q, z, p, w = _inputs(dt)
    vg = sl.value_and_grad
    return [
        ("softmax", lambda: sl.softmax(x)),
        ("log_softmax", lambda: sl.log_softmax(x, axis=0)),
        ("logsumexp", lambda: sl.logsumexp(x)),
        ("sigmoid", lambda: sl.sigmoid(x)),
        ("ce_index", lambda: sl.softmax_cross_entropy(x, t, weight=w, label_smoothing=0.1)),
        ("vg_ce_index", lambda: vg(sl.softmax_cross_entropy)(x, t, ignore_index=3, reduction="none")),
        ("vg_ce_prob", lambda: vg(sl.softmax_cross_entropy, argnums=(0, 1))(x, q)),
        ("vg_nll", lambda: vg(sl.nll_loss)(x, t, reduction="sum")),
        ("vg_sigmoid_ce", lambda: vg(sl.sigmoid_cross_entropy, argnums=(0, 1))(x, z, pos_weight=2.0)),
        ("vg_bce", lambda: vg(sl.binary_cross_entropy)(p, z, policy="clip")),
        ("vg_log_softmax", lambda: vg(sl.log_softmax)(x)),
    ]


def _bits(r):
    if isinstance(r, tuple):
        return tuple(_bits(v) for v in r)
    a = np.asarray(r)
    return (a.dtype.str, a.shape, a.tobytes())


@pytest.mark.parametrize("dt", [np.float32, np.float64, np.float16])
def test_eight_threads_match_serial_bitwise(dt):
    jobs = _jobs(dt)
    serial = {name: _bits(f()) for name, f in jobs}
    barrier = threading.Barrier(8)

    def worker(k):
        barrier.wait()                          # all 8 start together
        out = []
        for r in range(3):
            for name, f in (jobs[k % len(jobs):] + jobs[:k % len(jobs)]):   # different orders
                out.append((name, _bits(f())))
        return out

    with cf.ThreadPoolExecutor(8) as ex:
        results = list(ex.map(worker, range(8)))
    for out in results:
        for name, bits in out:
            assert bits == serial[name], name


def test_threads_do_not_touch_shared_inputs():
    x, t, q, z, p, w = _inputs(np.float64)
    before = [a.tobytes() for a in (x, t, q, z, p, w)]
    with cf.ThreadPoolExecutor(8) as ex:
        list(ex.map(lambda _: sl.value_and_grad(sl.softmax_cross_entropy)(x, t, weight=w), range(16)))
    assert [a.tobytes() for a in (x, t, q, z, p, w)] == before


# ---------------------------------------------------------------- thread-count controls
threadpoolctl = pytest.importorskip("threadpoolctl")


def test_threadpool_limits_reach_the_kernels():
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert K.max_threads() == 1
        assert sl.get_num_threads() == 1
        assert sl.show_config(print_=False)["default_threads"] == 1
        x, t = _inputs(np.float32)[:2]
        limited = _bits(sl.value_and_grad(sl.softmax_cross_entropy)(x, t))
    assert limited == _bits(sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=1))


def test_limits_inside_pool_workers_are_respected():
    """The recipe for a Python thread pool: limit inside each worker (OpenMP's thread count
    is per calling thread) -- every worker then sees 1 and gets the serial bits."""
    jobs = _jobs(np.float32)
    serial = {name: _bits(f()) for name, f in jobs}

    def worker(_):
        with threadpoolctl.threadpool_limits(1, user_api="openmp"):
            seen = (K.max_threads(), sl.get_num_threads())
            return seen, [(n, _bits(f())) for n, f in jobs]

    with cf.ThreadPoolExecutor(4) as ex:
        for seen, out in ex.map(worker, range(4)):
            assert seen == (1, 1)
            assert all(b == serial[n] for n, b in out)


def test_set_num_threads_applies_to_every_thread():
    prev = sl.set_num_threads(1)
    try:
        with cf.ThreadPoolExecutor(4) as ex:
            assert list(ex.map(lambda _: sl.get_num_threads(), range(4))) == [1] * 4
    finally:
        sl.set_num_threads(prev)


def test_main_thread_limit_does_not_reach_pool_workers():
    """Pins the documented caveat (docs/reliability.md): threadpool_limits in the main
    thread sets the main thread's OpenMP thread count only; a worker thread still sees
    OpenMP's default. If OpenMP's default is already 1 there is nothing to show."""
    default = K.max_threads()
    if default == 1:
        pytest.skip("OpenMP's default is 1 thread here")
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert K.max_threads() == 1
        with cf.ThreadPoolExecutor(1) as ex:
            assert ex.submit(K.max_threads).result() == default


# ---------------------------------------------------------------- fork
def _child(conn):
    try:
        x = np.random.default_rng(1).standard_normal((N, C)).astype(np.float32)
        t = np.arange(N) % C
        v, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=2)
        conn.send((float(v), float(np.abs(g).sum()), sl.get_num_threads()))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        conn.send(repr(exc))
    finally:
        conn.close()


@pytest.mark.skipif(sys.platform != "linux", reason="the fork start method")
def test_calls_after_fork_do_not_hang():
    x = np.random.default_rng(1).standard_normal((N, C)).astype(np.float32)
    t = np.arange(N) % C
    v0, g0 = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=2)   # parent's OpenMP team up
    ctx = mp.get_context("fork")
    for _ in range(2):
        parent, child = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(child,))
        proc.start()
        child.close()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.kill()
            proc.join()
            pytest.fail("a stableloss call in a forked child hung")
        assert proc.exitcode == 0
        got = parent.recv()
        assert not isinstance(got, str), got
        assert got[0] == float(v0) and got[1] == float(np.abs(g0).sum())
        assert got[2] == 1              # a forked child runs single-threaded (docs/reliability.md)
    # and the parent still works after its children
    v1, _ = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=2)
    assert float(v1) == float(v0)


# ---------------------------------------------------------------- concurrent calls share the cores
def test_concurrent_calls_share_the_default_thread_count():
    """k calls in flight in k Python threads get default // k threads each (at least 1);
    an explicit n_threads is used as given; nested calls in one thread count once."""
    from stableloss import _config

    default = sl.get_num_threads()
    k = 4
    barrier = threading.Barrier(k)
    seen = []

    def worker():
        with _config.concurrent_call():
            with _config.concurrent_call():                 # nested: still one call
                barrier.wait()
                seen.append((_config.active_calls(), _config.resolve_threads(None),
                             _config.resolve_threads(3)))
                barrier.wait()

    ts = [threading.Thread(target=worker) for _ in range(k)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    assert seen == [(k, max(1, default // k), 3)] * k
    assert _config.active_calls() == 0
    assert _config.resolve_threads(None) == default


def test_public_calls_are_counted_while_they_run(monkeypatch):
    """The dispatch layer enters the counter: a kernel running inside a public call sees
    one active call (itself), and the count is back to 0 afterwards, exceptions included."""
    from stableloss import _config
    from stableloss import _dispatch as D

    seen = []
    real = D.K.lse

    def spy(*args, **kw):
        seen.append(_config.active_calls())
        return real(*args, **kw)

    monkeypatch.setattr(D.K, "lse", spy)
    sl.logsumexp(np.ones((3, 4)))
    assert seen == [1] and _config.active_calls() == 0
    with pytest.raises(ValueError):
        sl.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="avg")
    assert _config.active_calls() == 0
