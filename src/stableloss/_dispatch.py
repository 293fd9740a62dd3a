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
        if (out is not None and out.dtype == cd and out.flags.c_contiguous and out.flags.aligned
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
    # float16 results: overflow to inf is the value (no RuntimeWarning)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return _reduce_(loss_rows, total, reduction, denom, shape, rd, out)


def _reduce_(loss_rows, total, reduction, denom, shape, rd, out):
    if reduction == "none":
        res = loss_rows.reshape(shape)
        if rd.itemsize == 2 and res.dtype == np.float64:
            # half results are the float32 call's, then rounded (the direct half kernels
            # already round their float64 row losses to float32): the upcast path's
            # float64 rows rounded straight to float16 differed in the last bit on ties
            res = res.astype(np.float32)
        return _finish(res.astype(rd) if out is None else res, rd, out)
    if reduction == "sum":
        return rd.type(total)
    with np.errstate(invalid="ignore", divide="ignore"):
        # IEEE division, as PyTorch: 0/0 (all ignored) is NaN, a nonzero sum over a zero
        # total weight (negative class weights) is +-inf
        return rd.type(np.float64(total) / np.float64(denom))


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
                arr if arr.dtype == cd and arr.flags.c_contiguous and arr.flags.aligned else None)
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


# ---------------------------------------------------------------- half precision
# float16 (where compiled in) and bfloat16 arrays in native byte order are passed to the
# kernels as their uint16 bits and converted block by block in cache (K.half_run): no
# full float32 copy, results bitwise the float32 computation's rounded to the half dtype.
# Not with grad_out (the gradient is written through uint16 bits): the upcast path.
def _half_bits(arr, bf=None):
    """`arr`'s uint16 bits when the kernels read it directly (of kind `bf` when given)."""
    hk = V.half_kind(arr) if isinstance(arr, np.ndarray) else None
    if hk is None or (hk == "f16" and not K.half_supported()) or (bf is not None and (hk == "bf16") != bf):
        return None
    return arr.view(np.uint16)


def _half_flag(arr, grad_out=None):
    """None, or True/False (bfloat16/float16) when `arr` takes the direct half path."""
    return None if grad_out is not None or _half_bits(arr) is None else V.half_kind(arr) == "bf16"


def _half_cotangent(g, shape, bf):
    """grad_output for a half call: None (ones), its broadcast bits (same half kind), or float32."""
    if g is None:
        return None
    gb = _half_bits(g, bf)
    if gb is None:
        return V.check_grad_output(g, shape, np.float32)
    try:
        return V.contiguous(np.broadcast_to(gb, tuple(shape)))
    except ValueError:
        raise ValueError(f"grad_output: shape {g.shape} does not match the output shape {tuple(shape)}") from None


def _half_out(out, rd, inputs):
    """uint16 view of `out` for a half kernel to write directly, or None (a fresh buffer)."""
    if (out is None or out.dtype != rd or not out.flags.c_contiguous or not out.flags.aligned
            or any(np.may_share_memory(out, i) and not _same_buffer(out, i) for i in inputs)):
        return None
    return out.view(np.uint16)


# ---------------------------------------------------------------- softmax family
def _prep_rowwise(a, xname="x", grad_out=None):
    """(rows, compute dtype, result dtype, half): half is None or the bf flag of half_run."""
    hb = _half_flag(a[xname], grad_out)
    if hb is None:
        x, rd = V.float_array(a[xname], xname)
    else:
        x, rd = a[xname].view(np.uint16), a[xname].dtype
    ax = V.check_axis(a["axis"], x.ndim)
    return _Rows(x, ax), (x.dtype if hb is None else np.dtype(np.float32)), rd, hb


def logsumexp_impl(a, wrt, grad_output, grad_out=None):
    if a["axis"] is None or isinstance(a["axis"], (tuple, list)):
        return _logsumexp_axes(a, wrt, grad_output, grad_out)
    rows, cd, rd, hb = _prep_rowwise(a, grad_out=grad_out)
    keep = bool(a["keepdims"])
    oshape = rows.batch if not keep else tuple(1 if i == rows.axis else s for i, s in enumerate(rows.shape))
    if rows.zero_d:
        oshape = ()
    out = V.check_out(a["out"], oshape, rd)
    direct = out if (out is not None and out.dtype == cd and out.flags.c_contiguous
                     and out.flags.aligned) else None
    buf = direct.reshape(rows.N) if direct is not None else np.empty(rows.N, cd)
    if hb is None:
        K.lse(rows.x2, buf, _nt(a))
    else:
        K.half_run("lse", hb, rows.N, rows.C, (rows.x2, buf), n_threads=_nt(a))
    value = _finish(buf.reshape(oshape), rd, out)
    grads = {}
    if wrt:
        g = V.check_grad_output(grad_output, oshape, cd)
        grow = None if g is None else g.reshape(rows.N)
        if hb is not None:
            g2 = np.empty((rows.N, rows.C), np.uint16)
            K.half_run("softmax", hb, rows.N, rows.C, (rows.x2, grow, g2), n_threads=_nt(a))
            return value, {"x": rows.from_rows(g2).view(rd)}
        gx = _Grad("x", grad_out, rows, cd, rd, rows.shape if not rows.zero_d else (), a, (), rows.x2)
        K.softmax(rows.x2, grow, gx.buf, _nt(a))
        grads["x"] = gx.result()
    return value, grads


def _logsumexp_axes(a, wrt, grad_output, grad_out):
    """logsumexp over several axes (or all, axis=None): the reduced axes are moved last and
    flattened into one row, then the one-axis kernel runs on those rows."""
    x = np.asarray(a["x"])
    # the dtype rule (and its errors) without converting the data: the inner one-axis call
    # converts, or reads half precision directly
    probe, rd = V.float_array(x.reshape(-1)[:0], "x")
    cd = probe.dtype
    axes = V.check_axes(a["axis"], x.ndim)
    if x.ndim == 0:
        x = x.reshape(1)
    if len(axes) == 1:
        return logsumexp_impl(dict(a, x=a["x"], axis=axes[0]), wrt, grad_output, grad_out)
    keep = bool(a["keepdims"])
    k = len(axes)
    xm = np.moveaxis(x, axes, range(x.ndim - k, x.ndim))
    # the row length spelled out: -1 is ambiguous (ValueError) when the array is empty
    flat = xm.reshape(xm.shape[:x.ndim - k] + (math.prod(xm.shape[x.ndim - k:]),))
    kept = tuple(1 if i in axes else s for i, s in enumerate(x.shape)) if keep else flat.shape[:-1]
    if np.asarray(a["x"]).ndim == 0:
        kept = ()
    out = V.check_out(a["out"], kept, rd)
    inner = dict(a, x=flat, axis=-1, keepdims=False, out=None)
    g_inner = None
    if wrt and grad_output is not None:
        g_inner = np.reshape(V.check_grad_output(grad_output, kept, cd), flat.shape[:-1])
    value, grads = logsumexp_impl(inner, wrt, g_inner, None)
    value = _finish(np.reshape(value, kept), rd, out)
    if wrt:
        gx = np.moveaxis(grads["x"].reshape(xm.shape), range(x.ndim - k, x.ndim), axes)
        gx = gx.reshape(np.shape(a["x"]))
        if grad_out is not None and "x" in grad_out:
            tgt = V.check_out(grad_out["x"], gx.shape, rd, name="grad_out")
            np.copyto(tgt, gx, casting="unsafe")
            gx = tgt
        grads = {"x": gx}
    return value, grads


def _softmax_like(a, wrt, grad_output, log, grad_out=None):
    rows, cd, rd, hb = _prep_rowwise(a, grad_out=grad_out)
    out = V.check_out(a["out"], () if rows.zero_d else rows.shape, rd)
    if hb is not None:
        return _softmax_like_half(a, rows, rd, hb, out, wrt, grad_output, log)
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


def _softmax_like_half(a, rows, rd, hb, out, wrt, grad_output, log):
    """softmax / log_softmax of half bits: forward and VJP fused per block (the VJP reads the
    block's float32 forward output, as the float32 call does), outputs written as half."""
    shape = () if rows.zero_d else rows.shape
    yv = rows.direct_out(out, rd)
    y2 = _half_out(yv, rd, _inputs(a, ("x",)) + ([grad_output] if isinstance(grad_output, np.ndarray) else []))
    y2 = np.empty((rows.N, rows.C), np.uint16) if y2 is None else y2
    if not wrt:
        K.half_run("log_softmax" if log else "softmax", hb, rows.N, rows.C,
                   (rows.x2, y2) if log else (rows.x2, None, y2), n_threads=_nt(a))
        return _finish(rows.from_rows(y2).view(rd), rd, out), {}
    g = _half_cotangent(grad_output, shape, hb)
    g2 = None if g is None else rows.to_rows(g)
    gx2 = np.empty((rows.N, rows.C), np.uint16)
    K.half_run("softmax_vjp", hb, rows.N, rows.C, (rows.x2, g2, y2, gx2), flag=log, n_threads=_nt(a))
    return _finish(rows.from_rows(y2).view(rd), rd, out), {"x": rows.from_rows(gx2).view(rd)}


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


def softmax_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    half = _half_flag(a["logits"], grad_out)
    if half is None:
        x, rd = V.float_array(a["logits"], "logits")
        cd = x.dtype
    else:  # the rows stay uint16 bits; the kernel converts them block by block
        x, rd, cd = a["logits"].view(np.uint16), a["logits"].dtype, np.dtype(np.float32)
    ax = V.check_axis(a["axis"], x.ndim)
    red = V.check_reduction(a["reduction"])
    eps = V.check_label_smoothing(a["label_smoothing"])
    has_ii, ii = V.check_ignore_index(a["ignore_index"])
    zl = V.check_z_loss(a.get("z_loss", 0.0))
    want_lse = bool(a.get("return_lse", False))
    _check_reduced_out(a["out"], red)
    rows = _Rows(x, ax)
    w = V.class_weight(a["weight"], rows.C, cd)
    lab_in = np.asarray(a["labels"])
    prob = lab_in.shape == x.shape
    if prob and (zl or want_lse):
        raise ValueError(f"{'z_loss' if zl else 'return_lse'}: only with class-index labels "
                         f"(got probability labels, the logits' shape)")
    lse = np.empty(rows.N, np.float64) if want_lse else None
    out = V.check_out(a["out"], rows.batch, rd) if red == "none" else None
    loss = np.empty(rows.N, np.float64)
    grads = {}
    nt = _nt(a)
    if prob:
        # half labels are read directly too (with half logits, or float32 logits: rd float32)
        tb = _half_bits(lab_in, half) if grad_out is None and (half is not None or rd == np.float32) else None
        hb = half if tb is None else V.half_kind(lab_in) == "bf16"
        t2 = rows.to_rows(tb if tb is not None else V.as_compute(lab_in, cd, "labels"))
        gscale, grow = _row_grad_scale(red, grad_output, rows.N, rows.batch, rows.N)
    if prob and hb is not None:
        gd = np.uint16 if half is not None else np.float32      # the gradients come in rd
        g2 = {n: np.empty((rows.N, rows.C), gd) for n in ("logits", "labels") if n in wrt}
        total, _ = K.half_run("ce_prob", hb, rows.N, rows.C, (rows.x2, t2, w, loss, g2.get("logits"),
                              g2.get("labels"), grow), d0=eps, d1=gscale, flag=int(bool(a.get("unit_mass", False))),
                              n_threads=nt)
        loss = loss.astype(np.float32).astype(np.float64)       # as the float32 call, then rounded
        grads = {n: rows.from_rows(g).view(rd) for n, g in g2.items()}
        denom = rows.N
    elif prob:
        gx = _Grad("logits", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "logits" in wrt else None
        gt = _Grad("labels", grad_out, rows, cd, rd, x.shape, a, ("logits", "weight"), rows.x2) if "labels" in wrt else None
        if gx is not None and gt is not None and gx.aliases(rows.x2):
            raise ValueError("grad_out: the logits' gradient cannot overwrite the logits when the "
                             "labels' gradient (which reads them) is also requested")
        # unit_mass (mirrors only: stableloss.tf, stableloss.keras): the logits gradient
        # p - w q that TensorFlow returns whatever the label rows sum to (the true
        # derivative, the default, is (sum_c w_c q_c) p - w q)
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
        lab = V.index_labels(lab_in, rows.batch, prob_shape=x.shape).reshape(rows.N)
        V.check_label_range(lab, rows.batch, rows.C, has_ii, ii)
        denom = _class_denominator(lab, w, has_ii, ii) if red == "mean" else 1.0
        W = float(np.sum(w, dtype=np.float64)) if w is not None else float(rows.C)
        gscale, grow = _row_grad_scale(red, grad_output, denom, rows.batch, rows.N)
        nll_part = None
        if red == "mean" and denom == 0 and eps > 0:
            # PyTorch's mean is (1-eps) * A / D + smoothing / D, each divided on its own (IEEE):
            # with D = 0 the A = sum w_y (-lp_y) term decides NaN (A = 0) or +-inf. A is the
            # eps = 0 total, computed before any in-place gradient overwrites the logits.
            scratch = np.empty(rows.N, np.float64)
            if half is None:
                nll_part, _ = K.ce_index(rows.x2, lab, w, W, has_ii, ii, 0.0, scratch, None, 1.0, None, nt)
            else:
                nll_part, _ = K.ce_index_half(rows.x2, half, lab, w, W, has_ii, ii, 0.0, scratch, None, 1.0,
                                              None, nt)
        if half is None:
            gx = _Grad("logits", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "logits" in wrt else None
            total, bad = K.ce_index(rows.x2, lab, w, W, has_ii, ii, eps, loss, gx and gx.buf, gscale, grow, nt,
                                    zl, lse)
        else:
            g2 = np.empty((rows.N, rows.C), np.uint16) if "logits" in wrt else None
            total, bad = K.ce_index_half(rows.x2, half, lab, w, W, has_ii, ii, eps, loss, g2, gscale, grow, nt,
                                         zl, lse)
            loss = loss.astype(np.float32).astype(np.float64)   # as the float32 call, then rounded
        if bad >= 0:  # unreachable after check_label_range; kept as the kernels' contract
            V.raise_bad_label(lab, rows.batch, bad, rows.C)
        if "logits" in wrt:
            grads["logits"] = gx.result() if half is None else rows.from_rows(g2).view(rd)
        if nll_part is not None:
            with np.errstate(invalid="ignore", divide="ignore"):
                A = np.float64((1.0 - eps) * nll_part)
                total = A / np.float64(0.0) + (np.float64(total) - A) / np.float64(0.0)
            denom = 1.0
    value = _reduce(loss, total, red, denom, rows.batch, rd, out)
    if want_lse:
        value = (value, _lse_result(lse, rows.batch, rd))
    return value, grads


def _lse_result(lse, batch, rd):
    """The per-row logsumexp (float64 from the kernel) in the result dtype and loss shape."""
    with np.errstate(over="ignore"):
        return lse.reshape(batch).astype(rd)


def nll_loss_impl(a, wrt, grad_output, grad_out=None):
    half = _half_flag(a["log_probs"], grad_out)
    if half is None:
        x, rd = V.float_array(a["log_probs"], "log_probs")
        cd = x.dtype
    else:
        x, rd, cd = a["log_probs"].view(np.uint16), a["log_probs"].dtype, np.dtype(np.float32)
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
    loss = np.empty(rows.N, np.float64)
    grads = {}
    if half is not None:
        g2 = np.empty((rows.N, rows.C), np.uint16) if "log_probs" in wrt else None
        total, bad = K.half_run("nll", half, rows.N, rows.C, (rows.x2, lab, w, loss, g2, grow), d1=gscale,
                                has_ignore=has_ii, ignore_index=ii, n_threads=_nt(a))
        loss = loss.astype(np.float32).astype(np.float64)       # as the float32 call, then rounded
        if g2 is not None:
            grads["log_probs"] = rows.from_rows(g2).view(rd)
    else:
        gx = _Grad("log_probs", grad_out, rows, cd, rd, x.shape, a, ("labels", "weight"), rows.x2) if "log_probs" in wrt else None
        total, bad = K.nll(rows.x2, lab, w, has_ii, ii, loss, gx and gx.buf, gscale, grow, _nt(a))
        if gx is not None:
            grads["log_probs"] = gx.result()
    if bad >= 0:
        V.raise_bad_label(lab, rows.batch, bad, rows.C)
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


def _binary_prep(a, xname, grad_out=None):
    """(x, labels, weight, cd, rd, reduction, out, K, half): half is None or half_run's bf
    flag, x then the half bits (labels too when they share the kind, else float32)."""
    hb = _half_flag(a[xname], grad_out)
    if hb is None:
        x, rd = V.float_array(a[xname], xname)
    else:
        x, rd = a[xname].view(np.uint16), a[xname].dtype
    cd = x.dtype if hb is None else np.dtype(np.float32)
    red = V.check_reduction(a["reduction"])
    _check_reduced_out(a["out"], red)
    zb = _half_bits(a["labels"], hb) if hb is not None else None
    z = V.as_compute(a["labels"], cd, "labels") if zb is None else V.contiguous(zb)
    V.same_shape(z, x.shape, "labels", f"the {xname}'")
    w = _elem_weight(a["weight"], x.shape, cd, "weight")
    out = V.check_out(a["out"], x.shape, rd) if red == "none" else None
    Klen = x.shape[-1] if x.ndim else 1
    return V.contiguous(x), z, w, cd, rd, red, out, Klen, hb


def _binary_half(op, a, x, z, w, Klen, grad_output, red, hb, names, wrt, pw=(), **kw):
    """One elementwise half_run: (value, {name: grad}), outputs written as half bits.
    `names`: the op's gradient slots in kernel order; pw: () for ops without pos_weight."""
    rd = a[names[0]].dtype
    gscale = 1.0 if red == "none" else _binary_grad_scale(red, grad_output, x.size, x.shape, None)[0]
    gout = _half_cotangent(grad_output, x.shape, hb) if red == "none" else None
    wm = 0 if w is None else (1 if w.size == Klen and Klen != x.size else 2)
    loss = np.empty(x.shape, np.uint16) if red == "none" else None
    g2 = {n: np.empty(x.shape, np.uint16) for n in names if n in wrt}
    arrays = (x, z, w) + tuple(pw) + (loss,) + tuple(g2.get(n) for n in names) + (gout,)
    total, _ = K.half_run(op, hb, x.size, 1, arrays, d1=gscale, wm=wm, K=Klen, n_threads=_nt(a), **kw)
    value = _binary_value(None if loss is None else loss.view(rd), total, red, x.size, rd, a["out"])
    return value, {n: g.view(rd) for n, g in g2.items()}


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
    x, z, w, cd, rd, red, out, Klen, hb = _binary_prep(a, "logits", grad_out)
    # form (mirrors only): 0 exact; 1 TensorFlow's weighted_cross_entropy_with_logits
    # evaluation (its cancellation and x = 0 gradient)
    form = int(a.get("form", 0))
    pw = _elem_weight(a["pos_weight"], x.shape, cd, "pos_weight")
    if hb is not None and (form != 0 or (pw is not None and pw.shape != (Klen,)) or x.size == 0):
        # the half path runs the exact form with per-column pos_weight only: upcast (and for
        # no elements: half_run takes a last axis of length 0 as 1, so a (0,) pos_weight
        # would not fit its per-column slot)
        x = x.view(rd).astype(np.float32)
        z = V.as_compute(a["labels"], cd, "labels")
        hb = None
    if hb is not None:
        return _binary_half("bce_logits", a, x, z, w, Klen, grad_output, red, hb, ("logits", "labels"), wrt,
                            pw=(pw,))
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
    # Private keys for mirrors (not on the public signature): "clip_max", the upper clip
    # bound when it is not 1 - epsilon (Keras rounds both bounds to the tensor dtype:
    # float32 [1e-7, 0.99999988]); "check_range"=False takes values outside [0, 1] (and
    # NaN) as given instead of raising, as Keras (clipping them) and TF log_loss do.
    hi = a.get("clip_max")
    hi = -1.0 if hi is None or policy != "clip" else float(hi)
    x, z, w, cd, rd, red, out, Klen, hb = _binary_prep(a, "probs", grad_out)
    if a.get("check_range", True):
        V.check_probabilities(x if hb is None else x.view(rd), "probs")
    if hb is not None:
        return _binary_half("bce_probs", a, x, z, w, Klen, grad_output, red, hb, ("probs",), wrt,
                            flag=_POLICIES[policy], d0=eps, d2=(1.0 - eps if hi < 0 else hi))
    gscale, gout = _binary_grad_scale(red, grad_output, x.size, x.shape, cd)
    loss = np.empty(x.shape, cd) if red == "none" else None
    gx = _Grad("probs", grad_out, None, cd, rd, x.shape, a, ("labels", "weight"), x) if "probs" in wrt else None
    total = K.bce_probs(x, z, Klen, w, _POLICIES[policy], eps, loss, gx and gx.buf, gscale, gout, _nt(a), hi)
    grads = {"probs": gx.result()} if gx is not None else {}
    return _binary_value(loss, total, red, x.size, rd, out), grads


def _sigmoid_like(a, wrt, grad_output, log, grad_out=None):
    hb = _half_flag(a["x"], grad_out)
    if hb is not None:     # half bits in and out, block by block
        x, rd = V.contiguous(a["x"].view(np.uint16)), a["x"].dtype
        out = V.check_out(a["out"], x.shape, rd)
        y = _half_out(out, rd, _inputs(a, ("x",)))
        y = np.empty(x.shape, np.uint16) if y is None else y
        K.half_run("sigmoid", hb, x.size, 1, (x, y), flag=log, n_threads=_nt(a))
        grads = {}
        if wrt:
            gx = np.empty(x.shape, np.uint16)
            K.half_run("sigmoid_vjp", hb, x.size, 1, (x, _half_cotangent(grad_output, x.shape, hb), gx),
                       flag=log, n_threads=_nt(a))
            grads["x"] = gx.view(rd)
        return _finish(y.view(rd), rd, out), grads
    x, rd = V.float_array(a["x"], "x")
    cd = x.dtype
    x = V.contiguous(x)
    out = V.check_out(a["out"], x.shape, rd)
    y = out if (out is not None and out.dtype == cd and out.flags.c_contiguous
                and out.flags.aligned) else np.empty(x.shape, cd)
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


# ---------------------------------------------------------------- KL divergence, focal loss
# Elementwise compositions in NumPy over one broadcast (documented in docs/api.md): a few
# passes over memory, no new kernel; their rows are not the hot path of any shape we
# benchmark.
def _sum_to(g, shape):
    """Sum a broadcast gradient back to an argument's shape."""
    if g.shape == tuple(shape):
        return g
    lead = g.ndim - len(shape)
    g = g.sum(axis=tuple(range(lead))) if lead else g
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _elementwise_reduce(loss, red, out, rd):
    if red == "none":
        return _finish(loss, rd, out)
    total = float(np.sum(loss, dtype=np.float64))
    if red == "sum":
        return rd.type(total)
    with np.errstate(invalid="ignore"):
        return rd.type(total / loss.size if loss.size else math.nan)


def _broadcast_pair(a, xname, tname):
    x, rd = V.float_array(a[xname], xname)
    t = np.asarray(a[tname])
    if t.dtype.kind not in "biuf" and t.dtype.name != "bfloat16":
        raise TypeError(f"{tname}: expected a real numeric array, got dtype {t.dtype}")
    try:
        shape = np.broadcast_shapes(x.shape, t.shape)
    except ValueError:
        raise ValueError(f"{tname}: shape {t.shape} does not broadcast with the {xname}' shape {x.shape}") from None
    return x, V.as_compute(t, x.dtype, tname), rd, shape


def kl_div_impl(a, wrt, grad_output, grad_out=None):
    x, t, rd, shape = _broadcast_pair(a, "log_probs", "target")
    red = V.check_reduction(a["reduction"])
    _check_reduced_out(a["out"], red)
    out = V.check_out(a["out"], shape, rd) if red == "none" else None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if a["log_target"]:
            et = np.exp(t)
            loss = et * (t - x)                      # t = -inf (a zero probability): NaN, as torch
        else:
            et = t
            loss = t * (np.log(t) - x)
            loss = np.where(t == 0, -(t * x) + 0.0, loss)   # 0 log 0 = 0; 0 * (+-inf or NaN) = NaN
    loss = np.broadcast_to(loss, shape)
    value = _elementwise_reduce(loss, red, out, rd)
    grads = {}
    if wrt:
        if red == "none":
            g = V.check_grad_output(grad_output, shape, x.dtype)
            gs = 1.0 if g is None else g
        else:
            g0 = _scalar_grad(grad_output)
            n = math.prod(shape)
            gs = g0 if red == "sum" else (g0 / n if n else math.nan)
        gx = _sum_to(np.broadcast_to(-et * gs, shape), x.shape).astype(x.dtype, copy=False)
        grads["log_probs"] = _deliver(gx, grad_out, "log_probs", x.shape, rd)
    return value, grads


def _deliver(g, grad_out, name, shape, rd):
    if grad_out is not None and name in grad_out:
        tgt = V.check_out(grad_out[name], tuple(shape), rd, name="grad_out")
        np.copyto(tgt, g, casting="unsafe")
        return tgt
    g = np.asarray(g)
    if g.dtype != rd:
        return g.astype(rd)
    return g if g.flags.c_contiguous and g.flags.writeable else np.array(g, order="C")


def sigmoid_focal_loss_impl(a, wrt, grad_output, grad_out=None):
    x, rd = V.float_array(a["logits"], "logits")
    cd = x.dtype
    red = V.check_reduction(a["reduction"])
    _check_reduced_out(a["out"], red)
    z = V.as_compute(a["labels"], cd, "labels")
    V.same_shape(z, x.shape, "labels", "the logits'")
    alpha, gamma = a["alpha"], float(a["gamma"])
    if alpha is not None:
        alpha = float(alpha)
    if not gamma >= 0:
        raise ValueError(f"gamma: must be >= 0, got {gamma}")
    out = V.check_out(a["out"], x.shape, rd) if red == "none" else None
    nt = _nt(a)
    ce = np.empty(x.shape, cd)
    xc = V.contiguous(x)
    zc = V.contiguous(z)
    K.bce_logits(xc, zc, x.shape[-1] if x.ndim else 1, None, None, ce, None, None, 1.0, None, nt)
    s = np.empty(x.shape, cd)
    sn = np.empty(x.shape, cd)
    K.sigmoid(xc, s, False, nt)
    K.sigmoid(V.contiguous(np.negative(xc)), sn, False, nt)   # 1 - sigma(x), without cancellation (0-d too)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        u = s * (1 - zc) + sn * zc                      # 1 - p_t
        fac = u ** gamma if gamma != 0 else np.ones_like(u)
        at = 1.0 if alpha is None or alpha < 0 else alpha * zc + (1 - alpha) * (1 - zc)
        loss = at * ce * fac
    value = _elementwise_reduce(loss, red, out, rd)
    grads = {}
    if wrt:
        if red == "none":
            g = V.check_grad_output(grad_output, x.shape, cd)
            gs = 1.0 if g is None else g
        else:
            g0 = _scalar_grad(grad_output)
            gs = g0 if red == "sum" else (g0 / x.size if x.size else math.nan)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            dce = s * (1 - zc) - zc * sn                 # sigma(x) - t, exact at t = 1
            if gamma == 0:
                dfac = 0.0
            else:
                du = s * sn * (1 - 2 * zc)
                dfac = np.where(du == 0, 0.0, gamma * u ** (gamma - 1) * du)
            gx = (gs * at * (dce * fac + ce * dfac)).astype(cd, copy=False)
        grads["logits"] = _deliver(gx, grad_out, "logits", x.shape, rd)
    return value, grads


# ---------------------------------------------------------------- Keras-style probability inputs
# NumPy compositions for the Keras mirror's probabilities-in paths (renormalise, clip to the
# dtype's [eps, 1 - eps], focal factors). They reuse the kernels where the math exists
# (index-label CE, BCE "clip", sigmoid CE, sigmoid) and follow TensorFlow's operation order
# for the rest, so values round like TF's float32 graph and NaN/inf gradients appear where
# TF's do (e.g. (1 - p_t)^0 at p_t = 1 gives a NaN gradient, as TF's Pow gradient does).
# Each returns the unreduced loss; `grad_output` is its cotangent (default ones).
def _cotangent(grad_output, shape, cd):
    g = V.check_grad_output(grad_output, shape, cd)
    return np.ones(shape, cd) if g is None else g


def clipped_categorical_impl(a, wrt, grad_output, grad_out=None):
    """Keys: probs, labels (probs' shape), axis, lo, hi, renormalize, gamma (None: plain
    CE), alpha (focal only; broadcast against probs). With q = p / Σ_axis p (renormalize)
    or p, o = clip(q, lo, hi): loss = -Σ_axis y·log o, or focal
    Σ_axis (α·(1 - o)^γ)·(-y·log o). The clip passes the gradient for lo <= q <= hi only."""
    p, rd = V.float_array(a["probs"], "probs")
    cd = p.dtype
    ax = V.check_axis(a["axis"], p.ndim)
    y = V.as_compute(a["labels"], cd, "labels")
    V.same_shape(y, p.shape, "labels", "the probs'")
    lo, hi, one = cd.type(a["lo"]), cd.type(a["hi"]), cd.type(1)
    focal = a.get("gamma") is not None
    with np.errstate(all="ignore"):
        s = np.sum(p, axis=ax, keepdims=True) if a["renormalize"] else None
        q = p / s if s is not None else p
        o = np.clip(q, lo, hi)
        lg = np.log(o)
        if focal:
            gamma, alpha = cd.type(a["gamma"]), V.as_compute(a["alpha"], cd, "alpha")
            om = one - o
            try:
                W = np.power(om, gamma) * alpha
            except ValueError:
                raise ValueError(f"alpha: shape {alpha.shape} does not broadcast to the probs' shape "
                                 f"{p.shape}") from None
            cce = -y * lg
            f = W * cce
            loss = np.sum(f, axis=ax)
        else:
            loss = -np.sum(y * lg, axis=ax)
        grads = {}
        if "probs" in wrt:
            Gk = np.expand_dims(_cotangent(grad_output, loss.shape, cd), ax)
            if focal:
                gf = np.broadcast_to(Gk, f.shape)
                gW, gcce = gf * cce, gf * W
                go = (gcce * -y) * (one / o) - (gW * alpha) * gamma * np.power(om, gamma - one)
            else:
                go = (-Gk * y) * (one / o)
            go = np.where((q < lo) | (q > hi), cd.type(0), go)
            gp = go / s + np.sum(go * (-p / s / s), axis=ax, keepdims=True) if s is not None else go
            grads["probs"] = gp.astype(rd)
    return loss.astype(rd), grads


def clipped_sparse_impl(a, wrt, grad_output, grad_out=None):
    """Keys: probs, labels (int, probs' shape without the last axis), lo, hi. c = clip(p,
    lo, hi); loss = lse(log c) - log c_y (TF's sparse kernel on log c, which renormalises
    the clipped row implicitly): log c in NumPy, then the index-label CE kernel."""
    p, rd = V.float_array(a["probs"], "probs")
    cd = p.dtype
    lo, hi = cd.type(a["lo"]), cd.type(a["hi"])
    with np.errstate(all="ignore"):
        c = np.clip(p, lo, hi)
        lc = np.log(c)
    args = dict(logits=lc, labels=a["labels"], axis=-1, weight=None, ignore_index=None,
                label_smoothing=0.0, reduction="none", out=None, n_threads=a.get("n_threads"))
    if "probs" not in wrt:
        return softmax_cross_entropy_impl(args, (), None)[0].astype(rd), {}
    loss, g = softmax_cross_entropy_impl(args, ("logits",), grad_output)
    with np.errstate(all="ignore"):
        gp = np.where((p < lo) | (p > hi), cd.type(0), g["logits"] * (cd.type(1) / c))
    return loss.astype(rd), {"probs": gp.astype(rd)}


def binary_focal_impl(a, wrt, grad_output, grad_out=None):
    """Keys: y_pred, labels (same shape), from_logits, lo, hi, gamma, alpha (None: no class
    balancing). Elementwise focal BCE as Keras: p = σ(x) (logits) or y_pred;
    bce = the sigmoid-CE kernel (logits) or the BCE "clip" kernel; p_t = y·p + (1-y)(1-p)
    from the unclipped p; loss = [w·] (1 - p_t)^γ · bce, w = y·α + (1-y)(1-α)."""
    x, rd = V.float_array(a["y_pred"], "y_pred")
    cd = x.dtype
    y = V.as_compute(a["labels"], cd, "labels")
    V.same_shape(y, x.shape, "labels", "the y_pred'")
    one, gamma = cd.type(1), cd.type(a["gamma"])
    alpha = None if a["alpha"] is None else cd.type(a["alpha"])
    if a["from_logits"]:
        p = sigmoid_impl({"x": x, "out": None, "n_threads": a.get("n_threads")}, (), None)[0]
        bargs = dict(logits=x, labels=y, weight=None, pos_weight=None, reduction="none", out=None,
                     n_threads=a.get("n_threads"))
        bimpl, bname = sigmoid_cross_entropy_impl, "logits"
    else:
        p = x
        bargs = dict(probs=x, labels=y, weight=None, reduction="none", out=None, policy="clip",
                     epsilon=float(a["lo"]), clip_max=float(a["hi"]), check_range=False,
                     n_threads=a.get("n_threads"))
        bimpl, bname = binary_cross_entropy_impl, "probs"
    want = "y_pred" in wrt
    with np.errstate(all="ignore"):
        om = one - (y * p + (one - y) * (one - p))
        F = np.power(om, gamma)
        wgt = None if alpha is None else y * alpha + (one - y) * (one - alpha)
        G = _cotangent(grad_output, x.shape, cd) if want else None
        gfb = None if G is None else (G if wgt is None else G * wgt)
    bce, gb = bimpl(bargs, (bname,) if want else (), None if G is None else gfb * F)
    with np.errstate(all="ignore"):
        fb = F * bce
        loss = fb if wgt is None else wgt * fb
        grads = {}
        if want:
            g_pt = -((gfb * bce) * gamma * np.power(om, gamma - one))
            g_p = g_pt * y + -(g_pt * (one - y))
            gy = gb[bname].astype(cd)
            gy = gy + (g_p * (p * (one - p)) if a["from_logits"] else g_p)
            grads["y_pred"] = gy.astype(rd)
    return loss.astype(rd), grads


# ---------------------------------------------------------------- fused linear cross-entropy
# loss(hidden @ weight.T + bias, labels) and its gradients without the (N, V) logits:
# rows in chunks of `cs`; per chunk one BLAS GEMM writes the chunk's logits into a reused
# (cs, V) buffer, the index-label CE kernel (ce_index) turns them into the scaled gradient
# G in place, then grad_hidden[chunk] = G @ weight, grad_weight += G.T @ hidden[chunk],
# grad_bias += the column sums of G. docs/linear_cross_entropy.md has the chunk rule and
# the memory arithmetic.
LINEAR_CE_BUDGET = 256 << 20    # bytes of the logits buffer the automatic chunk stays within
LINEAR_CE_SPLIT = 5             # ... and at most ceil(N / 5) rows: the buffer is then at most
                                # 1/10 of the unfused path's logits + gradient (2 N V)
LINEAR_CE_MIN_ROWS = 256        # ... but never fewer rows than this: below it OpenBLAS's threaded
                                # G @ weight (M = rows, K = V) loses most of its speed

# SciPy's gemm with beta=1: grad_weight accumulates in place (no (V, d) temporary).
# Imported on the first linear_cross_entropy gradient, not with stableloss (scipy.linalg
# costs ~150 ms of import time); False when SciPy is missing (or to force the NumPy path).
_USE_SCIPY_BLAS = True
_scipy_blas = None


def _blas():
    """scipy.linalg.blas, imported once; None (and _USE_SCIPY_BLAS = False) without SciPy."""
    global _scipy_blas, _USE_SCIPY_BLAS
    if not _USE_SCIPY_BLAS:
        return None
    if _scipy_blas is None:
        try:
            from scipy.linalg import blas
        except ImportError:  # pragma: no cover - the NumPy fallback is tested by forcing it
            _USE_SCIPY_BLAS = False
            return None
        _scipy_blas = blas
    return _scipy_blas


def linear_ce_chunk_rows(N, V, itemsize, chunk_size=None):
    """Rows per chunk: `chunk_size` if given, else
    min(N, max(LINEAR_CE_MIN_ROWS, min(LINEAR_CE_BUDGET // (V * itemsize), ceil(N / LINEAR_CE_SPLIT))))."""
    if N == 0:
        return 0
    if chunk_size is not None:
        return min(N, chunk_size)
    rows = min(LINEAR_CE_BUDGET // max(V * itemsize, 1), -(-N // LINEAR_CE_SPLIT))
    return int(min(N, max(LINEAR_CE_MIN_ROWS, rows)))


def _gemm_acc(c, a, g):
    """c += g.T @ a for C-contiguous c (V, d), a (n, d), g (n, V): BLAS with beta=1 when
    SciPy is there, else V-slices through a small temporary."""
    blas = _blas()
    if blas is not None:
        f = blas.sgemm if c.dtype == np.float32 else blas.dgemm
        # Fortran view: c.T (d, V) += a.T (d, n) @ (g.T (V, n)).T
        r = f(1.0, a.T, g.T, beta=1.0, c=c.T, trans_b=1, overwrite_c=1)
        if not np.shares_memory(r, c):      # pragma: no cover - f2py copied (never with these layouts)
            c.T[...] = r
        return
    V_, d = c.shape
    S = max(64, (4 << 20) // max(d * c.itemsize, 1))
    tmp = np.empty((min(S, V_), d), c.dtype)
    for v0 in range(0, V_, S):
        v1 = min(V_, v0 + S)
        t = tmp[:v1 - v0]
        np.matmul(g[:, v0:v1].T, a, out=t)
        c[v0:v1] += t


def _lce_float(arr, name):
    """(array, result dtype, half): half inputs stay as they are (converted per chunk)."""
    if V.half_kind(arr) is not None:
        return arr, arr.dtype, True
    x, rd = V.float_array(arr, name)
    return x, rd, False


def _lce_grad_buf(name, grad_out, shape, rd, cd, inputs):
    """(buffer the pass writes, target to deliver into or None)."""
    if grad_out is not None and name in grad_out:
        arr = V.check_out(grad_out[name], shape, rd, name="grad_out")
        for o in inputs:
            if np.shares_memory(arr, o):
                raise ValueError(f"grad_out: the gradient of {name!r} must not overlap any input")
        if arr.dtype == cd and arr.flags.c_contiguous:
            return arr, None
        return np.empty(shape, cd), arr
    return np.empty(shape, cd), None


def linear_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    hin, win = np.asarray(a["hidden"]), np.asarray(a["weight"])
    h, hrd, hhalf = _lce_float(hin, "hidden")
    W, wrd, whalf = _lce_float(win, "weight")
    bin_ = a["bias"]
    if bin_ is not None:
        b, brd, bhalf = _lce_float(np.asarray(bin_), "bias")
    if h.ndim < 1:
        raise ValueError("hidden: expected an array of shape (..., d), got a 0-d array")
    if W.ndim != 2:
        raise ValueError(f"weight: expected shape (V, d), got {W.shape}")
    Vn, d = W.shape
    if h.shape[-1] != d:
        raise ValueError(f"hidden: last dimension {h.shape[-1]} does not match the weight's d = {d} "
                         f"(weight shape {W.shape})")
    if bin_ is not None and b.shape != (Vn,):
        raise ValueError(f"bias: expected shape ({Vn},), got {b.shape}")
    rds = [hrd, wrd] + ([brd] if bin_ is not None else [])
    cd = np.dtype(np.float64) if any(r == np.float64 for r in rds) else np.dtype(np.float32)
    rd = rds[0] if all(r == rds[0] for r in rds) else cd
    red = V.check_reduction(a["reduction"])
    eps = V.check_label_smoothing(a["label_smoothing"])
    has_ii, ii = V.check_ignore_index(a["ignore_index"])
    zl = V.check_z_loss(a["z_loss"])
    want_lse = bool(a["return_lse"])
    cs_in = V.check_chunk_size(a["chunk_size"])
    _check_reduced_out(a["out"], red)
    if "bias" in wrt and bin_ is None:
        raise ValueError("bias: is None; there is no bias to differentiate")
    batch = h.shape[:-1]
    N = math.prod(batch)
    lab_in = np.asarray(a["labels"])
    if lab_in.shape == batch + (Vn,) and lab_in.dtype.kind not in "iu":
        raise ValueError("labels: probability labels (shape (..., V)) are not supported by the fused "
                         "path; use softmax_cross_entropy(hidden @ weight.T + bias, labels)")
    lab = V.index_labels(lab_in, batch).reshape(N)
    V.check_label_range(lab, batch, Vn, has_ii, ii)
    cw = V.class_weight(a["class_weight"], Vn, cd, name="class_weight")
    out = V.check_out(a["out"], batch, rd) if red == "none" else None
    denom = _class_denominator(lab, cw, has_ii, ii) if red == "mean" else 1.0
    Wsum = float(np.sum(cw, dtype=np.float64)) if cw is not None else float(Vn)
    gscale, grow = _row_grad_scale(red, grad_output, denom, batch, N)
    nt = _nt(a)

    h2 = h.reshape(N, d)
    if not hhalf:
        h2 = V.contiguous(h2, cd)
    Wc = W.astype(cd) if whalf else V.contiguous(W, cd)        # half weight: one float32 copy
    bc = None if bin_ is None else (b.astype(cd) if bhalf else V.contiguous(b, cd))
    inputs = [x for x in (hin, win, None if bin_ is None else np.asarray(bin_), lab_in,
                          None if a["class_weight"] is None else np.asarray(a["class_weight"]))
              if isinstance(x, np.ndarray)]
    gh = gw = gb = None
    if "hidden" in wrt:
        gh, gh_t = _lce_grad_buf("hidden", grad_out, h.shape, rd, cd, inputs)
        gh2 = gh.reshape(N, d)
    if "weight" in wrt:
        gw, gw_t = _lce_grad_buf("weight", grad_out, (Vn, d), rd, cd, inputs)
        gw[...] = 0
    if "bias" in wrt:
        gb, gb_t = _lce_grad_buf("bias", grad_out, (Vn,), rd, cd, inputs)
        gb[...] = 0
        colsum = np.empty(Vn, cd)

    loss = np.empty(N, np.float64)
    lse = np.empty(N, np.float64) if want_lse else None
    cs = linear_ce_chunk_rows(N, Vn, cd.itemsize, cs_in)
    buf = np.empty((cs, Vn), cd)
    hbuf = np.empty((cs, d), cd) if hhalf else None
    total = 0.0
    grad = bool(wrt)
    for r0 in range(0, N, max(cs, 1)):
        r1 = min(N, r0 + cs)
        n = r1 - r0
        L = buf[:n]
        if hhalf:
            hc = hbuf[:n]
            np.copyto(hc, h2[r0:r1], casting="unsafe")
        else:
            hc = h2[r0:r1]
        np.matmul(hc, Wc.T, out=L)
        if bc is not None:
            L += bc
        t, bad = K.ce_index(L, lab[r0:r1], cw, Wsum, has_ii, ii, eps, loss[r0:r1], L if grad else None,
                            gscale, None if grow is None else grow[r0:r1], nt, zl,
                            None if lse is None else lse[r0:r1])
        if bad >= 0:  # unreachable after check_label_range; kept as the kernels' contract
            V.raise_bad_label(lab, batch, r0 + bad, Vn)
        total += t
        if gw is not None:
            _gemm_acc(gw, hc, L)
        if gh is not None:
            np.matmul(L, Wc, out=gh2[r0:r1])
        if gb is not None:
            np.sum(L, axis=0, out=colsum)
            gb += colsum
    value = _reduce(loss, total, red, denom, batch, rd, out)
    if want_lse:
        value = (value, _lse_result(lse, batch, rd))
    grads = {}
    for name, g, tgt in (("hidden", gh, gh_t if gh is not None else None),
                         ("weight", gw, gw_t if gw is not None else None),
                         ("bias", gb, gb_t if gb is not None else None)):
        if g is not None:
            grads[name] = _finish(g, rd, tgt)
    return value, grads


# ---------------------------------------------------------------- concurrency accounting
def _counted(impl):
    """Wrap a public impl so that concurrent calls share the default thread count
    (_config.resolve_threads); nested impl calls in one thread count once."""
    import functools

    from ._config import concurrent_call

    @functools.wraps(impl)
    def counted(*args, **kwargs):
        with concurrent_call():
            return impl(*args, **kwargs)

    counted.__wrapped_impl__ = impl
    return counted


for _name in [n for n, v in list(globals().items()) if n.endswith("_impl") and not n.startswith("_")
              and callable(v)]:
    globals()[_name] = _counted(globals()[_name])
del _name
