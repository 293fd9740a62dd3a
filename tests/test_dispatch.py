"""Every compiled SIMD path agrees with the reference and with each other, and the
thread count never changes a bit."""
import os
import subprocess
import sys

import numpy as np
import pytest

import stableloss as sl
from stableloss._core import _kernels as K

PATHS = K.available_paths()


@pytest.fixture
def restore_path():
    before = K.simd_path()
    yield
    K.set_simd_path(before)


def _data(dtype, N=64, C=1000, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((N, C)) * 3).astype(dtype)
    t = rng.integers(0, C, N)
    x[0, t[0]] = x[0].max() + 30          # a confident-correct row (exact path)
    x[1, :C // 2] = -np.inf               # half -inf
    t[1] = C - 1
    return x, t


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_each_path_agrees(dtype, restore_path):
    x, t = _data(dtype)
    res = {}
    for p in PATHS:
        assert K.set_simd_path(p) == p
        loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, reduction="none")
        res[p] = (loss, g, sl.log_softmax(x), sl.logsumexp(x), sl.softmax(x))
    base = res["baseline"]
    tol = 2e-6 if dtype == np.float32 else 1e-14
    for p, r in res.items():
        for a, b in zip(r, base):
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol * np.abs(b[np.isfinite(b)]).max())
    if "avx512" in res:  # same 16-lane order and FMA contraction: bitwise equal
        for a, b in zip(res["avx512"], res["avx2"]):
            assert np.array_equal(a, b)


def test_env_var_caps_the_path():
    code = "from stableloss._core import _kernels as K; print(K.simd_path())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "STABLELOSS_SIMD": "baseline"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "baseline"


def test_unknown_or_unavailable_path_falls_back(restore_path):
    assert K.set_simd_path("avx512") in PATHS
    assert K.set_simd_path("") == PATHS[-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(4096, 100), (300, 3000), (3, 50000)])
def test_bitwise_identical_across_threads(dtype, shape):
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(shape) * 4).astype(dtype)
    t = rng.integers(0, shape[1], shape[0])
    prev = sl.set_num_threads(1)          # returns the previous setting (0 = automatic)
    try:
        out = []
        for nt in (1, 2, 3):
            sl.set_num_threads(nt)
            out.append((sl.value_and_grad(sl.softmax_cross_entropy)(x, t),
                        sl.sigmoid_cross_entropy(x, (x > 0).astype(dtype)),
                        sl.softmax_cross_entropy(x, t, reduction="sum")))
    finally:
        sl.set_num_threads(prev)
    (l1, g1), b1, s1 = out[0]
    for (l, g), b, s in out[1:]:
        assert l.tobytes() == l1.tobytes() and g.tobytes() == g1.tobytes()
        assert b.tobytes() == b1.tobytes() and s.tobytes() == s1.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("C", [8192, 20000])
def test_split_rows_same_bits_as_rows(dtype, C):
    """Fewer rows than threads: rows are split over threads (ce_index_split); the bits
    must be those of the row-parallel kernel, whatever the thread count."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((3, C)) * 3).astype(dtype)
    t = rng.integers(0, C, 3)
    t[0] = 7
    x[0, 7] = x[0].max() + 25          # confident row: exact pass, split too
    x[1, :50] = -np.inf
    for kw in ({}, {"weight": rng.uniform(0.5, 2, C)}, {"ignore_index": int(t[2])}, {"reduction": "none"}):
        ref = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=1, **kw)
        for nt in (4, 8):
            got = sl.value_and_grad(sl.softmax_cross_entropy)(x, t, n_threads=nt, **kw)
            assert np.asarray(got[0]).tobytes() == np.asarray(ref[0]).tobytes()
            assert got[1].tobytes() == ref[1].tobytes()
            assert np.asarray(sl.softmax_cross_entropy(x, t, n_threads=nt, **kw)).tobytes() == \
                np.asarray(ref[0]).tobytes()
