"""The dispatch layer: the only code that knows layouts.

Every public function is ``validate -> dispatch -> one kernel``. Here the class axis
is moved last and rows made C-contiguous (copying only when needed, never writing to
an input), the compute dtype is picked, outputs are allocated (or ``out=`` used),
kernel status values become exceptions, and reductions are finished.

Each ``*_impl(args, wrt, grad_output, grad_out=None)`` takes the bound arguments of the
public function, the names of the arguments to differentiate (possibly empty), the
cotangent and optionally ``{name: array}`` to write gradients into, and returns
``(value, {name: gradient})``. The public function is
``impl(args, (), None)[0]``; ``value_and_grad`` calls the same impl with ``wrt`` set,
so the value is the same computation, bit for bit (the fused kernels compute the
loss with the same arithmetic whether or not they also write a gradient).
"""
from __future__ import annotations

import math

import numpy as np

from . import _validation as V
from ._config import resolve_threads
from ._core import _kernels as K

_POLICIES = {"clamp": 0, "clip": 1, "add": 2, "exact": 3}


class _Rows:
    """A view of `x` as (N, C) C-contiguous rows with the class axis last."""

    def __init__(self, x, axis):
        self.zero_d = x.ndim == 0
        if self.zero_d:
            x = x.reshape(1)
        self.axis = axis
        self.shape = x.shape
        xm = np.moveaxis(x, axis, -1)
        self.batch = xm.shape[:-1]
        self.C = xm.shape[-1]
        self.N = math.prod(self.batch)
        self.x2 = V.contiguous(xm).reshape(self.N, self.C)

    def to_rows(self, a):
        if self.zero_d:
            a = a.reshape(1)
        return V.contiguous(np.moveaxis(a, self.axis, -1)).reshape(self.N, self.C)

    def from_rows(self, a2):
        a = np.moveaxis(a2.reshape(self.batch + (self.C,)), -1, self.axis)
        return a.reshape(()) if self.zero_d else a

    def direct_out(self, out, cd):
        """(N, C) view of `out` the kernel can write straight into, or None."""
        if (out is not None and out.dtype == cd and out.flags.c_contiguous
                and (self.axis == len(self.shape) - 1 or self.C <= 1 or self.N <= 1)):
            return out.reshape(self.N, self.C)
        return None


def _finish(res, rd, out):
    """Cast `res` to the result dtype and deliver it into `out` when given."""
    if out is not None:
        if not _same_buffer(res, out):
            with np.errstate(over="ignore"):
                np.copyto(out, res, casting="unsafe")
        return out
    if res.dtype != rd:
        with np.errstate(over="ignore"):   # float16 results: overflow to inf is the value
            res = res.astype(rd)
    return res


def _same_buffer(a, b):
    """True when `a` is exactly `b`'s memory (a kernel already wrote the result there)."""
    return a is b or (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
                      and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def _scalar_grad(grad_output, name="grad_output"):
    if grad_output is None:
        return 1.0
    g = np.asarray(grad_output)
    if g.size != 1:
        raise ValueError(f"{name}: the output is a scalar, got an array of shape {g.shape}")
    if g.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real number, got dtype {g.dtype}")
    return float(g.reshape(()))


def _reduce(loss_rows, total, reduction, denom, shape, rd, out):
    if reduction == "none":
        res = loss_rows.reshape(shape)
        return _finish(res.astype(rd) if out is None else res, rd, out)
    if reduction == "sum":
        return rd.type(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        return rd.type(total / denom if denom != 0 else math.nan)


def _row_grad_scale(reduction, grad_output, denom, batch, N):
    """(gscale, grow) for the kernels: per-row cotangents for 'none', else a scalar."""
    if reduction == "none":
        g = V.check_grad_output(grad_output, batch, np.float64)
        return 1.0, (None if g is None else g.reshape(N))
    g0 = _scalar_grad(grad_output)
    if reduction == "sum":
        return g0, None
    return (g0 / denom if denom != 0 else math.nan), None


def _check_reduced_out(out, reduction):
    if out is not None and reduction != "none":
        raise ValueError("out: only used with reduction='none' (reduced losses are scalars)")


def _nt(a):
    return resolve_threads(a.get("n_threads"))


def _inputs(a, names):
    return [np.asarray(a[n]) for n in names if n in a and isinstance(a[n], np.ndarray)]


class _Grad:
    """The buffer a kernel writes one gradient into, and how it reaches the caller.

    With ``grad_out`` (value_and_grad's zero-allocation keyword) the kernel writes
    straight into the caller's array when its layout allows (C-contiguous, compute dtype,
    class axis last), else into a scratch buffer copied there at the end. The array may
    be the very argument being differentiated -- the in-place gradient: the kernels read
    every input value they need before they overwrite it -- but must not overlap any
    other input.
    """

    def __init__(self, name, grad_out, rows, cd, rd, shape, a, others, src):
        self.rows, self.rd, self.target = rows, rd, None
        self.shape = tuple(shape)
        if grad_out is not None and name in grad_out:
            arr = V.check_out(grad_out[name], self.shape, rd, name="grad_out")
            for o in _inputs(a, others):
                if np.shares_memory(arr, o):
                    raise ValueError(f"grad_out: the gradient of {name!r} may overwrite {name!r} "
                                     f"itself but no other input")
            self.target = arr
            view = rows.direct_out(arr, cd) if rows is not None else (
                arr if arr.dtype == cd and arr.flags.c_contiguous else None)
            if view is not None and np.shares_memory(view, src) and not _same_buffer(view, src):
                view = None    # a partial overlap with the kernel's input: go through scratch
            self.buf = view if view is not None else np.empty(
                (rows.N, rows.C) if rows is not None else self.shape, cd)
        else:
            self.buf = np.empty((rows.N, rows.C) if rows is not None else self.shape, cd)

    def aliases(self, arr):
        return np.shares_memory(self.buf, arr)

    def result(self):
        res = self.rows.from_rows(self.buf) if self.rows is not None else self.buf
        return _finish(res, self.rd, self.target)


# ---------------------------------------------------------------- softmax family
def _prep_rowwise(a, xname="x"):
    x, rd = V.float_array(a[xname], xname)
    ax = V.check_axis(a["axis"], x.ndim)
    return _Rows(x, ax), x.dtype, rd


def logsumexp_impl(a, wrt, grad_output, grad_out=None):
    rows, cd, rd = _prep_rowwise(a)
    keep = bool(a["keepdims"])
    oshape = rows.batch if not keep else tuple(1 if i == rows.axis else s for i, s in enumerate(rows.shape))
    if rows.zero_d:
        oshape = ()
    out = V.check_out(a["out"], oshape, rd)
    direct = out if (out is not None and out.dtype == cd and out.flags.c_contiguous) else None
    buf = direct.reshape(rows.N) if direct is not None else np.empty(rows.N, cd)
    K.lse(rows.x2, buf, _nt(a))
    value = _finish(buf.reshape(oshape), rd, out)
    grads = {}
    if wrt:
        g = V.check_grad_output(grad_output, oshape, cd)
        grow = None if g is None else g.reshape(rows.N)
        gx = _Grad("x", grad_out, rows, cd, rd, rows.shape if not rows.zero_d else (), a, (), rows.x2)
        K.softmax(rows.x2, grow, gx.buf, _nt(a))
        grads["x"] = gx.result()
    return value, grads


def _softmax_like(a, wrt, grad_output, log, grad_out=None):
    rows, cd, rd = _prep_rowwise(a)
    out = V.check_out(a["out"], () if rows.zero_d else rows.shape, rd)
    y2 = rows.direct_out(out, cd)
    if y2 is None:
        y2 = np.empty((rows.N, rows.C), cd)
    if log:
        K.log_softmax(rows.x2, y2, _nt(a))
    else:
        K.softmax(rows.x2, None, y2, _nt(a))
    value = _finish(rows.from_rows(y2), rd, out)
    grads = {}
    if wrt:
        shape = () if rows.zero_d else rows.shape
        g = V.check_grad_output(grad_output, shape, cd)
        g2 = np.ones((rows.N, rows.C), cd) if g is None else rows.to_rows(g)
        gx = _Grad("x", grad_out, rows, cd, rd, shape, a, (), rows.x2)
        if gx.aliases(g2) or gx.aliases(y2):
            raise ValueError("grad_out: must not overlap grad_output or the function's output")
        K.softmax_vjp(y2, g2, gx.buf, log, _nt(a))
        grads["x"] = gx.result()
    return value, grads


def softmax_impl(a, wrt, grad_output, grad_out=None):
    return _softmax_like(a, wrt, grad_output, False, grad_out)


def log_softmax_impl(a, wrt, grad_output, grad_out=None):
    return _softmax_like(a, wrt, grad_output, True, grad_out)


# ---------------------------------------------------------------- cross-entropy
def _class_denominator(lab, w, has_ii, ii):
    """Σ over non-ignored positions of w[label] (the count when w is None), in a fixed order."""
    if not has_ii:
        return float(lab.size) if w is None else float(np.sum(w[lab], dtype=np.float64))
    valid = lab != ii
    if w is None:
        return float(np.count_nonzero(valid))
    return float(np.sum(w[lab[valid]], dtype=np.float64))


def _half_logits(a, wrt, grad_out):
    """None, or True/False (bfloat16/float16) when index-label CE can read half-precision
    logits directly: row blocks converted to float32 in cache, the float32 results rounded
    to the half dtype (no grad_out there: the gradient is written through uint16 bits)."""
    x_in = a["logits"]
    hk = V.half_kind(x_in) if isinstance(x_in, np.ndarray) else None
    if (hk and grad_out is None and "labels" not in wrt and np.shape(a["labels"]) != x_in.shape
            and (hk == "bf16" or K.half_supported())):
        return hk == "bf16"
    return None


def softmax_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    half = _half_logits(a, wrt, grad_out)
    if half is None:
        x, rd = V.float_array(a["logits"], "logits")
        cd = x.dtype
    else:  # the rows stay uint16 bits; the kernel converts them block by block
        x, rd, cd = a["logits"].view(np.uint16), a["logits"].dtype, np.dtype(np.float32)
    ax = V.check_axis(a["axis"], x.ndim)
    red = V.check_reduction(a["reduction"])
    eps = V.check_label_smoothing(a["label_smoothing"])
    has_ii, ii = V.check_ignore_index(a["ignore_index"])
    _check_reduced_out(a["out"], red)
    rows = _Rows(x, ax)
    w = V.class_weight(a["weight"], rows.C, cd)
    lab_in = np.asarray(a["labels"])
    prob = lab_in.shape == x.shape
    out = V.check_out(a["out"], rows.batch, rd) if red == "none" else None
    loss = np.empty(rows.N, np.float64)
    grads = {}
    nt = _nt(a)
    if prob:
        t = V.as_compute(lab_in, cd, "labels")
        t2 = rows.to_rows(t)
        gscale, grow = _row_grad_scale(red, grad_output, rows.N, rows.batch, rows.N)
        gx = _Grad("logits", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "logits" in wrt else None
        gt = _Grad("labels", grad_out, rows, cd, rd, x.shape, a, ("logits", "weight"), rows.x2) if "labels" in wrt else None
        if gx is not None and gt is not None and gx.aliases(rows.x2):
            raise ValueError("grad_out: the logits' gradient cannot overwrite the logits when the "
                             "labels' gradient (which reads them) is also requested")
        # unit_mass (mirrors only, e.g. stableloss.tf): logits gradient p - q (TensorFlow's)
        total = K.ce_prob(rows.x2, t2, w, eps, loss, gx and gx.buf, gt and gt.buf, gscale, grow, nt,
                          unit_mass=bool(a.get("unit_mass", False)))
        denom = rows.N
        if gx is not None:
            grads["logits"] = gx.result()
        if gt is not None:
            grads["labels"] = gt.result()
    else:
        if "labels" in wrt:
            raise TypeError("labels: class-index labels are not differentiable; only probability "
                            "labels (the logits' shape) have a gradient")
        lab = V.index_labels(lab_in, rows.batch).reshape(rows.N)
        V.check_label_range(lab, rows.batch, rows.C, has_ii, ii)
        denom = _class_denominator(lab, w, has_ii, ii) if red == "mean" else 1.0
        W = float(np.sum(w, dtype=np.float64)) if w is not None else float(rows.C)
        gscale, grow = _row_grad_scale(red, grad_output, denom, rows.batch, rows.N)
        if half is None:
            gx = _Grad("logits", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "logits" in wrt else None
            total, bad = K.ce_index(rows.x2, lab, w, W, has_ii, ii, eps, loss, gx and gx.buf, gscale, grow, nt)
        else:
            g2 = np.empty((rows.N, rows.C), np.uint16) if "logits" in wrt else None
            total, bad = K.ce_index_half(rows.x2, half, lab, w, W, has_ii, ii, eps, loss, g2, gscale, grow, nt)
            loss = loss.astype(np.float32).astype(np.float64)   # as the float32 call, then rounded
        if bad >= 0:  # unreachable after check_label_range; kept as the kernels' contract
            V.raise_bad_label(lab, rows.batch, bad, rows.C)
        if "logits" in wrt:
            grads["logits"] = gx.result() if half is None else rows.from_rows(g2).view(rd)
    value = _reduce(loss, total, red, denom, rows.batch, rd, out)
    return value, grads


def nll_loss_impl(a, wrt, grad_output, grad_out=None):
    x, rd = V.float_array(a["log_probs"], "log_probs")
    cd = x.dtype
    ax = V.check_axis(a["axis"], x.ndim)
    red = V.check_reduction(a["reduction"])
    has_ii, ii = V.check_ignore_index(a["ignore_index"])
    _check_reduced_out(a["out"], red)
    rows = _Rows(x, ax)
    w = V.class_weight(a["weight"], rows.C, cd)
    lab = V.index_labels(a["labels"], rows.batch).reshape(rows.N)
    V.check_label_range(lab, rows.batch, rows.C, has_ii, ii)
    out = V.check_out(a["out"], rows.batch, rd) if red == "none" else None
    denom = _class_denominator(lab, w, has_ii, ii) if red == "mean" else 1.0
    gscale, grow = _row_grad_scale(red, grad_output, denom, rows.batch, rows.N)
    gx = _Grad("log_probs", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "log_probs" in wrt else None
    loss = np.empty(rows.N, np.float64)
    total, bad = K.nll(rows.x2, lab, w, has_ii, ii, loss, gx and gx.buf, gscale, grow, _nt(a))
    if bad >= 0:
        V.raise_bad_label(lab, rows.batch, bad, rows.C)
    grads = {}
    if gx is not None:
        grads["log_probs"] = gx.result()
    return _reduce(loss, total, red, denom, rows.batch, rd, out), grads


# ---------------------------------------------------------------- binary family
def _elem_weight(weight, shape, cd, name):
    """(array, K): None, a per-last-axis vector of length K, or the full array."""
    K_ = shape[-1] if len(shape) else 1
    if weight is None:
        return None
    w = np.asarray(weight)
    try:
        np.broadcast_shapes(w.shape, shape)
        if np.broadcast_shapes(w.shape, shape) != tuple(shape):
            raise ValueError
    except ValueError:
        raise ValueError(f"{name}: shape {w.shape} does not broadcast to the input shape {tuple(shape)}") from None
    stripped = w.shape
    while stripped and stripped[0] == 1:
        stripped = stripped[1:]
    if w.size == 1 or stripped == (K_,):
        return V.as_compute(np.broadcast_to(w.reshape(-1) if w.size == 1 else w.reshape(K_), (K_,)), cd, name)
    return V.as_compute(np.broadcast_to(w, shape), cd, name)   # materialised (documented)


def _binary_prep(a, xname):
    x, rd = V.float_array(a[xname], xname)
    cd = x.dtype
    red = V.check_reduction(a["reduction"])
    _check_reduced_out(a["out"], red)
    z = V.as_compute(a["labels"], cd, "labels")
    V.same_shape(z, x.shape, "labels", f"the {xname}'")
    w = _elem_weight(a["weight"], x.shape, cd, "weight")
    out = V.check_out(a["out"], x.shape, rd) if red == "none" else None
    Klen = x.shape[-1] if x.ndim else 1
    return V.contiguous(x), z, w, cd, rd, red, out, Klen


def _binary_grad_scale(red, grad_output, n, shape, cd):
    if red == "none":
        return 1.0, V.check_grad_output(grad_output, shape, cd)
    g0 = _scalar_grad(grad_output)
    return (g0 if red == "sum" else (g0 / n if n else math.nan)), None


def _binary_value(loss, total, red, n, rd, out):
    if red == "none":
        return _finish(loss, rd, out)
    if red == "sum":
        return rd.type(total)
    with np.errstate(invalid="ignore"):
        return rd.type(total / n if n else math.nan)


def sigmoid_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    x, z, w, cd, rd, red, out, Klen = _binary_prep(a, "logits")
    # form (mirrors only): 0 exact; 1 TensorFlow's weighted_cross_entropy_with_logits
    # evaluation (its cancellation and x = 0 gradient), pos_weight then broadcasting freely
    form = int(a.get("form", 0))
    pw = None
    if a["pos_weight"] is not None and form == 1:
        pw = _elem_weight(a["pos_weight"], x.shape, cd, "pos_weight")
    elif a["pos_weight"] is not None:
        p = np.asarray(a["pos_weight"])
        try:   # any shape that broadcasts to the logits and varies along the last axis only
            if np.broadcast_shapes(p.shape, x.shape) != x.shape or any(s != 1 for s in p.shape[:-1]):
                raise ValueError
            pw = V.as_compute(np.broadcast_to(p.reshape(p.shape[-1:]), (Klen,)), cd, "pos_weight")
        except ValueError:
            raise ValueError(f"pos_weight: shape {p.shape} must broadcast to the logits' shape "
                             f"{x.shape} and vary along the last axis only (length {Klen})") from None
    gscale, gout = _binary_grad_scale(red, grad_output, x.size, x.shape, cd)
    loss = np.empty(x.shape, cd) if red == "none" else None
    gx = _Grad("logits", grad_out, None, cd, rd, x.shape, a, ("labels", "weight", "pos_weight"), x) if "logits" in wrt else None
    gz = _Grad("labels", grad_out, None, cd, rd, x.shape, a, ("logits", "weight", "pos_weight"), x) if "labels" in wrt else None
    total = K.bce_logits(x, z, Klen, w, pw, loss, gx and gx.buf, gz and gz.buf, gscale, gout, _nt(a),
                         form=form)
    grads = {}
    if gx is not None:
        grads["logits"] = gx.result()
    if gz is not None:
        grads["labels"] = gz.result()
    return _binary_value(loss, total, red, x.size, rd, out), grads


def binary_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    policy = a["policy"]
    if policy not in _POLICIES:
        raise ValueError(f"policy: {policy!r} is not one of {', '.join(map(repr, _POLICIES))}")
    eps = a["epsilon"]
    if eps is None:
        eps = 1e-7
    elif policy in ("clamp", "exact"):
        raise ValueError(f"epsilon: not used by policy {policy!r} (only 'clip' and 'add')")
    eps = float(eps)
    if not (eps >= 0) or (policy == "clip" and eps >= 0.5):
        raise ValueError(f"epsilon: must be >= 0 (and < 0.5 for 'clip'), got {eps}")
    x, z, w, cd, rd, red, out, Klen = _binary_prep(a, "probs")
    if a.get("check_probs", True):   # False (mirrors only): TF log_loss takes any value (NaN out)
        V.check_probabilities(x, "probs")
    gscale, gout = _binary_grad_scale(red, grad_output, x.size, x.shape, cd)
    loss = np.empty(x.shape, cd) if red == "none" else None
    gx = _Grad("probs", grad_out, None, cd, rd, x.shape, a, ("labels", "weight"), x) if "probs" in wrt else None
    total = K.bce_probs(x, z, Klen, w, _POLICIES[policy], eps, loss, gx and gx.buf, gscale, gout, _nt(a))
    grads = {"probs": gx.result()} if gx is not None else {}
    return _binary_value(loss, total, red, x.size, rd, out), grads


def _sigmoid_like(a, wrt, grad_output, log, grad_out=None):
    x, rd = V.float_array(a["x"], "x")
    cd = x.dtype
    x = V.contiguous(x)
    out = V.check_out(a["out"], x.shape, rd)
    y = out if (out is not None and out.dtype == cd and out.flags.c_contiguous) else np.empty(x.shape, cd)
    K.sigmoid(x, y, log, _nt(a))
    value = _finish(y, rd, out)
    grads = {}
    if wrt:
        g = V.check_grad_output(grad_output, x.shape, cd)
        gx = _Grad("x", grad_out, None, cd, rd, x.shape, a, (), x)
        K.sigmoid_vjp(x, g, gx.buf, log, _nt(a))
        grads["x"] = gx.result()
    return value, grads


def sigmoid_impl(a, wrt, grad_output, grad_out=None):
    return _sigmoid_like(a, wrt, grad_output, False, grad_out)


def log_sigmoid_impl(a, wrt, grad_output, grad_out=None):
    return _sigmoid_like(a, wrt, grad_output, True, grad_out)
