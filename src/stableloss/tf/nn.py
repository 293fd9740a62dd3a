"""Mirror of ``tf.nn``: softmax, log_softmax and the four cross-entropies with logits.

Signatures, defaults, dtype rules, shape rules and errors are TensorFlow 2.21's
(checked against TensorFlow by ``tests/test_tf_mirror.py``); the numbers come from the
core kernels.
Differences from TensorFlow, all deliberate and documented in ``docs/tensorflow.md``:
confident rows (target logit far ahead) get the exact tiny loss and gradient where
TensorFlow rounds to 0, and bfloat16 sparse logits are computed in float32.

Gradients: ``stableloss.value_and_grad(f, argnums=...)`` with ``argnums`` naming the
positional argument, e.g. ``argnums=1`` for the logits of
``softmax_cross_entropy_with_logits(labels, logits)``; they equal ``tf.GradientTape``'s
(the gradient of the sum of the output, or of ``grad_output`` times the output).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import math as _math

import numpy as np

from .. import _dispatch as D
from .. import _guard
from .. import _validation as V
from . import _common as C
from ._common import invalid_argument

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .._typing import FloatArray

__all__ = ["softmax", "log_softmax", "softmax_cross_entropy_with_logits",
           "sparse_softmax_cross_entropy_with_logits", "sigmoid_cross_entropy_with_logits",
           "weighted_cross_entropy_with_logits"]


# ---------------------------------------------------------------- softmax / log_softmax
def _softmax_axis(x, axis):
    if x.ndim == 0:
        raise invalid_argument("logits must have >= 1 dimension, got []")
    if axis is None:
        return x.ndim - 1
    if isinstance(axis, (tuple, list)):
        raise TypeError(f"axis: expected an int, got {type(axis).__name__} {axis!r}")
    try:
        ax = int(np.asarray(axis).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"axis: expected an int, got {axis!r}") from None
    if not -x.ndim <= ax < x.ndim:
        raise invalid_argument(f"`dim` must be in the range [{-x.ndim}, {x.ndim}) where {x.ndim} is the number "
                               f"of dimensions in the input. Received: dim={ax}")
    return ax % x.ndim


def _softmax_impl(log):
    core = D.log_softmax_impl if log else D.softmax_impl

    def impl(a, wrt, grad_output, grad_out=None):
        C.no_grad_out(grad_out)
        x = C.check_float(C.to_numpy(a["logits"]))
        ax = _softmax_axis(x, a["axis"])
        value, g = core({"x": x, "axis": ax, "out": None, "n_threads": None},
                        ("x",) if wrt else (), grad_output)
        return value, ({"logits": g["x"]} if wrt else {})
    return impl


_softmax_core = _softmax_impl(False)
_log_softmax_core = _softmax_impl(True)


def softmax(logits: ArrayLike, axis: int | None = None, name: str | None = None) -> FloatArray:
    """``tf.nn.softmax``: ``exp(x - max) / sum`` along `axis` (``None``: the last axis).

    float16/bfloat16/float32/float64 only (integer input raises InvalidArgumentError, as
    TF); rank 0 raises; rows with NaN, +inf or only -inf give NaN rows (as TF).
    """
    return _softmax_core({"logits": logits, "axis": axis, "name": name}, (), None)[0]


def log_softmax(logits: ArrayLike, axis: int | None = None, name: str | None = None) -> FloatArray:
    """``tf.nn.log_softmax``: ``x - logsumexp(x)`` along `axis` (``None``: the last axis).

    The winning entry of a confident row is the exact ``-log1p(s')`` (TF rounds it to 0).
    """
    return _log_softmax_core({"logits": logits, "axis": axis, "name": name}, (), None)[0]


# ---------------------------------------------------------------- dense cross-entropy
def _dense_axis(axis, rank):
    try:
        ax = int(np.asarray(axis).reshape(()))
    except (TypeError, ValueError):
        raise TypeError(f"axis: expected an int, got {axis!r}") from None
    if ax == -1:
        return rank - 1
    # TF builds range(axis) and range(axis + 1, rank) to move the axis last
    if ax < 0:
        raise invalid_argument(f"Requires start <= limit when delta > 0: 0/{ax}")
    if ax >= rank:
        raise invalid_argument(f"Requires start <= limit when delta > 0: {ax + 1}/{rank}")
    return ax


def _dense_prepare(labels, logits, axis, caller, check=True):
    """Move the class axis last, flatten to rows as TF does, broadcast the labels' rows.

    Returns (x2, y2, outer_shape, moved_shape, ax, labels_broadcast, x, y)."""
    x = C.check_float(C.to_numpy(logits))
    if x.ndim == 0:
        raise invalid_argument("Expected begin[0] == 0 (got -1) and size[0] == 0 (got 1) when "
                               "input.dim_size(0) == 0")
    y = C.to_numpy(labels)
    if y.dtype.kind not in "biuf" and y.dtype.name != "bfloat16":
        raise TypeError(f"labels: expected a real numeric array, got dtype {y.dtype}")
    ax = _dense_axis(axis, x.ndim)
    if check:
        _guard.check_logits(x, argument="logits", caller=caller, axis=ax,
                            fix="pass the pre-softmax values (logits), or use a loss on probabilities",
                            stacklevel=C.user_stacklevel())
    xm = np.moveaxis(x, ax, -1)
    if ax != x.ndim - 1:
        if y.ndim != x.ndim:
            raise invalid_argument(f"transpose expects a vector of size {y.ndim}. But input(1) is a vector "
                                   f"of size {x.ndim}")
        y = np.moveaxis(y, ax, -1)
    Cn = xm.shape[-1]
    outer = xm.shape[:-1]
    N = _math.prod(outer)
    x2 = xm.reshape(N, Cn)
    if y.ndim == 0:
        raise invalid_argument("logits and labels must be either 2-dimensional, or broadcasted to be "
                               "2-dimensional")
    yl = y.shape[-1]
    ny = _math.prod(y.shape[:-1])
    y2 = y.reshape(ny, yl)
    try:
        bshape = np.broadcast_shapes((N, Cn), (ny, yl))
    except ValueError:
        raise invalid_argument(f"logits and labels must be broadcastable: logits_size={C.dims_str((N, Cn))} "
                               f"labels_size={C.dims_str((ny, yl))}") from None
    if bshape != (N, Cn):
        raise invalid_argument(f"Input to reshape is a tensor with {bshape[0]} values, but the requested "
                               f"shape has {N}")
    broadcast = (ny, yl) != (N, Cn)
    if broadcast:
        y2 = np.broadcast_to(y2, (N, Cn))
    return x2, y2, outer, xm.shape, ax, broadcast, x, y


def _ce_prob_core(x2, y2, wrt, cot):
    """Core probability-label CE on rows, TF's unit-mass logits gradient."""
    args = {"logits": x2, "labels": y2, "axis": -1, "weight": None, "ignore_index": None,
            "label_smoothing": 0.0, "reduction": "none", "out": None, "n_threads": None,
            "unit_mass": True}
    return D.softmax_cross_entropy_impl(args, wrt, cot)


def _rows_back(g2, moved_shape, ax):
    return np.moveaxis(g2.reshape(moved_shape), -1, ax)


def _dense_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x2, y2, outer, moved, ax, bcast, x, y = _dense_prepare(
        a["labels"], a["logits"], a["axis"], "tf.nn.softmax_cross_entropy_with_logits")
    if "labels" in wrt and not (y.dtype.kind == "f" or y.dtype.name == "bfloat16"):
        raise TypeError(f"labels: {y.dtype} labels have no gradient (TensorFlow returns None for them)")
    if "labels" in wrt and bcast:
        raise invalid_argument(f"Input to reshape is a tensor with {x2.size} values, but the requested "
                               f"shape has {y.size}")
    cot = None
    if wrt and grad_output is not None:
        cot = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), outer).reshape(-1)
    cwrt = tuple(n for n in ("logits", "labels") if n in wrt)
    value, g = _ce_prob_core(x2, y2, cwrt, cot)
    value = value.reshape(outer)
    grads = {}
    if "logits" in wrt:
        grads["logits"] = _rows_back(g["logits"], moved, ax)
    if "labels" in wrt:
        gl = _rows_back(g["labels"], moved, ax)
        grads["labels"] = gl.astype(y.dtype)
    return value, grads


def softmax_cross_entropy_with_logits(labels: ArrayLike, logits: ArrayLike, axis: int = -1,
                                      name: str | None = None) -> FloatArray:
    """``tf.nn.softmax_cross_entropy_with_logits`` (TF2): ``sum_c y_c (lse - x_c)`` per row.

    Labels are not normalised (a row summing to k gives k times the loss), are cast to
    the logits' dtype, and broadcast row-wise as TF's kernel does. The logits gradient
    is TensorFlow's ``softmax(x) - y`` (the true derivative only when each label row sums
    to 1; ``stableloss.softmax_cross_entropy`` gives the true one); the labels gradient
    is ``-log_softmax(x)``. `axis` must be -1 or in ``[0, rank)`` (TF's rule).
    """
    return _dense_impl({"labels": labels, "logits": logits, "axis": axis, "name": name}, (), None)[0]


# ---------------------------------------------------------------- sparse cross-entropy
def _sparse_prepare(labels, logits, caller, check=True):
    x = C.check_float(C.to_numpy(logits))
    y = C.to_numpy(labels)
    if y.dtype not in (np.int32, np.int64):
        raise invalid_argument(f"Value for attr 'Tlabels' of {C.tf_dtype_name(y.dtype)} is not in the list of "
                               f"allowed values: int32, int64")
    if x.ndim == 0:
        raise ValueError(f"`logits` cannot be a scalar. Received logits={_tf_repr(x)}`")
    if y.ndim != x.ndim - 1:
        raise ValueError("`labels.shape.rank` must equal `logits.shape.rank - 1`. Received: "
                         f"labels.shape={C.shape_str(y.shape)} of rank {y.ndim} and "
                         f"logits.shape={C.shape_str(x.shape)} of rank {x.ndim}")
    if y.shape != x.shape[:-1]:
        raise ValueError("`labels.shape` must equal `logits.shape` except for the last dimension. Received: "
                         f"labels.shape={C.shape_str(y.shape)} and logits.shape={C.shape_str(x.shape)}")
    Cn = x.shape[-1]
    if Cn == 0:
        raise invalid_argument(f"Must have at least one class, but got logits shape "
                               f"{C.dims_str((_math.prod(x.shape[:-1]), 0))}")
    _check_sparse_labels(y, Cn)
    if check:
        _guard.check_logits(x, argument="logits", caller=caller, axis=-1,
                            fix="pass the pre-softmax values (logits), or use a loss on probabilities",
                            stacklevel=C.user_stacklevel())
    return x, y


def _check_sparse_labels(y, Cn):
    if y.size == 0:
        return
    bad = (y < 0) | (y >= Cn)
    if bad.any():
        first = int(y.reshape(-1)[np.argmax(bad.reshape(-1))])
        values = " ".join(str(int(v)) for v in y.reshape(-1))
        raise invalid_argument(f"Received a label value of {first} which is outside the valid range of "
                               f"[0, {Cn}).  Label values: {values}")


def _tf_repr(x):
    v = x.reshape(()).item() if x.ndim == 0 else x
    return repr(float(v)) if isinstance(v, float) else repr(v)


def _sparse_core(x, y, wrt, grad_output):
    args = {"logits": x, "labels": y.astype(np.int64), "axis": -1, "weight": None, "ignore_index": None,
            "label_smoothing": 0.0, "reduction": "none", "out": None, "n_threads": None}
    cot = None
    if wrt and grad_output is not None:
        cot = np.broadcast_to(np.asarray(grad_output, dtype=np.float64), y.shape)
    return D.softmax_cross_entropy_impl(args, wrt, cot)


def _sparse_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x, y = _sparse_prepare(a["labels"], a["logits"], "tf.nn.sparse_softmax_cross_entropy_with_logits")
    return _sparse_core(x, y, ("logits",) if wrt else (), grad_output)


def sparse_softmax_cross_entropy_with_logits(labels: ArrayLike, logits: ArrayLike,
                                             name: str | None = None) -> FloatArray:
    """``tf.nn.sparse_softmax_cross_entropy_with_logits``: ``lse(x) - x_y`` per row.

    Labels int32/int64 of the logits' shape without the last axis; a label outside
    ``[0, C)`` raises InvalidArgumentError (TF's CPU behaviour). Gradient wrt logits
    ``softmax(x) - onehot(y)``; labels are not differentiable.
    """
    return _sparse_impl({"labels": labels, "logits": logits, "name": name}, (), None)[0]


# ---------------------------------------------------------------- sigmoid family
def _binary_prepare(labels, logits, fname, op="Mul"):
    if labels is None or logits is None:
        raise ValueError(f"Both `labels` and `logits` must be provided for {fname}"
                         f"Received: labels={_arg_repr(labels)} and logits={_arg_repr(logits)}")
    x = C.to_numpy(logits)
    z = C.to_numpy(labels)
    if z.shape != x.shape:
        raise ValueError("`logits` and `labels` must have the same shape, received "
                         f"({C.shape_str(x.shape)} vs {C.shape_str(z.shape)}).")
    C.cast_like(z, x.dtype, op, 1)
    C.check_float(x, C.FLOATS_ISFINITE)
    return x, z


def _arg_repr(v):
    if v is None:
        return "None"
    a = np.asarray(C.to_numpy(v))
    return np.array2string(a, separator=" ") if a.ndim else str(a)


def _binary_core(x, z, pos_weight, form, wrt, grad_output):
    args = {"logits": x, "labels": z, "weight": None, "pos_weight": pos_weight, "reduction": "none",
            "out": None, "n_threads": None, "form": form}
    cot = None
    if wrt and grad_output is not None:
        cot = np.broadcast_to(np.asarray(grad_output), x.shape)
    return D.sigmoid_cross_entropy_impl(args, wrt, cot)


def _sigmoid_tf_edges(x, z, value):
    """TF's value where the logits or labels are infinite: its formula
    ``max(x, 0) - x z + log1p(exp(-|x|))`` evaluated as is (NaN for x = +inf, inf or NaN
    for x = -inf), where the core's exact evaluation gives the limits instead."""
    if V.all_finite(x, z):          # the common case: one pass each, no mask built
        return value
    bad = ~(np.isfinite(x) & np.isfinite(z))
    xb, zb = x[bad], z[bad]
    with np.errstate(invalid="ignore", over="ignore"):
        tfv = (np.where(xb >= 0, xb, 0) - xb * zb) + np.log1p(np.exp(np.where(xb >= 0, -xb, xb)))
    value = np.array(value, copy=True)
    value[bad] = tfv.astype(value.dtype)
    return value


def _sigmoid_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x, z = _binary_prepare(a["labels"], a["logits"], "sigmoid_cross_entropy_with_logits")
    value, g = _binary_core(x, z, None, 0, tuple(n for n in ("logits", "labels") if n in wrt), grad_output)
    return _sigmoid_tf_edges(x, z, value), g


def sigmoid_cross_entropy_with_logits(labels: ArrayLike | None = None, logits: ArrayLike | None = None,
                                      name: str | None = None) -> FloatArray:
    """``tf.nn.sigmoid_cross_entropy_with_logits``: ``max(x,0) - x z + log1p(exp(-|x|))``.

    Labels must have the logits' shape and dtype (no broadcasting, no casting: TF's
    rules). Computed exactly (both tails); infinite logits give TF's values (x = +inf:
    NaN; x = -inf: ``inf`` for z > 0). Gradients: ``sigmoid(x) - z`` and ``-x``.
    """
    return _sigmoid_impl({"labels": labels, "logits": logits, "name": name}, (), None)[0]


def _weighted_prepare(a):
    x = C.to_numpy(a["logits"])
    z = C.to_numpy(a["labels"])
    if z.dtype.kind in "biu" and x.dtype.kind == "f":
        raise TypeError(f"Cannot convert 1.0 to EagerTensor of dtype {C.tf_dtype_name(z.dtype)}")
    if z.shape != x.shape:
        raise ValueError("`logits` and `labels` must have the same shape, received "
                         f"({C.shape_str(x.shape)} vs {C.shape_str(z.shape)}).")
    C.check_float(x, C.FLOATS_ISFINITE)
    C.cast_like(z, x.dtype, "Mul", 1)
    q_in = a["pos_weight"]
    q = C.to_numpy(q_in)
    if C.is_tensor(q_in):     # a tf.Tensor keeps its dtype: TF's Mul then fails on a mismatch
        if q.dtype != x.dtype:
            raise invalid_argument(f"cannot compute Mul as input #1(zero-based) was expected to be a "
                                   f"{C.tf_dtype_name(q.dtype)} tensor but is a {C.tf_dtype_name(x.dtype)} tensor")
    else:                     # Python numbers, lists and NumPy arrays are converted to the logits' dtype
        q = np.asarray(q_in).astype(x.dtype)
    try:
        np.broadcast_shapes(q.shape, x.shape)
    except ValueError:        # TF's Mul fails on shapes that do not broadcast
        raise invalid_argument(f"Incompatible shapes: {C.dims_str(q.shape)} vs. {C.dims_str(x.shape)} "
                               f"[Op:Mul]") from None
    try:
        if np.broadcast_shapes(q.shape, x.shape) != x.shape:
            raise ValueError
    except ValueError:
        raise ValueError(f"pos_weight: shape {C.shape_str(q.shape)} must broadcast to the logits' shape "
                         f"{C.shape_str(x.shape)} (the mirror does not enlarge the output)") from None
    return x, z, q


def _weighted_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x, z, q = _weighted_prepare(a)
    return _binary_core(x, z, q, 1, tuple(n for n in ("logits", "labels") if n in wrt), grad_output)


def weighted_cross_entropy_with_logits(labels: ArrayLike, logits: ArrayLike, pos_weight: ArrayLike,
                                       name: str | None = None) -> FloatArray:
    """``tf.nn.weighted_cross_entropy_with_logits``:
    ``(1 - z) x + (1 + (q - 1) z) (log1p(exp(-|x|)) + max(-x, 0))``.

    Reproduces TensorFlow's evaluation on purpose: the loss cancels for very negative
    logits (``x = -20, z = 0`` gives 0, true 2.06e-9), and the logits gradient at exactly
    ``x = 0`` is ``1 - z`` (TF's abs/relu slopes there), not the true ``0.5 + ... ``.
    ``stableloss.sigmoid_cross_entropy(..., pos_weight=q)`` is the exact alternative.
    `pos_weight` broadcasts to the logits; a Python number takes the logits' dtype.
    Differentiable: logits (1) and labels (0); pos_weight is not.
    """
    return _weighted_impl({"labels": labels, "logits": logits, "pos_weight": pos_weight, "name": name},
                          (), None)[0]


C.register(softmax, _softmax_core, ("logits",))
C.register(log_softmax, _log_softmax_core, ("logits",))
C.register(softmax_cross_entropy_with_logits, _dense_impl, ("labels", "logits"))
C.register(sparse_softmax_cross_entropy_with_logits, _sparse_impl, ("logits",))
C.register(sigmoid_cross_entropy_with_logits, _sigmoid_impl, ("labels", "logits"))
C.register(weighted_cross_entropy_with_logits, _weighted_impl, ("labels", "logits"))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
