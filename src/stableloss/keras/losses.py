"""`keras.losses` (Keras 3.15, TensorFlow backend) cross-entropy family over NumPy arrays.

Classes ``BinaryCrossentropy``, ``CategoricalCrossentropy``, ``SparseCategoricalCrossentropy``,
``BinaryFocalCrossentropy``, ``CategoricalFocalCrossentropy`` (Keras's constructor signatures,
``__call__(y_true, y_pred, sample_weight=None)``, reductions, ``get_config``/``from_config``),
the functions of the same names in snake case, and ``get(identifier)``.

This module is a translation layer: dtype casts, rank alignment, label smoothing, the misuse
guard and Keras's weighted reduction are NumPy glue here; every loss value and gradient comes
from :mod:`stableloss._dispatch` (the kernels, and its Keras-style probability compositions).
``stableloss.value_and_grad(f, argnums=1)`` differentiates every function and every loss
instance with respect to ``y_pred`` (TensorFlow's ``tape.gradient``, quirks included).
"""
from __future__ import annotations

import collections
import inspect
import re
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple, Type, TypeVar

import numpy as np

from .. import _dispatch as D
from .. import _guard as GD
from .._grad import register
from . import config as _config

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

    from .._typing import FloatArray, KerasReduction, LossValue

    _L = TypeVar("_L", bound="Loss")


def _tf_edges(x, z, value):
    from ..tf.nn import _sigmoid_tf_edges
    return _sigmoid_tf_edges(x, z, value)

__all__ = [
    "Loss", "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy",
    "BinaryFocalCrossentropy", "CategoricalFocalCrossentropy",
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy", "get", "serialize", "deserialize",
]

_REDUCTIONS = {"sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight"}
_GUARD_LEVEL = 5          # check_* -> per-sample fn -> impl -> __call__ / function -> user


# ---------------------------------------------------------------- dtypes
def _np_dtype(name):
    if name == "bfloat16":
        try:
            import ml_dtypes
        except ImportError:  # pragma: no cover
            raise TypeError("dtype: bfloat16 needs the ml_dtypes package") from None
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def _standardize_dtype(dtype: Any) -> str:
    """A Keras dtype (None -> floatx(), 'mixed_float16' -> 'float16', NumPy dtypes) as a name."""
    if dtype is None:
        dtype = _config.floatx()
    name = dtype if isinstance(dtype, str) else getattr(np.dtype(dtype), "name", str(dtype))
    name = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16", "half": "float16",
            "float": "float32", "double": "float64"}.get(name, name)
    if name not in ("float16", "bfloat16", "float32", "float64"):
        raise ValueError(f"dtype: the loss dtype must be a float dtype (float16, bfloat16, float32, "
                         f"float64), got {dtype!r}")
    return name


def _compute(dt):
    """Compute dtype of a result dtype: float16/bfloat16 are computed in float32."""
    return np.dtype(np.float32) if dt.itemsize == 2 else dt


def _as_float(x, dtype, name="y_pred"):
    """`x` converted as ops.convert_to_tensor(x, dtype) does (values rounded to `dtype`)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {a.dtype}")
    with np.errstate(over="ignore"):
        return a.astype(dtype, copy=False)


def _pred_dtype(y_pred):
    """The functions compute in y_pred's dtype; Python numbers/lists become floatx."""
    a = np.asarray(y_pred)
    if isinstance(y_pred, (np.ndarray, np.generic)) or hasattr(y_pred, "dtype"):
        if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
            return a.dtype.newbyteorder("=")      # results in native byte order (big-endian input)
    return _np_dtype(_config.floatx())


def _bounds(cd):
    """Keras's clip bounds [eps, 1 - eps], each rounded to the tensor dtype."""
    e = _config.epsilon()
    return float(cd.type(e)), float(cd.type(1.0 - e))


def _shape(a):
    return "(" + ", ".join(str(s) for s in a) + ("," if len(a) == 1 else "") + ")"


# ---------------------------------------------------------------- per-sample losses
# Each takes y_true, y_pred (y_pred's dtype `rd`, y_true cast to it), the loss options and
# `cot(shape, mask)`: called once the per-sample shape (and ignore mask) is known, it
# returns the per-sample cotangent (or None when no gradient is wanted). Returns
# (per-sample loss, keras mask or None, gradient wrt y_pred or None).
def _smooth_binary(yt, ls, cd):
    if ls:
        return (yt * cd.type(1.0 - ls) + cd.type(0.5 * ls)).astype(cd)
    return yt


def _smooth_categorical(yt, ls, cd):
    if ls:
        C = cd.type(yt.shape[-1]) if yt.ndim else cd.type(1)
        return (yt * cd.type(1.0 - ls) + cd.type(ls) / C).astype(cd)
    return yt


def _same_shape_check(yt, yp):
    if yt.ndim != yp.ndim:
        raise ValueError("Arguments `target` and `output` must have the same rank (ndim). Received: "
                         f"target.shape={_shape(yt.shape)}, output.shape={_shape(yp.shape)}")
    if yt.shape != yp.shape:
        raise ValueError("Arguments `target` and `output` must have the same shape. Received: "
                         f"target.shape={_shape(yt.shape)}, output.shape={_shape(yp.shape)}")


def _axis(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    if not -max(ndim, 1) <= axis < max(ndim, 1) or ndim == 0:
        raise ValueError(f"axis: {axis} is out of bounds for an array of dimension {ndim}")
    return int(axis) % ndim


def _mean_cot(G, ax, shape, n, cd):
    """Cotangent of the elementwise losses under the mean over `ax` (TF: broadcast, / n)."""
    if G is None:
        return None
    with np.errstate(all="ignore"):
        return (np.broadcast_to(np.expand_dims(G, ax), shape) / cd.type(n)).astype(cd)


def _bce(yt, yp, cd, from_logits, label_smoothing, axis, cot, caller):
    yt = _smooth_binary(yt, label_smoothing, cd)
    _same_shape_check(yt, yp)
    ax = _axis(axis, yp.ndim)
    if not from_logits:
        GD.check_probabilities(yp, argument="y_pred", caller=caller, stacklevel=_GUARD_LEVEL,
                               fix="pass from_logits=True")
    out_shape = yp.shape[:ax] + yp.shape[ax + 1:]
    ge = _mean_cot(cot(out_shape, None), ax, yp.shape, yp.shape[ax], cd)
    want = () if ge is None else (("logits",) if from_logits else ("probs",))
    if from_logits:
        el, g = D.sigmoid_cross_entropy_impl(
            dict(logits=yp, labels=yt, weight=None, pos_weight=None, reduction="none", out=None,
                 n_threads=None), want, ge)
    else:
        lo, hi = _bounds(cd)
        el, g = D.binary_cross_entropy_impl(
            dict(probs=yp, labels=yt, weight=None, reduction="none", out=None, policy="clip",
                 epsilon=lo, clip_max=hi, check_range=False, n_threads=None), want, ge)
    if from_logits:       # TF's formula at infinite logits: NaN / inf where the core gives limits
        el = _tf_edges(yp, yt, el)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)     # mean of an empty axis: NaN, as Keras
        loss = np.mean(el, axis=ax, dtype=cd).astype(cd)
    return loss, None, (g[want[0]] if want else None)


def _categorical_prelude(yt, yp, cd, label_smoothing, axis, fname):
    if isinstance(axis, (bool, np.bool_)):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")
    if yp.ndim and yp.shape[-1] == 1:
        warnings.warn(f"In loss {fname}, expected y_pred.shape to be (batch_size, num_classes) with "
                      f"num_classes > 1. Received: y_pred.shape={_shape(yp.shape)}. Consider using "
                      "'binary_crossentropy' if you only have 2 classes.", SyntaxWarning, stacklevel=5)
    return _smooth_categorical(yt, label_smoothing, cd)


def _cce(yt, yp, cd, from_logits, label_smoothing, axis, cot, caller):
    yt = _categorical_prelude(yt, yp, cd, label_smoothing, axis, "categorical_crossentropy")
    if yt.ndim < 1:
        raise ValueError("Arguments `target` and `output` must be at least rank 1. Received: "
                         f"target.shape={_shape(yt.shape)}, output.shape={_shape(yp.shape)}")
    _same_shape_check(yt, yp)
    if from_logits and (axis < -1 or axis >= yp.ndim):
        # tf.nn.softmax_cross_entropy_with_logits accepts -1 or 0 <= axis < rank only
        raise ValueError(f"axis: Requires start <= limit when delta > 0: 0/{axis} "
                         "(tf.nn.softmax_cross_entropy_with_logits takes axis=-1 or 0 <= axis < rank)")
    ax = _axis(axis, yp.ndim)
    out_shape = yp.shape[:ax] + yp.shape[ax + 1:]
    G = cot(out_shape, None)
    if from_logits:
        GD.check_logits(yp, argument="y_pred", caller=caller, axis=ax, stacklevel=_GUARD_LEVEL,
                        fix="pass from_logits=False (the default), or pass the pre-softmax logits")
        want = () if G is None else ("logits",)
        loss, g = D.softmax_cross_entropy_impl(
            dict(logits=yp, labels=yt, axis=ax, weight=None, ignore_index=None, label_smoothing=0.0,
                 reduction="none", out=None, n_threads=None, unit_mass=True), want, G)
        return loss, None, (g["logits"] if want else None)
    GD.check_probabilities(yp, argument="y_pred", caller=caller, axis=ax, stacklevel=_GUARD_LEVEL,
                           fix="pass from_logits=True")
    lo, hi = _bounds(cd)
    want = () if G is None else ("probs",)
    loss, g = D.clipped_categorical_impl(
        dict(probs=yp, labels=yt, axis=ax, lo=lo, hi=hi, renormalize=True, gamma=None, alpha=None),
        want, G)
    return loss, None, (g["probs"] if want else None)


def _scce(yt, yp, cd, from_logits, ignore_class, axis, cot, caller):
    if yt.ndim == yp.ndim and yt.ndim and yt.shape[axis] == 1:
        yt = np.squeeze(yt, axis=axis)
    valid = None
    if ignore_class is not None:
        class_axis = axis % yp.ndim if yp.ndim else 0
        res_shape = yp.shape[:class_axis] + yp.shape[class_axis + 1:]
        valid = yt != cd.type(ignore_class)
        yt = np.where(valid, yt, 0)
        yp = np.where(np.expand_dims(valid, axis), yp, cd.type(0))
    if axis != -1 and axis != yp.ndim - 1:
        raise ValueError(f"Only axis=-1 is currently supported. Received: axis={axis}")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lab = np.asarray(yt).astype(np.int64)        # tf.cast(..., "int64"): floats truncate
    if lab.ndim == yp.ndim and lab.ndim and lab.shape[-1] == 1:
        lab = np.squeeze(lab, axis=-1)
    if yp.ndim < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: output.shape={_shape(yp.shape)}")
    if lab.ndim != yp.ndim - 1:
        raise ValueError("Argument `output` must have rank (ndim) `target.ndim - 1`. Received: "
                         f"target.shape={_shape(lab.shape)}, output.shape={_shape(yp.shape)}")
    if lab.shape != yp.shape[:-1]:
        raise ValueError("Arguments `target` and `output` must have the same shape up until the last "
                         f"dimension: target.shape={_shape(lab.shape)}, output.shape={_shape(yp.shape)}")
    mask = None if valid is None else valid.reshape(res_shape)
    G = cot(yp.shape[:-1], mask)
    if G is not None and mask is not None:
        G = np.where(mask, G, cd.type(0))
    rows = yp if mask is None else yp[mask]
    if from_logits:
        GD.check_logits(rows, argument="y_pred", caller=caller, axis=-1, stacklevel=_GUARD_LEVEL,
                        fix="pass from_logits=False (the default), or pass the pre-softmax logits")
        want = () if G is None else ("logits",)
        loss, g = D.softmax_cross_entropy_impl(
            dict(logits=yp, labels=lab, axis=-1, weight=None, ignore_index=None, label_smoothing=0.0,
                 reduction="none", out=None, n_threads=None), want, G)
        g = g["logits"] if want else None
    else:
        GD.check_probabilities(rows, argument="y_pred", caller=caller, axis=-1, stacklevel=_GUARD_LEVEL,
                               fix="pass from_logits=True")
        lo, hi = _bounds(cd)
        want = () if G is None else ("probs",)
        loss, g = D.clipped_sparse_impl(dict(probs=yp, labels=lab, lo=lo, hi=hi), want, G)
        g = g["probs"] if want else None
    loss = np.asarray(loss, dtype=cd)
    if mask is not None:
        loss = np.where(mask, loss, cd.type(0))
        if g is not None:
            g = np.where(np.expand_dims(mask, -1), g, cd.type(0))
    return loss, mask, g


def _bfce(yt, yp, cd, apply_class_balancing, alpha, gamma, from_logits, label_smoothing, axis, cot,
          caller):
    yt = _smooth_binary(yt, label_smoothing, cd)
    _same_shape_check(yt, yp)
    ax = _axis(axis, yp.ndim)
    if not from_logits:
        GD.check_probabilities(yp, argument="y_pred", caller=caller, stacklevel=_GUARD_LEVEL,
                               fix="pass from_logits=True")
    out_shape = yp.shape[:ax] + yp.shape[ax + 1:]
    ge = _mean_cot(cot(out_shape, None), ax, yp.shape, yp.shape[ax], cd)
    lo, hi = _bounds(cd)
    want = () if ge is None else ("y_pred",)
    el, g = D.binary_focal_impl(
        dict(y_pred=yp, labels=yt, from_logits=bool(from_logits), lo=lo, hi=hi, gamma=gamma,
             alpha=alpha if apply_class_balancing else None), want, ge)
    if from_logits and not np.all(np.isfinite(yp)):
        # Keras multiplies TF's sigmoid cross-entropy, NaN or inf at infinite logits, by the
        # focal factor: reproduce the product there
        bad = ~np.isfinite(yp)
        xb, zb = yp[bad], yt[bad]
        with np.errstate(all="ignore"):
            p = np.where(xb > 0, 1.0, np.where(xb < 0, 0.0, np.nan)).astype(cd)
            f = np.power(1 - (zb * p + (1 - zb) * (1 - p)), cd.type(gamma))
            if apply_class_balancing:
                f = f * (zb * cd.type(alpha) + (1 - zb) * (1 - cd.type(alpha)))
            el = np.array(el, copy=True)
            el[bad] = (f * _tf_edges(xb, zb, np.zeros(xb.shape, cd))).astype(el.dtype)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loss = np.mean(el, axis=ax, dtype=cd).astype(cd)
    return loss, None, (g["y_pred"] if want else None)


def _cfce(yt, yp, cd, alpha, gamma, from_logits, label_smoothing, axis, cot, caller):
    yt = _categorical_prelude(yt, yp, cd, label_smoothing, axis, "categorical_focal_crossentropy")
    ax = _axis(axis, yp.ndim)
    out_shape = yp.shape[:ax] + yp.shape[ax + 1:]
    G = cot(out_shape, None)
    lo, hi = _bounds(cd)
    if from_logits:
        GD.check_logits(yp, argument="y_pred", caller=caller, axis=ax, stacklevel=_GUARD_LEVEL,
                        fix="pass from_logits=False (the default), or pass the pre-softmax logits")
        p = D.softmax_impl(dict(x=yp, axis=ax, out=None, n_threads=None), (), None)[0]
    else:
        GD.check_probabilities(yp, argument="y_pred", caller=caller, axis=ax, stacklevel=_GUARD_LEVEL,
                               fix="pass from_logits=True")
        p = yp
    want = () if G is None else ("probs",)
    try:
        np.broadcast_shapes(yt.shape, p.shape)
    except ValueError:        # Keras multiplies without a shape check: TF's Mul fails
        from ..tf.errors import invalid_argument
        raise invalid_argument(f"Incompatible shapes: {list(yt.shape)} vs. {list(p.shape)} [Op:Mul]") from None
    if isinstance(alpha, (list, tuple)):    # Keras converts a list to a floatx tensor first
        alpha = np.asarray(alpha, dtype=_np_dtype(_config.floatx()))
    loss, g = D.clipped_categorical_impl(
        dict(probs=p, labels=yt, axis=ax, lo=lo, hi=hi, renormalize=True, gamma=gamma, alpha=alpha),
        want, G)
    g = g["probs"] if want else None
    if g is not None and from_logits:
        g = D.softmax_impl(dict(x=yp, axis=ax, out=None, n_threads=None), ("x",), g)[1]["x"]
    return loss, None, g


# ---------------------------------------------------------------- the functions
def _run_function(kind, a, wrt, grad_output):
    """Function form: compute in y_pred's dtype (y_true cast to it); no reduction."""
    rd = _pred_dtype(a["y_pred"])
    cd = _compute(rd)
    ypa = np.asarray(a["y_pred"])
    if ypa.dtype.kind in "biu" and (isinstance(a["y_pred"], (np.ndarray, np.generic)) or hasattr(a["y_pred"], "dtype")):
        # the function form computes in y_pred's own dtype: Keras's ops fail on an integer tensor
        from ..tf.errors import invalid_argument
        tname = {"b": "bool"}.get(ypa.dtype.kind, ypa.dtype.name)
        if kind == "bce" and not a.get("from_logits"):
            raise TypeError(f"Cannot convert {1 - _config.epsilon()} to EagerTensor of dtype {tname}")
        raise invalid_argument(f"Value for attr 'T' of {tname} is not in the list of allowed values: "
                               f"half, bfloat16, float, double")
    yp = _as_float(a["y_pred"], rd).astype(cd)
    yt = a["y_true"]
    if kind != "scce":
        yt = _as_float(yt, rd, "y_true").astype(cd)
    else:
        yt = np.asarray(yt)

    def cot(shape, mask):
        if not wrt:
            return None
        g = np.ones(shape, cd) if grad_output is None else np.asarray(grad_output, dtype=cd)
        try:
            return np.array(np.broadcast_to(g, shape))     # (ascontiguousarray would make 0-d 1-d)
        except ValueError:
            raise ValueError(f"grad_output: shape {g.shape} does not match the output shape {shape}") from None

    opts = {k: v for k, v in a.items() if k not in ("y_true", "y_pred")}
    loss, _mask, g = _KINDS[kind](yt, yp, cd, **opts, cot=cot, caller=f"keras.losses.{_FN_NAMES[kind]}")
    value = np.asarray(loss).astype(rd)
    return value, ({"y_pred": g.astype(_grad_dtype(a["y_pred"], rd))} if wrt else {})


def _grad_dtype(y_pred, rd):
    a = np.asarray(y_pred)
    ok = (a.dtype.kind == "f" or a.dtype.name == "bfloat16") and hasattr(y_pred, "dtype")
    return a.dtype.newbyteorder("=") if ok else rd


def _function_impl(kind):
    def impl(a, wrt, grad_output, grad_out=None):
        return _run_function(kind, a, wrt, grad_output)
    return impl


def binary_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                        label_smoothing: float = 0.0, axis: int = -1) -> FloatArray:
    """Binary cross-entropy, averaged over `axis` (Keras ``keras.losses.binary_crossentropy``).

    Probabilities are clipped to ``[eps, 1 - eps]`` in y_pred's dtype (no renormalisation);
    ``from_logits=True`` uses the sigmoid cross-entropy. Labels smoothed as
    ``y·(1 - ls) + 0.5·ls``. Computes in y_pred's dtype; returns the per-sample losses.
    """
    return _run_function("bce", dict(y_true=y_true, y_pred=y_pred, from_logits=from_logits,
                                     label_smoothing=label_smoothing, axis=axis), (), None)[0]


def categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                             label_smoothing: float = 0.0, axis: int = -1) -> FloatArray:
    """Categorical cross-entropy (Keras): probabilities are renormalised along `axis`, then
    clipped to ``[eps, 1 - eps]``; ``from_logits=True`` is ``tf.nn.softmax_cross_entropy_with_logits``
    (gradient ``softmax - y`` whatever the label rows sum to). Labels smoothed as
    ``y·(1 - ls) + ls/C``, C = last axis of y_true."""
    return _run_function("cce", dict(y_true=y_true, y_pred=y_pred, from_logits=from_logits,
                                     label_smoothing=label_smoothing, axis=axis), (), None)[0]


def sparse_categorical_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, from_logits: bool = False,
                                    ignore_class: int | None = None, axis: int = -1) -> FloatArray:
    """Sparse categorical cross-entropy (Keras): integer labels (cast to int64, floats
    truncate); probabilities are clipped to ``[eps, 1 - eps]`` and then renormalised
    implicitly (``-log c_y + log Σ c``); ``ignore_class`` positions give 0."""
    return _run_function("scce", dict(y_true=y_true, y_pred=y_pred, from_logits=from_logits,
                                      ignore_class=ignore_class, axis=axis), (), None)[0]


def binary_focal_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, apply_class_balancing: bool = False,
                              alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                              label_smoothing: float = 0.0, axis: int = -1) -> FloatArray:
    """Binary focal cross-entropy (Keras): ``mean_axis([w·](1 - p_t)^γ · bce)``."""
    return _run_function("bfce", dict(y_true=y_true, y_pred=y_pred,
                                      apply_class_balancing=apply_class_balancing, alpha=alpha,
                                      gamma=gamma, from_logits=from_logits,
                                      label_smoothing=label_smoothing, axis=axis), (), None)[0]


def categorical_focal_crossentropy(y_true: ArrayLike, y_pred: ArrayLike, alpha: float = 0.25,
                                   gamma: float = 2.0, from_logits: bool = False,
                                   label_smoothing: float = 0.0, axis: int = -1) -> FloatArray:
    """Categorical focal cross-entropy (Keras): ``Σ_axis α·(1 - o)^γ·(-y·log o)`` with
    ``o = clip(p / Σp)`` (softmax first when ``from_logits``)."""
    return _run_function("cfce", dict(y_true=y_true, y_pred=y_pred, alpha=alpha, gamma=gamma,
                                      from_logits=from_logits, label_smoothing=label_smoothing,
                                      axis=axis), (), None)[0]


_KINDS = {"bce": _bce, "cce": _cce, "scce": _scce, "bfce": _bfce, "cfce": _cfce}
_FN_NAMES = {"bce": "binary_crossentropy", "cce": "categorical_crossentropy",
             "scce": "sparse_categorical_crossentropy", "bfce": "binary_focal_crossentropy",
             "cfce": "categorical_focal_crossentropy"}
_FUNCTIONS: Dict[str, Any] = {"bce": binary_crossentropy, "cce": categorical_crossentropy,
              "scce": sparse_categorical_crossentropy, "bfce": binary_focal_crossentropy,
              "cfce": categorical_focal_crossentropy}
for _k, _f in _FUNCTIONS.items():
    register(_f, _function_impl(_k), ("y_pred",))


# ---------------------------------------------------------------- reduction (Loss.__call__)
def _squeeze_or_expand(x1, x2):
    """keras.losses.loss.squeeze_or_expand_to_same_rank (expand_rank_1=True)."""
    r1, r2 = x1.ndim, x2.ndim
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1:
            x2 = np.expand_dims(x2, -1)
        else:
            x1 = np.squeeze(x1, -1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1:
            x1 = np.expand_dims(x1, -1)
        else:
            x2 = np.squeeze(x2, -1)
    return x1, x2


def _sum_to(a, shape):
    """Sum `a` over the axes it was broadcast along to reach its shape from `shape`."""
    lead = a.ndim - len(shape)
    if lead:
        a = a.sum(axis=tuple(range(lead)))
    axes = tuple(i for i, s in enumerate(shape) if s == 1 and a.shape[i] != 1)
    return a.sum(axis=axes, keepdims=True) if axes else a


class _Reducer:
    """keras.losses.loss.reduce_weighted_values for a per-sample loss of `shape`: the value
    (`apply`) and the per-sample cotangent of the result (`cotangent`)."""

    def __init__(self, shape, sample_weight, mask, reduction, cd):
        self.shape, self.cd, self.reduction = tuple(shape), cd, reduction
        sw = None if sample_weight is None else _as_float(sample_weight, cd, "sample_weight")
        if mask is not None:
            if reduction in ("mean", "sum_over_batch_size"):
                total, valid = cd.type(mask.size), cd.type(np.count_nonzero(mask))
                mw = total / valid if valid != 0 else cd.type(0)
                fm = np.where(mask, mw, cd.type(0)).astype(cd)
            else:
                fm = mask.astype(cd)
            if sw is not None:
                fm, sw = _squeeze_or_expand(fm, sw)
                sw = self._bmul(sw, fm)
            else:
                sw = fm
        template = np.zeros(self.shape, cd)
        if sw is not None:
            v1, self.w = _squeeze_or_expand(template, sw)
            self.vshape = v1.shape
            self.wshape = self._bmul(v1, self.w).shape
        else:
            self.w, self.vshape, self.wshape = None, self.shape, self.shape
        self.unreduced = reduction in (None, "none") or self.wshape in ((), (0,))
        if not self.unreduced and reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
            if reduction == "mean_with_sample_weight" and sw is not None:
                self.div = cd.type(np.sum(self.w, dtype=cd))
            else:
                self.div = cd.type(int(np.prod(self.wshape)))
        else:
            self.div = None

    @staticmethod
    def _bmul(a, b):
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"sample_weight: Incompatible shapes: {list(a.shape)} vs. {list(b.shape)} "
                             "(the per-sample losses and the sample weights do not broadcast)") from None
        return a * b

    def apply(self, values):
        cd = self.cd
        v = values.reshape(self.vshape)
        wv = v if self.w is None else self._bmul(v, self.w)
        if self.unreduced:
            return np.asarray(wv, dtype=cd)
        with np.errstate(all="ignore"):
            s = np.sum(wv, dtype=cd)
            if self.div is not None:
                s = s / self.div if self.div != 0 else cd.type(0)
        return cd.type(s)

    def cotangent(self, grad_output):
        cd = self.cd
        if self.unreduced:
            g = np.ones(self.wshape, cd) if grad_output is None else np.asarray(grad_output, dtype=cd)
            try:
                g = np.broadcast_to(g, self.wshape)
            except ValueError:
                raise ValueError(f"grad_output: shape {g.shape} does not match the output shape "
                                 f"{self.wshape}") from None
        else:
            g0 = cd.type(1) if grad_output is None else np.asarray(grad_output, dtype=cd)
            if np.size(g0) != 1:
                raise ValueError(f"grad_output: the output is a scalar, got an array of shape {np.shape(g0)}")
            g0 = cd.type(np.reshape(g0, ()))
            if self.div is not None:
                g0 = g0 / self.div if self.div != 0 else cd.type(0)
            g = np.broadcast_to(g0, self.wshape)
        with np.errstate(all="ignore"):
            dv = g if self.w is None else g * self.w
        return np.array(_sum_to(np.broadcast_to(dv, self.wshape), self.vshape).reshape(self.shape), dtype=cd)


# ---------------------------------------------------------------- the classes
def _to_snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


_NAME_UIDS: collections.defaultdict[str, int] = collections.defaultdict(int)


def _auto_name(prefix: str) -> str:
    prefix = _to_snake_case(prefix)
    name = f"{prefix}_{_NAME_UIDS[prefix]}" if prefix in _NAME_UIDS else prefix
    _NAME_UIDS[prefix] += 1
    return name


def _standardize_reduction(reduction: Any) -> KerasReduction:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"Invalid value for argument `reduction`. Expected one of {_REDUCTIONS}. "
                         f"Received: reduction={reduction}")
    return reduction


class Loss:
    """`keras.losses.Loss` for the mirrored cross-entropies: name, reduction, dtype."""
    _kind: Optional[str] = None
    _config_keys: Tuple[str, ...] = ()
    _fn_keys: Tuple[str, ...]

    def __init__(self, name: str | None = None, reduction: KerasReduction = "sum_over_batch_size",
                 dtype: DTypeLike | None = None) -> None:
        self.name: str = name or _auto_name(self.__class__.__name__)
        self.reduction: KerasReduction = _standardize_reduction(reduction)
        self._dtype: str = _standardize_dtype(dtype)

    @property
    def dtype(self) -> str:
        return self._dtype

    def __call__(self, y_true: ArrayLike, y_pred: ArrayLike, sample_weight: ArrayLike | None = None) -> LossValue:
        return _class_impl(dict(__self__=self, y_true=y_true, y_pred=y_pred,
                                sample_weight=sample_weight), (), None)[0]

    def _fn_kwargs(self) -> Dict[str, Any]:
        return {k: getattr(self, k) for k in self._fn_keys}

    def get_config(self) -> Dict[str, Any]:
        config = {"name": self.name, "reduction": self.reduction}
        config.update({k: getattr(self, k) for k in self._config_keys})
        return config

    @classmethod
    def from_config(cls: Type[_L], config: Dict[str, Any]) -> _L:
        return cls(**config)

    def __repr__(self) -> str:
        return f"<LossFunctionWrapper({_FUNCTIONS[self._kind]}, kwargs={self._fn_kwargs()})>"  # type: ignore[index]


def _class_impl(a, wrt, grad_output, grad_out=None):
    self = a["__self__"]
    rd = _np_dtype(self.dtype)
    cd = _compute(rd)
    yp_in = a["y_pred"]
    yp = _as_float(yp_in, rd).astype(cd)
    yt = _as_float(a["y_true"], rd, "y_true").astype(cd)
    yt, yp_al = _squeeze_or_expand(yt, yp)
    state = {}

    def cot(shape, mask):
        state["red"] = _Reducer(shape, a["sample_weight"], mask, self.reduction, cd)
        return state["red"].cotangent(grad_output) if wrt else None

    loss, _mask, g = _KINDS[self._kind](yt, yp_al, cd, **self._fn_kwargs(), cot=cot,
                                        caller=f"keras.losses.{type(self).__name__}")
    value = state["red"].apply(np.asarray(loss, dtype=cd))
    value = value.astype(rd) if isinstance(value, np.ndarray) else rd.type(value)
    if not wrt:
        return value, {}
    return value, {"y_pred": np.reshape(g, np.shape(yp)).astype(_grad_dtype(yp_in, rd))}


class BinaryCrossentropy(Loss):
    """`keras.losses.BinaryCrossentropy`: see :func:`binary_crossentropy`."""
    _kind = "bce"
    _fn_keys = ("from_logits", "label_smoothing", "axis")
    _config_keys = _fn_keys

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: KerasReduction = "sum_over_batch_size", name: str = "binary_crossentropy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits: bool = from_logits
        self.label_smoothing: float = label_smoothing
        self.axis: int = axis


class CategoricalCrossentropy(Loss):
    """`keras.losses.CategoricalCrossentropy`: see :func:`categorical_crossentropy`."""
    _kind = "cce"
    _fn_keys = ("from_logits", "label_smoothing", "axis")
    _config_keys = _fn_keys

    def __init__(self, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: KerasReduction = "sum_over_batch_size", name: str = "categorical_crossentropy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits: bool = from_logits
        self.label_smoothing: float = label_smoothing
        self.axis: int = axis


class SparseCategoricalCrossentropy(Loss):
    """`keras.losses.SparseCategoricalCrossentropy` (note: `reduction` comes before `axis`,
    and `axis` is not in the config, as in Keras)."""
    _kind = "scce"
    _fn_keys = ("from_logits", "ignore_class", "axis")
    _config_keys = ("from_logits", "ignore_class")

    def __init__(self, from_logits: bool = False, ignore_class: int | None = None,
                 reduction: KerasReduction = "sum_over_batch_size", axis: int = -1,
                 name: str = "sparse_categorical_crossentropy", dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits: bool = from_logits
        self.ignore_class: int | None = ignore_class
        self.axis: int = axis


class BinaryFocalCrossentropy(Loss):
    """`keras.losses.BinaryFocalCrossentropy`: see :func:`binary_focal_crossentropy`."""
    _kind = "bfce"
    _fn_keys = ("apply_class_balancing", "alpha", "gamma", "from_logits", "label_smoothing", "axis")
    _config_keys = ("from_logits", "label_smoothing", "axis", "apply_class_balancing", "alpha", "gamma")

    def __init__(self, apply_class_balancing: bool = False, alpha: float = 0.25, gamma: float = 2.0,
                 from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
                 reduction: KerasReduction = "sum_over_batch_size", name: str = "binary_focal_crossentropy",
                 dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits: bool = from_logits
        self.label_smoothing: float = label_smoothing
        self.axis: int = axis
        self.apply_class_balancing: bool = apply_class_balancing
        self.alpha: float = alpha
        self.gamma: float = gamma


class CategoricalFocalCrossentropy(Loss):
    """`keras.losses.CategoricalFocalCrossentropy`: see :func:`categorical_focal_crossentropy`."""
    _kind = "cfce"
    _fn_keys = ("alpha", "gamma", "from_logits", "label_smoothing", "axis")
    _config_keys = ("from_logits", "label_smoothing", "axis", "alpha", "gamma")

    def __init__(self, alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
                 label_smoothing: float = 0.0, axis: int = -1,
                 reduction: KerasReduction = "sum_over_batch_size",
                 name: str = "categorical_focal_crossentropy", dtype: DTypeLike | None = None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.from_logits: bool = from_logits
        self.label_smoothing: float = label_smoothing
        self.axis: int = axis
        self.alpha: float = alpha
        self.gamma: float = gamma


_CLASSES = (BinaryCrossentropy, CategoricalCrossentropy, SparseCategoricalCrossentropy,
            BinaryFocalCrossentropy, CategoricalFocalCrossentropy)
for _c in _CLASSES:
    register(_c, _class_impl, ("y_pred",))


# ---------------------------------------------------------------- get / serialize
ALL_OBJECTS_DICT: Dict[str, Any] = {c.__name__: c for c in _CLASSES}
ALL_OBJECTS_DICT.update({f.__name__: f for f in _FUNCTIONS.values()})
ALL_OBJECTS_DICT.update({"bce": binary_crossentropy, "BCE": binary_crossentropy})
# Keras resolves these too; stableloss mirrors the cross-entropy family only.
_UNMIRRORED = {"mse", "MSE", "mae", "MAE", "mape", "MAPE", "msle", "MSLE", "kld", "KLD", "Loss",
               "LossFunctionWrapper", "KLDivergence", "Poisson", "MeanSquaredError", "MeanAbsoluteError",
               "MeanAbsolutePercentageError", "MeanSquaredLogarithmicError", "CosineSimilarity", "LogCosh",
               "Huber", "Hinge", "SquaredHinge", "CategoricalHinge", "Dice", "Tversky", "Circle", "CTC",
               "kl_divergence", "poisson", "mean_squared_error", "mean_absolute_error",
               "mean_absolute_percentage_error", "mean_squared_logarithmic_error", "cosine_similarity",
               "log_cosh", "huber", "hinge", "squared_hinge", "categorical_hinge", "dice", "tversky",
               "circle", "ctc", "CategoricalGeneralizedCrossEntropy",
               "categorical_generalized_cross_entropy"}


def serialize(loss: Loss | Callable[..., Any]) -> Dict[str, Any]:
    """`keras.losses.serialize` for the mirrored losses."""
    if isinstance(loss, Loss):
        return {"module": "keras.losses", "class_name": type(loss).__name__, "config": loss.get_config(),
                "registered_name": None}
    if inspect.isfunction(loss) and loss in _FUNCTIONS.values():
        return {"module": "builtins", "class_name": "function", "config": loss.__name__,
                "registered_name": "function"}
    raise ValueError(f"Could not serialize loss: {loss!r} (stableloss mirrors the cross-entropy family)")


def _lookup(name: str, identifier: Any) -> Any:
    if name in ALL_OBJECTS_DICT:
        return ALL_OBJECTS_DICT[name]
    if name in _UNMIRRORED:
        raise ValueError(f"Could not interpret loss identifier: {identifier} (a Keras loss that "
                         "stableloss does not mirror; stableloss.keras covers the cross-entropy family)")
    return None


def deserialize(name: str | Dict[str, Any], custom_objects: Dict[str, Any] | None = None
                ) -> Loss | Callable[..., Any] | Type[Loss]:
    """`keras.losses.deserialize`: a config dict (or name) to a loss instance or function."""
    custom_objects = custom_objects or {}
    if isinstance(name, str):
        obj = custom_objects.get(name) or _lookup(name, name)
        if obj is None:
            raise ValueError(f"Could not interpret loss identifier: {name}")
        return obj
    if not isinstance(name, dict) or "class_name" not in name:
        raise ValueError(f"Could not interpret loss identifier: {name}")
    cls_name, config = name["class_name"], name.get("config", {})
    if cls_name == "function":
        return deserialize(config, custom_objects)
    cls: Any = custom_objects.get(cls_name) or _lookup(cls_name, name)
    if cls is None or not inspect.isclass(cls):
        raise ValueError(f"Could not interpret loss identifier: {name}")
    return cls.from_config(config)  # type: ignore[attr-defined]


def get(identifier: str | Dict[str, Any] | Loss | Callable[..., Any] | None) -> Loss | Callable[..., Any] | None:
    """`keras.losses.get`: None, a name ('categorical_crossentropy', 'CategoricalCrossentropy',
    'bce', ...), a config dict, a callable or a loss instance -> a function or loss instance
    (a class name gives an instance with the default arguments)."""
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj: Any = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = _lookup(identifier, identifier)
    else:
        obj = identifier
    if callable(obj):
        if inspect.isclass(obj):
            obj = obj()
        return obj
    raise ValueError(f"Could not interpret loss identifier: {identifier}")


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
