"""Mirror of ``tf.math``: reduce_logsumexp, sigmoid, log_sigmoid (TensorFlow 2.21
signatures and edge values; numbers from the core kernels)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import math as _math

import numpy as np

from .. import _dispatch as D
from . import _common as C
from ._common import invalid_argument

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .._typing import FloatArray

__all__ = ["reduce_logsumexp", "sigmoid", "log_sigmoid"]


def _reduction_axes(axis, ndim):
    """TF's reduction-axis rules: None = all, int / list / tuple / array, negative allowed,
    [] reduces nothing; out of range or duplicates raise InvalidArgumentError."""
    if axis is None:
        return tuple(range(ndim))
    arr = np.asarray(C.to_numpy(axis))
    if arr.size == 0:
        return ()
    if arr.dtype.kind not in "iu":
        raise TypeError(f"axis: expected integers, got {axis!r}")
    axes = [int(v) for v in arr.reshape(-1)]
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise invalid_argument(f"Invalid reduction dimension ({a} for input with {ndim} dimension(s)")
        a %= ndim
        if a in out:
            raise invalid_argument(f"Invalid reduction arguments: Axes contains duplicate dimension: {a}")
        out.append(a)
    return tuple(sorted(out))


def _lse_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x = C.check_float(C.to_numpy(a["input_tensor"]), C.FLOATS_ISFINITE)
    red = _reduction_axes(a["axis"], x.ndim)
    keep = tuple(i for i in range(x.ndim) if i not in red)
    xt = np.transpose(x, keep + red)
    kshape = tuple(x.shape[i] for i in keep)
    R = _math.prod(x.shape[i] for i in red)
    x2 = xt.reshape(kshape + (R,))
    oshape = tuple(1 if i in red else s for i, s in enumerate(x.shape)) if a["keepdims"] else kshape
    cot = None
    if wrt and grad_output is not None:
        cot = np.broadcast_to(np.asarray(grad_output), oshape).reshape(kshape)
    value, g = D.logsumexp_impl({"x": x2, "axis": -1, "keepdims": False, "out": None, "n_threads": None},
                                ("x",) if wrt else (), cot)
    value = np.asarray(value).reshape(oshape)
    if not wrt:
        return value, {}
    g2 = np.asarray(g["x"])
    # TF's gradient exp(x - m*) / sum with m* = 0 where the max is not finite: a row holding
    # +inf (and no NaN) gets NaN at its +inf entries and 0 elsewhere (the core: a NaN row)
    v2 = np.asarray(value).reshape(kshape)
    with np.errstate(invalid="ignore"):
        infrow = np.isposinf(v2)
    if infrow.any():
        rows = x2[infrow]
        g2 = np.array(g2, copy=True)
        g2[infrow] = np.where(np.isposinf(rows), np.nan, 0.0).astype(g2.dtype)
    inv = np.argsort(keep + red)
    gx = np.transpose(g2.reshape(xt.shape), inv)
    return value, {"input_tensor": gx}


def reduce_logsumexp(input_tensor: ArrayLike, axis: int | Sequence[int] | ArrayLike | None = None,
                     keepdims: bool = False, name: str | None = None) -> FloatArray:
    """``tf.math.reduce_logsumexp``: ``log(sum(exp(x)))`` over `axis` (``None``: all axes;
    an int, list or tuple; ``[]`` reduces nothing). An empty reduction gives -inf; a row
    with +inf gives +inf (gradient NaN at the +inf entries, 0 elsewhere, as TF); NaN gives
    NaN. Near-zero results are exact (TF returns 0 for ``[0, -17, -17]`` in float32).
    """
    return _lse_impl({"input_tensor": input_tensor, "axis": axis, "keepdims": keepdims, "name": name},
                     (), None)[0]


def _sig_impl(log):
    core = D.log_sigmoid_impl if log else D.sigmoid_impl

    def impl(a, wrt, grad_output, grad_out=None):
        C.no_grad_out(grad_out)
        x = C.check_float(C.to_numpy(a["x"]), C.FLOATS_ISFINITE)
        return core({"x": x, "out": None, "n_threads": None}, ("x",) if wrt else (), grad_output)
    return impl


_sigmoid_core = _sig_impl(False)
_log_sigmoid_core = _sig_impl(True)


def sigmoid(x: ArrayLike, name: str | None = None) -> FloatArray:
    """``tf.math.sigmoid``: ``1 / (1 + exp(-x))``, elementwise (exact in both tails)."""
    return _sigmoid_core({"x": x, "name": name}, (), None)[0]


def log_sigmoid(x: ArrayLike, name: str | None = None) -> FloatArray:
    """``tf.math.log_sigmoid``: ``-softplus(-x)``, elementwise (exact in both tails)."""
    return _log_sigmoid_core({"x": x, "name": name}, (), None)[0]


C.register(reduce_logsumexp, _lse_impl, ("input_tensor",))
C.register(sigmoid, _sigmoid_core, ("x",))
C.register(log_sigmoid, _log_sigmoid_core, ("x",))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
