"""Results that must not depend on the compiler (GCC or clang builds; CI runs the suite on
both, and tools/compare_builds.py compares two builds bit for bit).

The row kernels' min/max once used `#pragma omp simd reduction(min:..) reduction(max:..)`:
OpenMP leaves the initial value of the private copies to the implementation, and clang
starts them at the lowest / largest FINITE value, so under clang an all -inf row had the
maximum -FLT_MAX (logsumexp -3.4e38 instead of -inf, log_softmax -inf instead of NaN).
These tests pin the documented special-row values (docs/api.md, "Special rows") on every
SIMD path, for row lengths that reach the vector body and the scalar tail of the min/max
pass, the tiled kernel (C <= 16) and the split-row kernel, in every dtype; under a GCC
build they guard the semantics, under a clang build they fail on the old code.

Expected values come from the rules alone: an all -inf row has logsumexp -inf and NaN
softmax/log_softmax/CE; a row with one finite entry a and -inf elsewhere has logsumexp a,
softmax one-hot, log_softmax 0 / -inf, and index-label CE 0 with a zero gradient at a --
all exact.
"""
import numpy as np
import pytest

import stableloss as sl
from stableloss._core import _kernels as K

ml_dtypes = pytest.importorskip("ml_dtypes")

PATHS = K.available_paths()
WIDTHS = [1, 3, 15, 16, 17, 33, 1000, 1025]
FLOAT = [np.float32, np.float64]
HALF = [np.float16, ml_dtypes.bfloat16]


@pytest.fixture(params=PATHS)
def path(request):
    before = K.simd_path()
    assert K.set_simd_path(request.param) == request.param
    yield request.param
    K.set_simd_path(before)


def _rows(C, dtype, seed=0):
    """Row 0: all -inf; 1: -inf with one NaN; 2: one finite entry (1.25), -inf elsewhere;
    3: ordinary; 4: all -inf again (after an ordinary row); 5: -inf with one +inf."""
    rng = np.random.default_rng(seed)
    x = np.full((6, C), -np.inf)
    x[1, C // 2] = np.nan
    x[2, (C - 1) // 3] = 1.25
    x[3] = rng.standard_normal(C) * 3
    x[5, C - 1] = np.inf
    return x.astype(dtype)


def _nan(a):
    return np.isnan(np.asarray(a, np.float64))


def _check_lse_softmax(x, lse, sm, lsm, C):
    k = (C - 1) // 3
    assert lse[0] == -np.inf and lse[4] == -np.inf, lse
    assert _nan(lse[1]) and lse[5] == np.inf
    assert lse[2] == np.float64(1.25)
    for r in (0, 1, 4, 5):
        assert _nan(sm[r]).all() and _nan(lsm[r]).all(), (r, sm[r], lsm[r])
    onehot = np.zeros(C); onehot[k] = 1
    assert np.array_equal(sm[2].astype(np.float64), onehot)
    lexp = np.full(C, -np.inf); lexp[k] = 0
    assert np.array_equal(lsm[2].astype(np.float64), lexp)
    assert np.isfinite(lse[3]) and np.isfinite(sm[3].astype(np.float64)).all()


@pytest.mark.parametrize("dtype", FLOAT)
@pytest.mark.parametrize("C", WIDTHS)
def test_softmax_family_special_rows(path, dtype, C):
    x = _rows(C, dtype)
    with np.errstate(all="ignore"):
        lse, sm, lsm = sl.logsumexp(x), sl.softmax(x), sl.log_softmax(x)
        # the gradients (the lse VJP is softmax; NaN rows give NaN rows)
        _, glse = sl.value_and_grad(sl.logsumexp)(x)
        _, gsm = sl.value_and_grad(sl.log_softmax)(x, grad_output=np.ones_like(x))
    _check_lse_softmax(x, lse, sm, lsm, C)
    assert _nan(glse[0]).all() and _nan(glse[4]).all()
    assert np.array_equal(glse[2], sm[2])
    assert _nan(gsm[0]).all()


@pytest.mark.parametrize("dtype", FLOAT)
@pytest.mark.parametrize("C", WIDTHS)
def test_cross_entropy_special_rows(path, dtype, C):
    x = _rows(C, dtype)
    k = (C - 1) // 3
    y = np.array([0, 0, k, 0, C - 1, 0])
    with np.errstate(all="ignore"):
        loss = sl.softmax_cross_entropy(x, y, reduction="none")
        _, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="sum")
        t = np.zeros_like(x); t[:, 0] = 1; t[2, :] = 0; t[2, k] = 1
        lp = sl.softmax_cross_entropy(x, t, reduction="none")
        _, (gpx, gpt) = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, t, reduction="sum")
    for r in (0, 1, 4, 5):
        assert _nan(loss[r]) and _nan(lp[r]), (r, loss[r], lp[r])
        assert _nan(gpx[r]).all() and _nan(gpt[r]).all(), r
    for r in (0, 1, 4):
        assert _nan(g[r]).all(), (r, g[r])
    # one finite entry at the target: loss exactly 0, gradient exactly 0 (index labels;
    # with probability labels the zero-probability classes at -inf give 0 * inf = NaN,
    # as in PyTorch)
    assert loss[2] == 0
    assert np.array_equal(g[2], np.zeros(C))
    assert np.isfinite(loss[3]) and np.isfinite(lp[3])


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("C", [3, 17, 1000])
def test_half_special_rows_are_the_float32_call(path, dtype, C):
    x = _rows(C, dtype)
    x32 = x.astype(np.float32)
    y = np.array([0, 0, (C - 1) // 3, 0, C - 1, 0])
    with np.errstate(all="ignore"):
        got = [sl.logsumexp(x), sl.softmax(x), sl.log_softmax(x),
               sl.softmax_cross_entropy(x, y, reduction="none")]
        ref = [sl.logsumexp(x32), sl.softmax(x32), sl.log_softmax(x32),
               sl.softmax_cross_entropy(x32, y, reduction="none")]
    _check_lse_softmax(x, got[0], got[1], got[2], C)
    for a, b in zip(got, ref):
        assert a.dtype == dtype
        # "bitwise the float32 call" (NaN payloads aside: compared as NaN masks)
        a64, b64 = np.asarray(a, np.float64), np.asarray(b.astype(dtype), np.float64)
        assert np.array_equal(_nan(a64), _nan(b64))
        assert np.array_equal(a64[~_nan(a64)], b64[~_nan(b64)])


@pytest.mark.parametrize("dtype", FLOAT)
def test_split_rows_with_an_all_neg_inf_row(path, dtype):
    """Fewer rows than threads and C >= 8192: the split kernel combines the blocks' min/max;
    an all -inf row (and a -inf/finite mixture spanning several blocks) must give the row
    kernel's bits and the documented values."""
    C = 9000
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2, C)) * 3).astype(dtype)
    x[0] = -np.inf
    x[1, :8000] = -np.inf                   # the maximum only in the last block
    y = np.array([3, 8500])
    with np.errstate(all="ignore"):
        ref = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none", n_threads=1)
        got = sl.value_and_grad(sl.softmax_cross_entropy)(x, y, reduction="none", n_threads=2)
    assert _nan(ref[0][0]) and _nan(ref[1][0]).all() and np.isfinite(ref[0][1])
    assert got[0].tobytes() == ref[0].tobytes() and got[1].tobytes() == ref[1].tobytes()


@pytest.mark.parametrize("dtype", FLOAT)
@pytest.mark.parametrize("C", [16, 17, 1000])
def test_extreme_finite_rows(path, dtype, C):
    """The lowest finite value is a real maximum, not a start value: rows of -max, of -max
    with -inf, and of +max."""
    big = np.finfo(dtype).max
    x = np.full((3, C), -big, dtype)
    x[1, 1:] = -np.inf
    x[2] = big
    lse = sl.logsumexp(x)
    # log C (< 7) is far below half an ulp of max: the exact values round to -+max
    assert lse[0] == -big and lse[1] == -big and lse[2] == big
    assert np.array_equal(sl.softmax(x[1:2])[0], np.eye(C, dtype=dtype)[0])


def test_half_rows_upcast_path_rounds_through_float32(monkeypatch):
    """The upcast path (grad_out given, non-native byte order; before the portable float16
    conversions, every float16 input of a clang 14 build) computes float16 through the
    float32 path; its per-row losses must round as the float32 call's do (float64 ->
    float32 -> float16, what the direct half kernels return), not straight from float64
    (which differed in the last bit on ties). half_supported() is patched off to force it."""
    rng = np.random.default_rng(11)
    # wide logits: losses ~ max - x_y + a tiny log S, i.e. just above a multiple of 1/16,
    # which float32 rounds onto a float16 midpoint (ties to even) -- where the two roundings
    # part
    x = (rng.standard_normal((4000, 300)) * 60).astype(np.float16)
    y = rng.integers(0, 300, x.shape[0])
    ref = sl.softmax_cross_entropy(x.astype(np.float32), y, reduction="none").astype(np.float16)
    direct = sl.softmax_cross_entropy(x, y, reduction="none")
    monkeypatch.setattr(K, "half_supported", lambda: False)
    upcast = sl.softmax_cross_entropy(x, y, reduction="none")
    assert upcast.dtype == np.float16
    assert upcast.tobytes() == ref.tobytes()
    monkeypatch.undo()
    assert K.half_supported()                    # portable float16 conversions: every build
    assert direct.tobytes() == ref.tobytes()
