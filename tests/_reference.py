"""High-precision (mpmath) reference implementation of the stableloss contract.

Recipe (every function in this module follows it):

1. Every input element ``v`` is taken at its EXACT value: ``mp.mpf(float(v))``.  For float32 /
   float16 inputs ``float(v)`` is exact, so the reference is the exact-arithmetic answer for the
   very numbers the library was given (NOT for the float64 numbers they were rounded from).
   Python-float parameters (``label_smoothing``, ``epsilon``) are also taken exactly.
2. All arithmetic is done in a private mpmath context with ``mp.dps = 60`` (about 200 bits),
   so each intermediate carries a relative error of ~1e-60.  The formulas are arranged so that
   no cancellation can eat those 60 digits in the quantities the tests check:
     * a row is shifted by its (first) maximum ``m``: ``d_c = x_c - m <= 0``;
     * ``S = sum_c exp(d_c) = 1 + R`` where ``R`` is the sum over all classes except the
       argmax; ``log S`` is computed as ``log1p(R)`` so that a loss like
       ``log(1 + 2e^-60)`` keeps full relative accuracy;
     * ``lp_c = d_c - log S`` (both terms <= 0 / >= 0: no cancellation);
     * ``1 - p_y`` is computed as ``sum_{c != y} exp(d_c) / S`` (never as ``1 - p_y``);
     * softplus(t) = log1p(exp(t)) for t <= 0 and t + log1p(exp(-t)) for t > 0.
   Sums are plain left-to-right mpmath additions (rounded at 200 bits; ``mp.fsum`` is avoided
   because it sums exactly, which explodes for terms like exp(-1e30)).
3. The final value is rounded ONCE to float64 with round-to-nearest-even, including correct
   rounding into the subnormal range (``_to_f64``).  Reductions ("sum", "mean") are formed
   from the unrounded per-row values and rounded once.

Contract details (docs/api.md) reproduced here:

* special rows (NaN anywhere -> all NaN; all -inf -> logsumexp -inf, softmax / log_softmax /
  CE NaN; any +inf -> logsumexp +inf, softmax / log_softmax / CE / gradients NaN; -inf at
  the target -> CE +inf with finite gradient p - onehot; C = 0 -> logsumexp -inf);
* a term whose coefficient is exactly 0 contributes 0 even when the other factor is +-inf
  (e.g. label_smoothing = 0 with a -inf non-target logit, "exact" BCE with z = 0 at p = 0);
  this mirrors "a term whose coefficient is 0 contributes 0" from the BCE section and what
  PyTorch does for label_smoothing = 0;
* BCE "clip" clips to the exact real interval [eps, 1 - eps] (eps = the Python float given,
  default 1e-7); the "clamp" gradient floor is float32(1e-12) = 9.9999999600419720e-13 (PyTorch's constant, used for float64 too);
* ignored rows (index label == ignore_index) have loss 0 and gradient 0 -- the tests never
  put NaN/inf into ignored rows, whose treatment the contract leaves open.

Only ever call this on small arrays (it is pure Python: ~10 us per element per exp/log).
All public functions return float64 NumPy arrays (or Python floats for reduced losses).
"""

from __future__ import annotations

import math

import numpy as np
import mpmath

mp = mpmath.MPContext()
mp.dps = 60

_ZERO = mp.mpf(0)
_ONE = mp.mpf(1)
_INF = mp.inf
_NINF = mp.ninf
_NAN = mp.nan

__all__ = [
    "mp",
    "logsumexp",
    "softmax",
    "log_softmax",
    "softmax_cross_entropy",
    "softmax_bundle",
    "prob_cross_entropy",
    "nll_loss",
    "sigmoid_cross_entropy",
    "binary_cross_entropy",
    "sigmoid",
    "log_sigmoid",
    "shift_inexact_mask",
    "compute_dtype",
]


# ----------------------------------------------------------------------------------------------
# scalar helpers
# ----------------------------------------------------------------------------------------------
def _mpf(v) -> "mpmath.mpf":
    """Exact value of a float (any NumPy float dtype or Python float) as an mpf."""
    return mp.mpf(float(v))


def _isnan(a) -> bool:
    return mp.isnan(a)


def _to_f64(a) -> float:
    """Round an mpf to the nearest float64 (ties to even), correctly into subnormals.

    Only public mpmath API: ``a.man_exp`` gives ``|a| = man * 2**exp`` exactly (``man`` is
    taken with ``abs`` and the sign from a comparison, as mpmath versions differ in whether
    ``man`` carries it).  The rounding is integer round-half-even at the float64 quantum
    ``2**q``, ``q = max(top - 53, -1074)`` for ``|a|`` in ``[2**(top-1), 2**top)``; the
    rounded ``m * 2**q`` (``m <= 2**53``) is then exact in ``math.ldexp`` unless it reaches
    ``2**1024``, which is the overflow to inf.  (``float(a)`` is not used: mpmath rounds to 53
    bits first and ``ldexp`` rounds again in the subnormal range, a double rounding.)
    """
    if mp.isnan(a):
        return math.nan
    if mp.isinf(a):
        return -math.inf if a < 0 else math.inf
    if not a:
        return 0.0
    neg = a < 0
    man, exp = a.man_exp
    man = abs(int(man))
    exp = int(exp)
    top = exp + man.bit_length()
    if top > 1024:  # |a| >= 2^1024, past the overflow boundary 2^1024 - 2^970
        return -math.inf if neg else math.inf
    if top <= -1075:  # |a| < 2^-1076: below half the smallest subnormal
        return -0.0 if neg else 0.0
    q = max(top - 53, -1074)
    if exp < q:
        shift = q - exp
        m = man >> shift
        rem = man - (m << shift)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and m & 1):
            m += 1
    else:
        m, q = man << (exp - q), q  # exact: fewer than 54 significant bits
    try:
        r = math.ldexp(float(m), q)  # m <= 2^53: float(m) and the scaling are exact
    except OverflowError:
        r = math.inf
    return -r if neg else r


def _softplus(t):
    """log(1 + exp(t)) with full relative accuracy for every t (mp)."""
    if t == _INF:
        return _INF
    if t == _NINF:
        return _ZERO
    if t <= 0:
        return mp.log1p(mp.exp(t))
    return t + mp.log1p(mp.exp(-t))


def _sigmoid(t):
    if t == _INF:
        return _ONE
    if t == _NINF:
        return _ZERO
    if t >= 0:
        return _ONE / (_ONE + mp.exp(-t))
    e = mp.exp(t)
    return e / (_ONE + e)


def _mul0(coef, val):
    """coef * val, with an exactly-zero coefficient contributing exactly 0 (even for inf)."""
    if coef == 0 and not _isnan(val):
        return _ZERO
    return coef * val


def _msum(terms):
    s = _ZERO
    for t in terms:
        s = s + t
    return s


# ----------------------------------------------------------------------------------------------
# row analysis
# ----------------------------------------------------------------------------------------------
class _Row:
    """All pieces of softmax / log_softmax / logsumexp for one row (exact inputs)."""

    __slots__ = ("C", "kind", "x", "imax", "m", "e", "S", "logS", "lse")

    def __init__(self, values):
        vals = [float(v) for v in values]
        self.C = len(vals)
        if self.C == 0:
            self.kind = "empty"
        elif any(v != v for v in vals):
            self.kind = "nan"
        elif any(v == np.inf for v in vals):
            self.kind = "posinf"
        elif all(v == -np.inf for v in vals):
            self.kind = "allneginf"
        else:
            self.kind = "ok"
        if self.kind != "ok":
            return
        self.x = [mp.mpf(v) for v in vals]
        imax = max(range(self.C), key=lambda c: vals[c])  # first maximum
        self.imax = imax
        self.m = m = self.x[imax]
        e = []
        for xc in self.x:
            if xc == _NINF:
                e.append(_ZERO)
            else:
                e.append(mp.exp(xc - m))
        self.e = e
        R = _msum(e[c] for c in range(self.C) if c != imax)
        self.S = _ONE + R
        self.logS = mp.log1p(R)
        self.lse = m + self.logS

    # -- elementwise quantities (only valid for kind == "ok") --
    def d(self, c):
        xc = self.x[c]
        return _NINF if xc == _NINF else xc - self.m

    def lp(self, c):
        xc = self.x[c]
        if xc == _NINF:
            return _NINF
        return (xc - self.m) - self.logS

    def p(self, c):
        return self.e[c] / self.S

    def one_minus_p(self, c):
        """1 - p_c without cancellation."""
        return _msum(self.e[k] for k in range(self.C) if k != c) / self.S


def _as_2d(x, axis):
    """Move ``axis`` last and flatten the rest; returns (2-D array, batch shape)."""
    x = np.asarray(x)
    if x.ndim == 0:
        raise ValueError("reference needs at least 1-D input")
    xm = np.moveaxis(x, axis, -1)
    batch = xm.shape[:-1]
    return xm.reshape(int(np.prod(batch, dtype=np.int64)), xm.shape[-1]), batch


def _from_2d(arr2d, batch, C, axis, ndim):
    out = np.asarray(arr2d, dtype=np.float64).reshape(batch + (C,))
    return np.moveaxis(out, -1, axis if axis >= 0 else ndim + axis)


def compute_dtype(dtype) -> np.dtype:
    """Dtype the contract computes in (float16 -> float32; ints/bool -> float64)."""
    dt = np.dtype(dtype)
    if dt == np.float16:
        return np.dtype(np.float32)
    if dt in (np.dtype(np.float32), np.dtype(np.float64)):
        return dt
    return np.dtype(np.float64)


def _reduce(losses, reduction, denom=None):
    """losses: list of mp values. Returns (value, scale) where scale multiplies grads."""
    if reduction == "none":
        return None, _ONE
    total = _msum(losses)
    if reduction == "sum":
        return _to_f64(total), _ONE
    if reduction == "mean":
        if denom is None:
            denom = mp.mpf(len(losses))
        if denom == 0:
            return float("nan"), _NAN
        return _to_f64(total / denom), _ONE / denom
    raise ValueError(reduction)


# ----------------------------------------------------------------------------------------------
# softmax family
# ----------------------------------------------------------------------------------------------
def logsumexp(x, axis=-1, keepdims=False):
    """Reference log(sum(exp(x))) along ``axis`` (float64 array)."""
    x = np.asarray(x)
    x2, batch = _as_2d(x, axis)
    out = np.empty(x2.shape[0], dtype=np.float64)
    for n in range(x2.shape[0]):
        r = _Row(x2[n])
        if r.kind == "empty" or r.kind == "allneginf":
            out[n] = -np.inf
        elif r.kind == "nan":
            out[n] = np.nan
        elif r.kind == "posinf":
            out[n] = np.inf
        else:
            out[n] = _to_f64(r.lse)
    out = out.reshape(batch)
    if keepdims:
        out = np.expand_dims(out, axis)
    return out


def _rowwise(x, axis, fn):
    x = np.asarray(x)
    x2, batch = _as_2d(x, axis)
    C = x2.shape[1]
    out = np.empty(x2.shape, dtype=np.float64)
    for n in range(x2.shape[0]):
        r = _Row(x2[n])
        if r.kind in ("nan", "posinf", "allneginf"):
            out[n, :] = np.nan
        elif r.kind == "ok":
            out[n, :] = [fn(r, c) for c in range(C)]
    return _from_2d(out, batch, C, axis, x.ndim)


def softmax(x, axis=-1):
    """Reference softmax (float64 array, same shape)."""
    return _rowwise(x, axis, lambda r, c: _to_f64(r.p(c)))


def log_softmax(x, axis=-1):
    """Reference log_softmax (float64 array, same shape)."""
    return _rowwise(x, axis, lambda r, c: _to_f64(r.lp(c)))


def softmax_bundle(x, labels=None):
    """One pass over 2-D ``x`` (axis -1) giving everything the family tests need.

    Returns a dict of float64 arrays: ``lse`` (N,), ``softmax`` (N, C), ``log_softmax``
    (N, C) and, when ``labels`` is given, ``loss`` (N,) and ``grad`` (N, C) of the
    unweighted, unsmoothed index-label cross-entropy with reduction "none" (each row's own
    gradient p - onehot).  Identical numbers to the individual functions, computed once.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError("softmax_bundle takes 2-D input")
    N, C = x.shape
    lse = np.empty(N)
    p = np.empty((N, C))
    lp = np.empty((N, C))
    loss = np.empty(N)
    grad = np.empty((N, C))
    for n in range(N):
        r = _Row(x[n])
        yn = None if labels is None else int(labels[n])
        if r.kind == "ok":
            lse[n] = _to_f64(r.lse)
            pn = [r.p(c) for c in range(C)]
            p[n] = [_to_f64(v) for v in pn]
            lp[n] = [_to_f64(r.lp(c)) for c in range(C)]
            if yn is not None:
                loss[n] = _to_f64(-r.lp(yn))
                g = [_to_f64(v) for v in pn]
                g[yn] = _to_f64(-r.one_minus_p(yn))
                grad[n] = g
        else:
            lse[n] = {"empty": -np.inf, "allneginf": -np.inf, "nan": np.nan,
                      "posinf": np.inf}[r.kind]
            p[n] = lp[n] = loss[n] = grad[n] = np.nan
    out = {"lse": lse, "softmax": p, "log_softmax": lp}
    if labels is not None:
        out["loss"] = loss
        out["grad"] = grad
    return out


# ----------------------------------------------------------------------------------------------
# cross entropy
# ----------------------------------------------------------------------------------------------
def softmax_cross_entropy(logits, labels, *, axis=-1, weight=None, ignore_index=None,
                          label_smoothing=0.0, reduction="none"):
    """Index-label softmax cross-entropy.

    Returns ``(loss, grad)``: ``loss`` is a float64 array of the batch shape for
    reduction="none" or a Python float for "sum"/"mean"; ``grad`` is d(loss)/d(logits) with
    grad_output = 1 (for "none": every row's own unscaled gradient), float64, logits' shape.
    """
    logits = np.asarray(logits)
    x2, batch = _as_2d(logits, axis)
    N, C = x2.shape
    y = np.asarray(labels).reshape(-1)
    if y.shape[0] != N:
        raise ValueError("labels shape mismatch")
    if C == 0:
        raise IndexError("C = 0 with index labels")
    eps = mp.mpf(float(label_smoothing))
    if weight is None:
        w = [_ONE] * C
    else:
        w = [_mpf(v) for v in np.asarray(weight).reshape(-1)]
        assert len(w) == C
    W = _msum(w)
    a = _ONE - eps  # (1 - eps)
    b = eps / C  # eps / C
    losses = []
    grads = []
    denom = _ZERO
    for n in range(N):
        yn = int(y[n])
        if ignore_index is not None and yn == ignore_index:
            losses.append(_ZERO)
            grads.append([_ZERO] * C)
            continue
        if not 0 <= yn < C:
            raise IndexError(f"label {yn} out of range")
        wy = w[yn]
        denom = denom + wy
        r = _Row(x2[n])
        if r.kind != "ok":
            losses.append(_NAN)
            grads.append([_NAN] * C)
            continue
        # loss
        loss = _mul0(a * wy, -r.lp(yn))
        if b != 0:
            loss = loss + b * _msum(_mul0(w[c], -r.lp(c)) for c in range(C))
        losses.append(loss)
        # gradient: p_j*A - B_j, with the j = y entry written without cancellation
        A = a * wy + b * W
        g = []
        for j in range(C):
            if j == yn:
                gj = -(a * wy) * r.one_minus_p(j) + b * (W * r.p(j) - w[j])
            else:
                gj = r.p(j) * A - b * w[j]
            g.append(gj)
        grads.append(g)
    red, scale = _reduce(losses, reduction, denom)
    grad = np.array([[_to_f64(gj * scale) for gj in g] for g in grads], dtype=np.float64)
    grad = _from_2d(grad.reshape(N, C), batch, C, axis, logits.ndim)
    if reduction == "none":
        return np.array([_to_f64(v) for v in losses], dtype=np.float64).reshape(batch), grad
    return red, grad


def prob_cross_entropy(logits, labels, *, axis=-1, weight=None, label_smoothing=0.0,
                       reduction="none"):
    """Probability-label softmax cross-entropy.

    Returns ``(loss, grad_logits, grad_labels)`` (grad_output = 1; "mean" divides by N).
    """
    logits = np.asarray(logits)
    x2, batch = _as_2d(logits, axis)
    z2, _ = _as_2d(np.asarray(labels), axis)
    N, C = x2.shape
    eps = mp.mpf(float(label_smoothing))
    if weight is None:
        w = [_ONE] * C
    else:
        w = [_mpf(v) for v in np.asarray(weight).reshape(-1)]
    a = _ONE - eps
    b = eps / C if C else _ZERO
    losses, gx, gz = [], [], []
    for n in range(N):
        r = _Row(x2[n])
        q = [a * _mpf(v) + b for v in z2[n]]
        if r.kind != "ok" or any(_isnan(qc) for qc in q):
            losses.append(_NAN)
            gx.append([_NAN] * C)
            gz.append([_NAN] * C)
            continue
        wq = [w[c] * q[c] for c in range(C)]
        losses.append(-_msum(_mul0(wq[c], r.lp(c)) for c in range(C)))
        swq = _msum(wq)
        gx.append([r.p(j) * swq - wq[j] for j in range(C)])
        gz.append([_mul0(-a * w[c], r.lp(c)) for c in range(C)])
    red, scale = _reduce(losses, reduction, mp.mpf(N))

    def conv(rows):
        arr = np.array([[_to_f64(v * scale) for v in row] for row in rows], dtype=np.float64)
        return _from_2d(arr.reshape(N, C), batch, C, axis, logits.ndim)

    if reduction == "none":
        loss = np.array([_to_f64(v) for v in losses], dtype=np.float64).reshape(batch)
    else:
        loss = red
    return loss, conv(gx), conv(gz)


def nll_loss(log_probs, labels, *, axis=-1, weight=None, ignore_index=None, reduction="none"):
    """Returns ``(loss, grad)`` for nll_loss (grad wrt log_probs, grad_output = 1)."""
    log_probs = np.asarray(log_probs)
    x2, batch = _as_2d(log_probs, axis)
    N, C = x2.shape
    y = np.asarray(labels).reshape(-1)
    w = [_ONE] * C if weight is None else [_mpf(v) for v in np.asarray(weight).reshape(-1)]
    losses, grads = [], []
    denom = _ZERO
    for n in range(N):
        yn = int(y[n])
        g = [_ZERO] * C
        if ignore_index is not None and yn == ignore_index:
            losses.append(_ZERO)
            grads.append(g)
            continue
        if not 0 <= yn < C:
            raise IndexError(f"label {yn} out of range")
        wy = w[yn]
        denom = denom + wy
        losses.append(-_mul0(wy, _mpf(x2[n, yn])))
        g[yn] = -wy
        grads.append(g)
    red, scale = _reduce(losses, reduction, denom)
    grad = np.array([[_to_f64(v * scale) for v in g] for g in grads], dtype=np.float64)
    grad = _from_2d(grad.reshape(N, C), batch, C, axis, log_probs.ndim)
    if reduction == "none":
        return np.array([_to_f64(v) for v in losses], dtype=np.float64).reshape(batch), grad
    return red, grad


# ----------------------------------------------------------------------------------------------
# elementwise binary losses
# ----------------------------------------------------------------------------------------------
def _elementwise_reduce(vals, shape, reduction):
    red, scale = _reduce(vals, reduction, mp.mpf(len(vals)))
    if reduction == "none":
        return np.array([_to_f64(v) for v in vals], dtype=np.float64).reshape(shape), scale
    return red, scale


def sigmoid_cross_entropy(logits, labels, *, weight=None, pos_weight=None, reduction="none"):
    """BCE-with-logits. Returns ``(loss, grad_logits, grad_labels)`` (grad_output = 1)."""
    x = np.asarray(logits)
    shape = x.shape
    z = np.broadcast_to(np.asarray(labels), shape)
    w = np.broadcast_to(np.asarray(1.0 if weight is None else weight), shape)
    pw = np.broadcast_to(np.asarray(1.0 if pos_weight is None else pos_weight), shape)
    losses, gx, gz = [], [], []
    for xi, zi, wi, pwi in zip(x.reshape(-1), z.reshape(-1), w.reshape(-1), pw.reshape(-1)):
        xm, zm, wm, pm = _mpf(xi), _mpf(zi), _mpf(wi), _mpf(pwi)
        if any(_isnan(v) for v in (xm, zm, wm, pm)):
            losses.append(_NAN); gx.append(_NAN); gz.append(_NAN)
            continue
        L = _ONE + (pm - _ONE) * zm
        spn = _softplus(-xm)  # log1p(exp(-|x|)) + max(-x, 0)
        losses.append(wm * (_mul0(_ONE - zm, xm) + _mul0(L, spn)))
        gx.append(wm * (L * _sigmoid(xm) - pm * zm))
        gz.append(wm * (-xm + _mul0(pm - _ONE, spn)))
    red, scale = _elementwise_reduce(losses, shape, reduction)
    conv = lambda vs: np.array([_to_f64(v * scale) for v in vs], dtype=np.float64).reshape(shape)
    return red, conv(gx), conv(gz)


def binary_cross_entropy(probs, labels, *, weight=None, reduction="none", policy="clamp",
                         epsilon=None):
    """BCE on probabilities. Returns ``(loss, grad_probs)`` (grad_output = 1).

    ``epsilon`` (default 1e-7) is taken at its exact (Python float) value and the contract's
    formulas are evaluated exactly: "clip" uses p_c = min(max(p, eps), 1 - eps) with the exact
    real number 1 - eps (so a clipped-high p gives -log(eps), not -log(1 - fl(1 - eps))).
    The gradient of "exact" at p in {0, 1} and of "clip" exactly at a bound is not specified
    by the contract; NaN is returned there.  The "clamp" gradient floor is float32(1e-12), as PyTorch.
    """
    p = np.asarray(probs)
    shape = p.shape
    if np.any(np.isnan(p)) or np.any(p < 0) or np.any(p > 1):
        raise ValueError("probs outside [0, 1]")
    z = np.broadcast_to(np.asarray(labels), shape)
    w = np.broadcast_to(np.asarray(1.0 if weight is None else weight), shape)
    eps = mp.mpf(float(1e-7 if epsilon is None else epsilon))
    lo = eps
    hi = _ONE - eps
    m100 = mp.mpf(-100)
    losses, gp = [], []
    for pi, zi, wi in zip(p.reshape(-1), z.reshape(-1), w.reshape(-1)):
        pm, zm, wm = _mpf(pi), _mpf(zi), _mpf(wi)
        q = _ONE - pm
        if policy == "clamp":
            lpp = m100 if pm == 0 else max(mp.log(pm), m100)
            lqq = m100 if q == 0 else max(mp.log(q), m100)
            loss = -wm * (zm * lpp + (_ONE - zm) * lqq)
            den = max(pm * q, mp.mpf(float(np.float32(1e-12))))
            g = wm * (pm - zm) / den
        elif policy == "clip":
            pc = min(max(pm, lo), hi)
            loss = -wm * (zm * mp.log(pc) + (_ONE - zm) * mp.log(_ONE - pc))
            if pm < lo or pm > hi:
                g = _ZERO
            elif pm == lo or pm == hi:
                g = _NAN
            else:
                g = wm * (pm - zm) / (pm * q)
        elif policy == "add":
            loss = -wm * (zm * mp.log(pm + eps) + (_ONE - zm) * mp.log(q + eps))
            g = -wm * (zm / (pm + eps) - (_ONE - zm) / (q + eps))
        elif policy == "exact":
            t1 = _ZERO if zm == 0 else zm * (mp.log(pm) if pm > 0 else _NINF)
            t2 = _ZERO if zm == 1 else (_ONE - zm) * (mp.log(q) if q > 0 else _NINF)
            loss = -wm * (t1 + t2)
            g = _NAN if (pm == 0 or pm == 1) else wm * (pm - zm) / (pm * q)
        else:
            raise ValueError(policy)
        losses.append(loss)
        gp.append(g)
    red, scale = _elementwise_reduce(losses, shape, reduction)
    grad = np.array([_to_f64(v * scale) for v in gp], dtype=np.float64).reshape(shape)
    return red, grad


def sigmoid(x):
    """Returns ``(sigmoid(x), d sigmoid / dx)`` elementwise, float64."""
    x = np.asarray(x)
    vals, grads = [], []
    for xi in x.reshape(-1):
        xm = _mpf(xi)
        if _isnan(xm):
            vals.append(np.nan); grads.append(np.nan)
            continue
        s, sn = _sigmoid(xm), _sigmoid(-xm)
        vals.append(_to_f64(s))
        grads.append(_to_f64(s * sn))
    return (np.array(vals, dtype=np.float64).reshape(x.shape),
            np.array(grads, dtype=np.float64).reshape(x.shape))


def log_sigmoid(x):
    """Returns ``(log_sigmoid(x), d log_sigmoid / dx = sigmoid(-x))`` elementwise, float64."""
    x = np.asarray(x)
    vals, grads = [], []
    for xi in x.reshape(-1):
        xm = _mpf(xi)
        if _isnan(xm):
            vals.append(np.nan); grads.append(np.nan)
            continue
        vals.append(_to_f64(-_softplus(-xm)))
        grads.append(_to_f64(_sigmoid(-xm)))
    return (np.array(vals, dtype=np.float64).reshape(x.shape),
            np.array(grads, dtype=np.float64).reshape(x.shape))


# ----------------------------------------------------------------------------------------------
# tolerance helpers (used by the tests to model the one unavoidable rounding)
# ----------------------------------------------------------------------------------------------
def shift_inexact_mask(x, axis=-1):
    """Boolean mask: True where ``x_c - max(row)`` is NOT exactly representable in the
    compute dtype of ``x`` (float16 -> float32).

    An implementation that computes in the input's own dtype must round these differences
    once (relative error <= unit roundoff); the tests add the first-order effect of that one
    rounding to their tolerances.  Exactness is decided with an error-free TwoSum in float64
    (differences of float32 values are exact in float64 unless their exponents differ by > 29,
    in which case TwoSum reports the residual and the element is marked inexact).
    """
    x = np.asarray(x)
    cdt = compute_dtype(x.dtype)
    a = x.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(a, axis=axis, keepdims=True) if a.size else a
        b = -m
        s = a + b
        bb = s - a
        err = (a - (s - bb)) + (b - bb)
        finite = np.isfinite(a) & np.isfinite(m)
        inexact = finite & (err != 0)
        if cdt != np.float64:
            s_c = s.astype(cdt).astype(np.float64)
            inexact |= finite & (s_c != s)
    return inexact
