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
