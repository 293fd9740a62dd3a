"""Mirror of ``tf.compat.v1.losses``: log_loss, softmax_cross_entropy,
sparse_softmax_cross_entropy, sigmoid_cross_entropy, compute_weighted_loss and
``Reduction``, with TensorFlow 2.21's signatures and math.

As in TensorFlow, the per-element losses (from the ``tf.nn`` mirror, i.e. the core
kernels) are cast to **float32**, multiplied by the weights (cast to float32), reduced
in float32 and cast back to the input dtype -- float64 inputs lose precision even with
``Reduction.NONE`` -- and ``log_loss`` works in float32 throughout. Division is TF's
``div_no_nan`` (0 when the denominator is 0). ``scope`` and ``loss_collection`` are
accepted and ignored (as in TF's eager mode).

Gradients (``stableloss.value_and_grad``): the per-element cotangent is TF's
``div_no_nan(g, denominator) * weights`` in float32, cast to the input dtype, fed to the
fused kernel of the underlying op.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal, Tuple, overload

import numpy as np

from .... import _dispatch as D
from .... import _guard
from ... import _common as C
from ... import nn as _nn
from ..._common import invalid_argument

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ...._typing import FloatArray, FloatScalar, LossValue, TFReduced

__all__ = ["Reduction", "compute_weighted_loss", "log_loss", "softmax_cross_entropy",
           "sparse_softmax_cross_entropy", "sigmoid_cross_entropy"]

_F32 = np.dtype(np.float32)


class Reduction:
    """Types of loss reduction (TF v1). ``SUM_OVER_NONZERO_WEIGHTS`` is the same string as
    ``SUM_BY_NONZERO_WEIGHTS``, the default of every v1 loss."""

    NONE: Final = "none"
    SUM: Final = "weighted_sum"
    SUM_OVER_BATCH_SIZE: Final = "weighted_sum_over_batch_size"
    MEAN: Final = "weighted_mean"
    SUM_BY_NONZERO_WEIGHTS: Final = "weighted_sum_by_nonzero_weights"
    SUM_OVER_NONZERO_WEIGHTS: Final = SUM_BY_NONZERO_WEIGHTS

    @classmethod
    def all(cls) -> Tuple[str, ...]:
        return (cls.NONE, cls.SUM, cls.MEAN, cls.SUM_OVER_BATCH_SIZE, cls.SUM_OVER_NONZERO_WEIGHTS,
                cls.SUM_BY_NONZERO_WEIGHTS)

    @classmethod
    def validate(cls, key: str) -> None:
        if key not in cls.all():
            raise ValueError(f"Invalid Reduction Key {key}. Key should be one of {cls.all()}.")


_DEFAULT = Reduction.SUM_BY_NONZERO_WEIGHTS


def _div_no_nan(a, b):
    a, b = np.float32(a), np.float32(b)
    if b == 0:
        return np.float32(0.0)
    with np.errstate(all="ignore"):
        return np.float32(a / b)


def _check_broadcastable(w, L):
    if w.ndim == 0:
        return
    prefix = "weights can not be broadcast to values."
    if w.ndim != L.ndim:
        raise ValueError(f"{prefix} values.rank={L.ndim}. weights.rank={w.ndim}. "
                         f"values.shape={C.shape_str(L.shape)}. weights.shape={C.shape_str(w.shape)}. "
                         f"Received weights={w}, values={L}")
    for i, (ws, vs) in enumerate(zip(w.shape, L.shape)):
        if ws not in (1, vs):
            raise ValueError(f"{prefix} Mismatch at dim {i}. values.shape={list(L.shape)}, "
                             f"weights.shape={list(w.shape)}. Received weights={w!r}, values={L!r}")


class _Weighted:
    """TF's compute_weighted_loss on per-element losses L (any float dtype)."""

    def __init__(self, L, weights, reduction):
        Reduction.validate(reduction)
        self.shape, self.dtype, self.reduction = L.shape, L.dtype, reduction
        w_is_float = isinstance(weights, float)
        w = C.to_numpy(weights)
        if w.dtype.kind not in "biuf" and w.dtype.name != "bfloat16":
            raise TypeError(f"weights: expected a real numeric array, got dtype {w.dtype}")
        _check_broadcastable(w, L)
        self.W = np.broadcast_to(w.astype(_F32), L.shape)
        L32 = L.astype(_F32, order="C")       # sums in one order whatever the layout
        with np.errstate(all="ignore"):
            weighted = L32 * self.W
        if reduction == Reduction.NONE:
            self.denom = None
            value = weighted
        else:
            total = np.sum(weighted, dtype=_F32)
            if reduction == Reduction.SUM:
                self.denom = None
                value = total
            else:
                if reduction == Reduction.MEAN:
                    denom = np.sum(self.W, dtype=_F32)
                elif reduction == Reduction.SUM_OVER_BATCH_SIZE:
                    denom = np.float32(L.size)
                elif (w_is_float and weights != 0.0) or (w.ndim == 0 and w != 0):
                    denom = np.float32(L.size)          # _num_present's scalar shortcut
                else:
                    denom = np.float32(np.count_nonzero(self.W))
                self.denom = denom
                value = _div_no_nan(total, denom)
        with np.errstate(over="ignore"):
            self.value = np.asarray(value).astype(L.dtype) if reduction == Reduction.NONE \
                else L.dtype.type(value)

    def cotangent(self, grad_output):
        """d value / d L for the cotangent `grad_output` (TF's float32 chain), in L's dtype."""
        if self.reduction == Reduction.NONE:
            g = np.ones(self.shape, _F32) if grad_output is None else \
                np.broadcast_to(np.asarray(grad_output).astype(_F32), self.shape)
            with np.errstate(all="ignore"):
                return (g * self.W).astype(self.dtype)
        g = np.float32(1.0) if grad_output is None else np.asarray(grad_output).astype(_F32).reshape(())
        if self.denom is not None:
            g = _div_no_nan(g, self.denom)
        with np.errstate(all="ignore"):
            return (g * self.W).astype(self.dtype)


def _not_none(**kw):
    for k, v in kw.items():
        if v is None:
            raise ValueError(f"Argument `{k}` must not be None.")


def _compatible(a, b):
    if a.shape != b.shape:
        raise ValueError(f"Shapes {C.shape_str(a.shape)} and {C.shape_str(b.shape)} are incompatible")


# ---------------------------------------------------------------- compute_weighted_loss
def _cwl_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    L = C.to_numpy(a["losses"])
    if L.dtype.kind not in "biufc" and L.dtype.name != "bfloat16":   # None, objects, strings
        raise ValueError(f"losses: cannot convert {type(a['losses']).__name__} of dtype {L.dtype} to a "
                         f"Tensor (TensorFlow raises ValueError)")
    wl = _Weighted(L, a["weights"], a["reduction"])
    return wl.value, ({"losses": wl.cotangent(grad_output)} if wrt else {})


@overload
def compute_weighted_loss(losses: ArrayLike, weights: ArrayLike = ..., scope: str | None = ...,
                          loss_collection: str | None = ...,
                          reduction: TFReduced = ...) -> FloatScalar: ...
@overload
def compute_weighted_loss(losses: ArrayLike, weights: ArrayLike = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., *,
                          reduction: Literal["none"]) -> FloatArray: ...
@overload
def compute_weighted_loss(losses: ArrayLike, weights: ArrayLike = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., reduction: str = ...) -> LossValue: ...
def compute_weighted_loss(losses: ArrayLike, weights: ArrayLike = 1.0, scope: str | None = None,
                          loss_collection: str | None = "losses", reduction: str = _DEFAULT) -> LossValue:
    """``tf.compat.v1.losses.compute_weighted_loss``: weights (rank 0, or the rank of
    `losses` with each dim 1 or equal) times losses, reduced by `reduction`, in float32."""
    return _cwl_impl({"losses": losses, "weights": weights, "reduction": reduction}, (), None)[0]


# ---------------------------------------------------------------- log_loss
def _log_loss_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    _not_none(labels=a["labels"], predictions=a["predictions"])
    p_in = C.to_numpy(a["predictions"])
    p = p_in.astype(_F32)
    z = C.to_numpy(a["labels"]).astype(_F32)
    _compatible(p, z)
    _guard.check_probabilities(p, argument="predictions", caller="tf.compat.v1.losses.log_loss",
                               fix="use tf.compat.v1.losses.sigmoid_cross_entropy(labels, logits) instead",
                               stacklevel=C.user_stacklevel())
    eps = float(a["epsilon"])
    args = {"probs": p, "labels": z, "weight": None, "reduction": "none", "out": None, "policy": "add",
            "epsilon": eps, "n_threads": None, "check_range": False}
    L, _ = D.binary_cross_entropy_impl(args, (), None)
    # TF multiplies, without a zero-coefficient shortcut: 0 * log(p + eps) is NaN where
    # p + eps <= 0 (the core's "add" policy treats a zero coefficient as exactly 0)
    with np.errstate(all="ignore"):
        e32 = np.float32(eps)
        nan = ((z == 0) & ~((p + e32) > 0)) | ((z == 1) & ~(((np.float32(1) - p) + e32) > 0))
    if nan.any():
        L = np.where(nan, np.float32(np.nan), L)
    wl = _Weighted(L, a["weights"], a["reduction"])
    grads = {}
    if wrt:
        cot = wl.cotangent(grad_output)
        _, g = D.binary_cross_entropy_impl(args, ("probs",), cot)
        gp = g["probs"]     # TF casts the gradient back through the cast to float32
        grads["predictions"] = gp.astype(p_in.dtype) if (p_in.dtype.kind == "f"
                                                         or p_in.dtype.name == "bfloat16") else gp
    return wl.value, grads


@overload
def log_loss(labels: ArrayLike, predictions: ArrayLike, weights: ArrayLike = ..., epsilon: float = ...,
             scope: str | None = ..., loss_collection: str | None = ...,
             reduction: TFReduced = ...) -> FloatScalar: ...
@overload
def log_loss(labels: ArrayLike, predictions: ArrayLike, weights: ArrayLike = ..., epsilon: float = ...,
             scope: str | None = ..., loss_collection: str | None = ..., *,
             reduction: Literal["none"]) -> FloatArray: ...
@overload
def log_loss(labels: ArrayLike, predictions: ArrayLike, weights: ArrayLike = ..., epsilon: float = ...,
             scope: str | None = ..., loss_collection: str | None = ...,
             reduction: str = ...) -> LossValue: ...
def log_loss(labels: ArrayLike, predictions: ArrayLike, weights: ArrayLike = 1.0, epsilon: float = 1e-07,
             scope: str | None = None, loss_collection: str | None = "losses",
             reduction: str = _DEFAULT) -> LossValue:
    """``tf.compat.v1.losses.log_loss``:
    ``-z log(p + eps) - (1 - z) log(1 - p + eps)`` in float32 (always float32 out).

    epsilon sits inside the logs, no clipping: a perfect prediction scores
    ``-log(1 + eps)`` = -1.1920928e-07 in float32; p outside ``[-eps, 1 + eps]`` gives NaN.
    Differentiable: predictions (argnums=1).
    """
    return _log_loss_impl({"labels": labels, "predictions": predictions, "weights": weights,
                           "epsilon": epsilon, "reduction": reduction}, (), None)[0]


# ---------------------------------------------------------------- softmax_cross_entropy
def _smooth(y, ls, dt, C_):
    """y (1 - ls) + ls / C in the logits' dtype, as TF v1 computes it."""
    with np.errstate(all="ignore"):
        return (y * dt.type(1.0 - ls) + dt.type(ls) / dt.type(C_)).astype(dt)


def _softmax_ce_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    _not_none(onehot_labels=a["onehot_labels"], logits=a["logits"])
    x = C.to_numpy(a["logits"])
    C.check_float(x)
    y = C.to_numpy(a["onehot_labels"]).astype(x.dtype)
    _compatible(x, y)
    ls = a["label_smoothing"]
    if ls > 0:
        y = _smooth(y, float(ls), x.dtype, y.shape[-1] if y.ndim else 1)
    x2, y2, outer, moved, ax, _, _, _ = _nn._dense_prepare(
        y, x, -1, "tf.compat.v1.losses.softmax_cross_entropy")
    L, _ = _nn._ce_prob_core(x2, y2, (), None)
    wl = _Weighted(np.asarray(L).reshape(outer), a["weights"], a["reduction"])
    grads = {}
    if wrt:
        cot = wl.cotangent(grad_output).astype(np.float64).reshape(-1)
        _, g = _nn._ce_prob_core(x2, y2, ("logits",), cot)
        grads["logits"] = _nn._rows_back(g["logits"], moved, ax)
    return wl.value, grads


@overload
def softmax_cross_entropy(onehot_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ...,
                          reduction: TFReduced = ...) -> FloatScalar: ...
@overload
def softmax_cross_entropy(onehot_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., *,
                          reduction: Literal["none"]) -> FloatArray: ...
@overload
def softmax_cross_entropy(onehot_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., reduction: str = ...) -> LossValue: ...
def softmax_cross_entropy(onehot_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str | None = "losses", reduction: str = _DEFAULT) -> LossValue:
    """``tf.compat.v1.losses.softmax_cross_entropy``: labels cast to the logits' dtype; if
    ``label_smoothing > 0``, ``y (1 - ls) + ls / C``; then
    ``tf.nn.softmax_cross_entropy_with_logits`` on the last axis and the weighted reduction.
    Labels are not differentiable (TF stops their gradient); logits: argnums=1."""
    return _softmax_ce_impl({"onehot_labels": onehot_labels, "logits": logits, "weights": weights,
                             "label_smoothing": label_smoothing, "reduction": reduction}, (), None)[0]


# ---------------------------------------------------------------- sparse_softmax_cross_entropy
def _sparse_ce_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    _not_none(labels=a["labels"], logits=a["logits"])
    x = C.to_numpy(a["logits"])
    y = C.to_numpy(a["labels"])
    # remove_squeezable_dimensions(expected_rank_diff=1)
    rd = x.ndim - y.ndim
    if rd == 2 and x.shape[-1] == 1:
        x = x[..., 0]
    elif rd == 0 and y.ndim and y.shape[-1] == 1:
        y = y[..., 0]
    w = a["weights"]
    w_arr = C.to_numpy(w)
    if w_arr.ndim - y.ndim == 1:
        if w_arr.shape[-1] != 1:
            raise invalid_argument(f"Can not squeeze dim[{w_arr.ndim - 1}], expected a dimension of 1, got "
                                   f"{w_arr.shape[-1]}")
        w = w_arr[..., 0]
    x, y = _nn._sparse_prepare(y, x, "tf.compat.v1.losses.sparse_softmax_cross_entropy")
    L, _ = _nn._sparse_core(x, y, (), None)
    wl = _Weighted(np.asarray(L), w, a["reduction"])
    grads = {}
    if wrt:
        cot = wl.cotangent(grad_output).astype(np.float64)
        grads["logits"] = _nn._sparse_core(x, y, ("logits",), cot)[1]["logits"].reshape(
            C.to_numpy(a["logits"]).shape)
    return wl.value, grads


@overload
def sparse_softmax_cross_entropy(labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                                 scope: str | None = ..., loss_collection: str | None = ...,
                                 reduction: TFReduced = ...) -> FloatScalar: ...
@overload
def sparse_softmax_cross_entropy(labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                                 scope: str | None = ..., loss_collection: str | None = ..., *,
                                 reduction: Literal["none"]) -> FloatArray: ...
@overload
def sparse_softmax_cross_entropy(labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                                 scope: str | None = ..., loss_collection: str | None = ...,
                                 reduction: str = ...) -> LossValue: ...
def sparse_softmax_cross_entropy(labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = 1.0,
                                 scope: str | None = None, loss_collection: str | None = "losses",
                                 reduction: str = _DEFAULT) -> LossValue:
    """``tf.compat.v1.losses.sparse_softmax_cross_entropy``: labels int32/int64 (a trailing
    size-1 dim squeezed, as are weights one rank above the labels), then
    ``tf.nn.sparse_softmax_cross_entropy_with_logits`` and the weighted reduction. No label
    smoothing (TypeError, as TF). Differentiable: logits (argnums=1)."""
    return _sparse_ce_impl({"labels": labels, "logits": logits, "weights": weights,
                            "reduction": reduction}, (), None)[0]


# ---------------------------------------------------------------- sigmoid_cross_entropy
def _sigmoid_ce_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    _not_none(multi_class_labels=a["multi_class_labels"], logits=a["logits"])
    x = C.to_numpy(a["logits"])
    z_in = C.to_numpy(a["multi_class_labels"])
    z = z_in.astype(x.dtype)
    _compatible(x, z)
    ls = a["label_smoothing"]
    smooth = ls > 0
    if smooth:
        with np.errstate(all="ignore"):
            z = (z * x.dtype.type(1 - ls) + x.dtype.type(0.5 * ls)).astype(x.dtype)
    C.check_float(x, C.FLOATS_ISFINITE)
    L, _ = _nn._binary_core(x, z, None, 0, (), None)
    L = _nn._sigmoid_tf_edges(x, z, L)
    wl = _Weighted(np.asarray(L), a["weights"], a["reduction"])
    grads = {}
    if wrt:
        if "multi_class_labels" in wrt and not (z_in.dtype.kind == "f" or z_in.dtype.name == "bfloat16"):
            raise TypeError(f"multi_class_labels: {z_in.dtype} labels have no gradient (TensorFlow returns None)")
        cot = wl.cotangent(grad_output)
        want = tuple(n for n in ("logits", "labels") if n in wrt or (n == "labels" and "multi_class_labels" in wrt))
        _, g = _nn._binary_core(x, z, None, 0, want, cot)
        if "logits" in wrt:
            grads["logits"] = g["logits"]
        if "multi_class_labels" in wrt:
            gz = g["labels"]
            if smooth:
                gz = gz * x.dtype.type(1 - ls)
            grads["multi_class_labels"] = gz.astype(z_in.dtype)
    return wl.value, grads


@overload
def sigmoid_cross_entropy(multi_class_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ...,
                          reduction: TFReduced = ...) -> FloatScalar: ...
@overload
def sigmoid_cross_entropy(multi_class_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., *,
                          reduction: Literal["none"]) -> FloatArray: ...
@overload
def sigmoid_cross_entropy(multi_class_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = ...,
                          label_smoothing: float = ..., scope: str | None = ...,
                          loss_collection: str | None = ..., reduction: str = ...) -> LossValue: ...
def sigmoid_cross_entropy(multi_class_labels: ArrayLike, logits: ArrayLike, weights: ArrayLike = 1.0,
                          label_smoothing: float = 0, scope: str | None = None,
                          loss_collection: str | None = "losses", reduction: str = _DEFAULT) -> LossValue:
    """``tf.compat.v1.losses.sigmoid_cross_entropy``: labels cast to the logits' dtype; if
    ``label_smoothing > 0``, ``z (1 - ls) + 0.5 ls``; then
    ``tf.nn.sigmoid_cross_entropy_with_logits`` and the weighted reduction.
    Differentiable: multi_class_labels (argnums=0) and logits (argnums=1)."""
    return _sigmoid_ce_impl({"multi_class_labels": multi_class_labels, "logits": logits, "weights": weights,
                             "label_smoothing": label_smoothing, "reduction": reduction}, (), None)[0]


C.register(compute_weighted_loss, _cwl_impl, ("losses",))
C.register(log_loss, _log_loss_impl, ("predictions",))
C.register(softmax_cross_entropy, _softmax_ce_impl, ("logits",))
C.register(sparse_softmax_cross_entropy, _sparse_ce_impl, ("logits",))
C.register(sigmoid_cross_entropy, _sigmoid_ce_impl, ("multi_class_labels", "logits"))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
