"""Accuracy of the vectorisable exp/log in sl_math.h, in ulps, against correctly rounded
references (float32 results against float64 libm; float64 results against mpmath).

Stated bounds (docs/performance.md): sl_expf <= 1.07 ulp, sl_exp <= 1.09 ulp,
sl_logf <= 1.07 ulp; sl_log1pf (log of 1 + u rounded, plus a first-order correction)
<= 2 ulp on u >= 0. The default run samples densely; `--runslow` sweeps more.
"""
import math

import numpy as np
import pytest

from stableloss._core import _kernels as K

mpmath = pytest.importorskip("mpmath")


def _ulp_err_f32(got, exact64):
    """|got - exact| in units of the float32 ulp at the exact value."""
    e32 = exact64.astype(np.float32)
    ulp = np.spacing(np.abs(e32)).astype(np.float64)
    ulp = np.where(ulp == 0, np.spacing(np.float32(0)), ulp)
    return np.abs(got.astype(np.float64) - exact64) / ulp


def _sample_f32(lo, hi, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(lo, hi, n).astype(np.float32)
    bits = rng.integers(0, 2**31, n, dtype=np.int64).astype(np.uint32).view(np.float32)
    bits = bits[np.isfinite(bits) & (bits >= lo) & (bits <= hi)]   # log-uniform magnitudes
    return np.concatenate([x, bits, -bits[(-bits >= lo)]])


@pytest.mark.parametrize("n", [pytest.param(2_000_000, id="dense"),
                               pytest.param(50_000_000, id="sweep", marks=pytest.mark.slow)])
def test_expf_ulp(n):
    x = _sample_f32(-104.0, 89.0, n, 1)
    got = K._math_eval("expf", x)
    exact = np.exp(x.astype(np.float64))
    over = exact > np.finfo(np.float32).max * (1 + 2.0**-25)     # rounds to +inf in float32
    assert (got[over] == np.inf).all()
    err = _ulp_err_f32(got[~over], exact[~over])
    assert err.max() <= 1.07, (err.max(), x[~over][np.argmax(err)])
    xb = x[(x >= -86.5) & (x <= 0)]
    assert np.array_equal(K._math_eval("expf_bounded", xb), got[(x >= -86.5) & (x <= 0)])


def test_expf_specials():
    x = np.array([np.nan, np.inf, -np.inf, 89.0, 88.72, -104.0, -103.0, -87.5, 0.0, -0.0], np.float32)
    got = K._math_eval("expf", x)
    assert np.isnan(got[0]) and got[1] == np.inf and got[2] == 0 and got[3] == np.inf
    assert np.isfinite(got[4]) and got[5] == 0 and got[8] == 1 and got[9] == 1
    # subnormal results correctly scaled (within the ulp bound of the subnormal grid)
    ref = np.exp(x[6:8].astype(np.float64))
    assert (_ulp_err_f32(got[6:8], ref) <= 1.07).all() and got[6] > 0


@pytest.mark.parametrize("n", [pytest.param(2_000_000, id="dense"),
                               pytest.param(50_000_000, id="sweep", marks=pytest.mark.slow)])
def test_logf_ulp(n):
    rng = np.random.default_rng(2)
    x = rng.integers(1, 0x7F800000, n, dtype=np.int64).astype(np.uint32).view(np.float32)  # every positive float
    got = K._math_eval("logf", x)
    err = _ulp_err_f32(got, np.log(x.astype(np.float64)))
    assert err.max() <= 1.07, (err.max(), x[np.argmax(err)])


def test_logf_specials():
    x = np.array([0.0, -1.0, np.inf, np.nan, 1.0, 1e-45], np.float32)
    got = K._math_eval("logf", x)
    assert got[0] == -np.inf and np.isnan(got[1]) and got[2] == np.inf and np.isnan(got[3])
    assert got[4] == 0 and abs(got[5] - math.log(1.401298464324817e-45)) < 1e-5


def test_log1pf_ulp():
    rng = np.random.default_rng(3)
    u = np.concatenate([rng.uniform(0, 1, 500_000),
                        10.0 ** rng.uniform(-45, 0, 500_000)]).astype(np.float32)
    got = K._math_eval("log1pf", u)
    err = _ulp_err_f32(got, np.log1p(u.astype(np.float64)))
    assert err.max() <= 2.0, (err.max(), u[np.argmax(err)])


def test_exp_f64_ulp():
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.uniform(-745, 709, 20_000), rng.uniform(-1, 1, 5_000),
                        rng.uniform(-745, -708, 5_000)])
    got = K._math_eval("exp", x)
    mpmath.mp.dps = 40
    worst = 0.0
    for xi, gi in zip(x, got):
        ref = mpmath.exp(mpmath.mpf(float(xi)))
        r = float(ref)
        ulp = math.ulp(r) if r != 0 else math.ulp(0.0)
        worst = max(worst, float(abs(mpmath.mpf(float(gi)) - ref) / ulp))
    assert worst <= 1.09, worst
    xb = x[(x >= -708) & (x <= 0)]
    assert np.array_equal(K._math_eval("exp_bounded", xb), got[(x >= -708) & (x <= 0)])
