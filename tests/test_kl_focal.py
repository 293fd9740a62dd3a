"""Core kl_div and sigmoid_focal_loss: values and gradients against mpmath (60 digits)."""
import mpmath as mp
import numpy as np
import pytest

import stableloss as sl

mp.mp.dps = 60
RNG = np.random.default_rng(7)


def _mp_kl(x, t, log_target):
    if log_target:
        return mp.e ** mp.mpf(t) * (mp.mpf(t) - mp.mpf(x)), -mp.e ** mp.mpf(t)
    if t == 0:
        return mp.mpf(0), mp.mpf(0)
    return mp.mpf(t) * (mp.log(mp.mpf(t)) - mp.mpf(x)), -mp.mpf(t)


@pytest.mark.parametrize("log_target", [False, True])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-14), (np.float32, 1e-6)])
def test_kl_div_vs_mpmath(log_target, dtype, rtol):
    x = np.log(RNG.dirichlet(np.ones(6), size=5)).astype(dtype)
    t = RNG.dirichlet(np.ones(6), size=5)
    t[0, 2] = 0.0
    if log_target:
        t = np.log(np.where(t == 0, 1e-30, t))
    t = t.astype(dtype)
    loss, g = sl.value_and_grad(sl.kl_div)(x, t, log_target=log_target, reduction="none")
    for idx in np.ndindex(x.shape):
        v, d = _mp_kl(float(x[idx]), float(t[idx]), log_target)
        # the rounding of log t (and of x) bounds the accuracy where log t ~ x: allow
        # a few units of eps * |t| (|log t| + |x|) besides the relative bound
        tt, xx = float(t[idx]), float(x[idx])
        scale = (np.exp(tt) * (abs(tt) + abs(xx))) if log_target else (tt * (abs(np.log(tt)) + abs(xx)) if tt else 0)
        tol = rtol * abs(float(v)) + 4 * np.finfo(dtype).eps * scale + 1e-300
        assert abs(float(loss[idx]) - float(v)) <= tol, idx
        assert abs(float(g[idx]) - float(d)) <= rtol * abs(float(d)), idx


def test_kl_div_special_values_and_broadcast():
    # 0 log 0 = 0; negative target NaN; 0 * -inf NaN; log_target -inf NaN (torch's rules)
    v = sl.kl_div(np.array([-1.0, -1.0, -np.inf]), np.array([0.0, -0.5, 0.0]), reduction="none")
    assert v[0] == 0 and np.isnan(v[1]) and np.isnan(v[2])
    assert np.isnan(sl.kl_div(np.array([-1.0]), np.array([-np.inf]), log_target=True, reduction="none")[0])
    x = np.log(np.array([0.2, 0.3, 0.5]))
    t = RNG.dirichlet(np.ones(3), size=4)
    loss, g = sl.value_and_grad(sl.kl_div)(x, t, reduction="sum")
    np.testing.assert_allclose(loss, np.sum(t * (np.log(t) - x)), rtol=1e-14)
    np.testing.assert_allclose(g, -t.sum(axis=0), rtol=1e-14)      # summed over the broadcast rows
    assert g.shape == (3,)


def _mp_focal(x, z, alpha, gamma):
    x, z = mp.mpf(x), mp.mpf(z)
    s = 1 / (1 + mp.e ** (-x))
    ce = (1 - z) * x + mp.log(1 + mp.e ** (-x))
    u = s * (1 - z) + (1 - s) * z
    at = 1 if alpha is None else alpha * z + (1 - alpha) * (1 - z)
    loss = at * ce * u ** gamma
    d = at * ((s - z) * u ** gamma + (ce * gamma * u ** (gamma - 1) * s * (1 - s) * (1 - 2 * z) if gamma else 0))
    return loss, d


@pytest.mark.parametrize("alpha,gamma", [(0.25, 2.0), (None, 0.0), (0.6, 0.5), (0.25, 3.0)])
def test_focal_vs_mpmath(alpha, gamma):
    x = np.array([-30.0, -5.0, -0.3, 0.0, 0.7, 4.0, 25.0, 40.0])
    z = np.array([0.0, 1.0, 0.0, 1.0, 0.3, 0.0, 1.0, 0.0])
    loss, g = sl.value_and_grad(sl.sigmoid_focal_loss)(x, z, alpha=alpha, gamma=gamma, reduction="none")
    for i in range(x.size):
        v, d = _mp_focal(x[i], z[i], alpha, gamma)
        assert abs(loss[i] - float(v)) <= 1e-13 * abs(float(v)) + 1e-300, i
        assert abs(g[i] - float(d)) <= 1e-12 * abs(float(d)) + 1e-300, i


def test_focal_mean_and_gamma_check():
    x = RNG.normal(size=(4, 3)); z = (RNG.uniform(size=(4, 3)) > 0.5) * 1.0
    assert np.isclose(sl.sigmoid_focal_loss(x, z), sl.sigmoid_focal_loss(x, z, reduction="none").mean(), rtol=1e-15)
    with pytest.raises(ValueError, match="gamma"):
        sl.sigmoid_focal_loss(x, z, gamma=-1.0)
