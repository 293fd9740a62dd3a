"""``stableloss.torch.nn.functional``: torch.nn.functional's softmax and loss functions,
same names, parameters, defaults, warnings, errors and results, computed by the fused
stableloss kernels.

Inputs: NumPy arrays, anything ``np.asarray`` takes, or CPU ``torch.Tensor``s (read
zero-copy). Results are NumPy arrays (NumPy scalars for reduced losses) for NumPy input
and tensors for tensor input. Gradients: ``stableloss.value_and_grad(f)(...)`` with
respect to ``input`` (argument 0). Differences from torch, all intended and documented
in ``docs/torch.md``: array-likes are accepted (torch demands tensors); any integer
dtype is accepted for class-index targets (torch: int64/uint8 only); a float32 input
with float64 probability targets is computed in float64 (torch: log_softmax in
float32); confident-correct rows get their true tiny loss and target gradient where
torch returns exactly 0.
"""
from __future__ import annotations

import math
import numbers
import warnings
from typing import TYPE_CHECKING, Any, Callable, Dict, Literal, overload

import numpy as np

from ... import _dispatch as D
from ... import _validation as V
from ..._grad import register
from .._common import (Args, check_dim, check_int, check_reduction, legacy_reduction, np_dtype,
                       relabel, require_float, resolve_reduction, size_str, torch_name)

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike, DTypeLike

    from ..._typing import ArrayInput, FloatArray, FloatScalar, Impl, LossValue

__all__ = ["softmax", "log_softmax", "cross_entropy", "linear_cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "sigmoid", "logsigmoid"]


def _grads(A, grads, mapping):
    return {ours: A.wrap(grads[core]) for core, ours in mapping.items() if core in grads}


def _core_grad_out(grad_out, mapping):
    if not grad_out:
        return None
    inv = {ours: core for core, ours in mapping.items()}
    return {inv[k]: v for k, v in grad_out.items() if k in inv}


# ------------------------------------------------------------------ softmax family
def _implicit_dim(name, ndim, stacklevel):
    warnings.warn(f"Implicit dimension choice for {name} has been deprecated. "
                  f"Change the call to include dim=X as an argument.", UserWarning, stacklevel=stacklevel)
    return 0 if ndim in (0, 1, 3) else 1


def _softmax_like(a, wrt, grad_output, grad_out, log):
    A = Args(a, ("input",))
    x = np.asarray(A["input"])
    in_dtype = x.dtype
    if a["dtype"] is not None:
        x = x.astype(np_dtype(a["dtype"]))
    name = "log_softmax" if log else "softmax"
    dim = a["dim"]
    if dim is None:
        dim = _implicit_dim(name, x.ndim, a["_stacklevel"] + 1)
    dim = check_dim(dim, x.ndim)
    if x.dtype.kind in "biu":
        last = "lastdim_" if dim == max(x.ndim, 1) - 1 else ""
        raise NotImplementedError(f'"{name}_{last}kernel_impl" not implemented for \'{torch_name(x.dtype)}\'')
    impl = D.log_softmax_impl if log else D.softmax_impl
    value, grads = impl(dict(x=x, axis=dim, out=None, n_threads=None), ("x",) if wrt else (),
                        grad_output, _core_grad_out(grad_out, {"x": "input"}))
    if "x" in grads and grads["x"].dtype != in_dtype and in_dtype.kind == "f":
        grads["x"] = grads["x"].astype(in_dtype)           # the gradient comes back in the input's dtype
    return A.wrap(value), _grads(A, grads, {"x": "input"})


def _softmax_impl(a, wrt, grad_output, grad_out=None):
    return _softmax_like(a, wrt, grad_output, grad_out, False)


def _log_softmax_impl(a, wrt, grad_output, grad_out=None):
    return _softmax_like(a, wrt, grad_output, grad_out, True)


@overload
def softmax(input: ArrayInput, dim: int | None = ..., _stacklevel: int = ...,
            dtype: DTypeLike | torch.dtype | None = ...) -> FloatArray: ...
@overload
def softmax(input: torch.Tensor, dim: int | None = ..., _stacklevel: int = ...,
            dtype: DTypeLike | torch.dtype | None = ...) -> torch.Tensor: ...
def softmax(input: ArrayLike, dim: int | None = None, _stacklevel: int = 3,
            dtype: DTypeLike | torch.dtype | None = None) -> FloatArray | torch.Tensor:
    """torch.nn.functional.softmax: ``exp(x - logsumexp(x, dim))`` along `dim`.

    ``dim=None`` warns (UserWarning) and picks 0 for 0-, 1- and 3-D inputs, else 1 --
    torch's implicit rule. `dtype` casts the input first; the gradient comes back in the
    input's dtype. Integer input without `dtype` raises NotImplementedError as torch.
    """
    return _softmax_impl(dict(input=input, dim=dim, _stacklevel=_stacklevel, dtype=dtype), (), None)[0]


@overload
def log_softmax(input: ArrayInput, dim: int | None = ..., _stacklevel: int = ...,
                dtype: DTypeLike | torch.dtype | None = ...) -> FloatArray: ...
@overload
def log_softmax(input: torch.Tensor, dim: int | None = ..., _stacklevel: int = ...,
                dtype: DTypeLike | torch.dtype | None = ...) -> torch.Tensor: ...
def log_softmax(input: ArrayLike, dim: int | None = None, _stacklevel: int = 3,
                dtype: DTypeLike | torch.dtype | None = None) -> FloatArray | torch.Tensor:
    """torch.nn.functional.log_softmax, computed as ``(x - m) - log1p(s')``: the winning
    class keeps its digits where torch's ``x - lse`` is only absolutely accurate."""
    return _log_softmax_impl(dict(input=input, dim=dim, _stacklevel=_stacklevel, dtype=dtype), (), None)[0]


# ------------------------------------------------------------------ index targets
def _index_target(x, t, fn):
    """torch's checks of a class-index target against the input, in torch's order
    (nll_loss_nd: the batch size first; then, by input rank, the target's rank or shape,
    with the dtype checked where torch's kernel checks it); returns (target in the core's
    layout, class axis)."""
    if x.ndim >= 2 and t.ndim >= 1 and t.shape[0] != x.shape[0]:   # torch checks the batch first
        raise ValueError(f"Expected input batch_size ({x.shape[0]}) to match target batch_size ({t.shape[0]}).")
    if x.ndim <= 2:
        if t.ndim > 1 or (x.ndim == 2 and t.ndim == 0):
            raise RuntimeError("0D or 1D target tensor expected, multi-target not supported")
        _check_index_dtype(t)
        if x.ndim == 1:
            if t.size != 1:
                raise ValueError(f"For 1D input, 1D target must have size 1, but got target size: {t.size}")
            return t.reshape(()), 0
        return t, 1
    expected = (x.shape[0],) + x.shape[2:]
    if x.ndim == 4:                                   # nll_loss2d
        if t.ndim != 3:
            raise RuntimeError(f"only batches of spatial targets supported (3D tensors) but got targets of "
                               f"dimension: {t.ndim}")
        _check_index_dtype(t)
        if t.shape != expected:
            raise RuntimeError(f"size mismatch (got input: {list(x.shape)} , target: {list(t.shape)}")
        return t, 1
    if t.shape != expected:                           # 3-D and > 4-D: the shape before the dtype
        raise RuntimeError(f"Expected target size {list(expected)}, got {list(t.shape)}")
    _check_index_dtype(t)
    return t, 1


def _check_index_dtype(t):
    if t.dtype.kind not in "iu":
        raise RuntimeError(f"expected target dtype to be Long or Byte, but got {torch_name(t.dtype)}")


def _class_weight(w, C, prefix=""):
    if w is None:
        return None
    w = np.asarray(w)
    if w.shape != (C,):
        raise RuntimeError(f"{prefix}weight tensor should be defined either for all {C} classes or no classes "
                           f"but got weight tensor of shape: {list(w.shape)}")
    return w


def _nan_rows_for_ignored(g, x, t, axis, ii):
    """torch's log_softmax backward multiplies the ignored rows' zero upstream by their
    softmax: a NaN, +inf or all -inf row there gives a NaN gradient row. Reproduced."""
    ign = t == ii
    if not ign.any():
        return
    xr = np.moveaxis(x, axis, -1)[ign]
    with np.errstate(invalid="ignore"):
        bad = np.isnan(xr).any(-1) | (xr == np.inf).any(-1) | ((xr == -np.inf).all(-1) if xr.shape[-1] else False)
    if np.any(bad):
        pos = tuple(i[bad] for i in np.nonzero(ign))
        np.moveaxis(g, axis, -1)[pos] = np.nan


def _cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "target", "weight"))
    red = resolve_reduction(a)
    eps = a["label_smoothing"]
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"cross_entropy_loss(): argument 'label_smoothing' (position 8) must be float, "
                        f"not {type(eps).__name__}")
    eps = float(eps)
    if eps > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {eps}")
    eps = max(eps, 0.0)                                   # torch: negative means no smoothing
    ii = check_int(a["ignore_index"], "ignore_index", "cross_entropy_loss", 5)
    x, t = np.asarray(A["input"]), np.asarray(A["target"])
    require_float(x, "log_softmax_lastdim_kernel_impl")
    mapping = {"logits": "input"}
    if t.shape == x.shape:                                # probability targets: the shape decides
        if t.dtype.kind != "f" and t.dtype.name != "bfloat16":
            raise RuntimeError(f"Expected floating point type for target with class probabilities, got "
                               f"{torch_name(t.dtype)}")
        if x.ndim == 0:
            raise IndexError("Dimension specified as 1 but tensor has no dimensions")
        if ii >= 0:
            raise RuntimeError("ignore_index is not supported for floating point target")
        axis = 0 if x.ndim == 1 else 1
        w = _class_weight(A["weight"], x.shape[axis], "cross_entropy: ")
        rd = np.result_type(x.dtype, t.dtype) if x.dtype.itemsize != 2 and t.dtype.itemsize != 2 else x.dtype
        if rd != x.dtype:
            x = x.astype(rd)                              # torch's result is the promoted dtype
        core = dict(logits=x, labels=t, axis=axis, weight=w, ignore_index=None, label_smoothing=eps,
                    reduction=red, out=None, n_threads=None)
        has_ii = False
    else:
        if x.ndim == 0:
            raise IndexError("Dimension specified as 1 but tensor has no dimensions")
        t, axis = _index_target(x, t, "cross_entropy")
        w = _class_weight(A["weight"], x.shape[axis])
        core = dict(logits=x, labels=t, axis=axis, weight=w, ignore_index=ii, label_smoothing=eps,
                    reduction=red, out=None, n_threads=None)
        has_ii = True
    try:
        value, grads = D.softmax_cross_entropy_impl(core, ("logits",) if wrt else (), grad_output,
                                                    _core_grad_out(grad_out, mapping))
    except V.LabelError as e:
        raise relabel(e) from None
    if has_ii and "logits" in grads and x.size:
        _nan_rows_for_ignored(grads["logits"], x, t, axis, ii)
    return A.wrap(value), _grads(A, grads, mapping)


@overload
def cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: None = ..., ignore_index: int = ..., reduce: None = ...,
                  reduction: Literal["mean", "sum"] = ..., label_smoothing: float = ...) -> FloatScalar: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: None = ..., ignore_index: int = ..., reduce: None = ..., *,
                  reduction: Literal["none"], label_smoothing: float = ...) -> FloatArray: ...
@overload
def cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
                  reduction: str = ..., label_smoothing: float = ...) -> LossValue: ...
@overload
def cross_entropy(input: torch.Tensor, target: ArrayLike, weight: ArrayLike | None = ...,
                  size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
                  reduction: str = ..., label_smoothing: float = ...) -> torch.Tensor: ...
def cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                  size_average: bool | None = None, ignore_index: int = -100, reduce: bool | None = None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> LossValue | torch.Tensor:
    """torch.nn.functional.cross_entropy, fused: class-index targets (shape of `input`
    without the class dim 1) or class probabilities (`input`'s shape), `weight`,
    `ignore_index`, `reduction`, `label_smoothing` with torch's definitions (see
    ``docs/torch.md``). Confident-correct rows return their true loss (e.g. 3.9e-22),
    where torch returns 0."""
    return _cross_entropy_impl(dict(input=input, target=target, weight=weight, size_average=size_average,
                                    ignore_index=ignore_index, reduce=reduce, reduction=reduction,
                                    label_smoothing=label_smoothing), (), None)[0]


# ------------------------------------------------------------------ linear_cross_entropy
_C_TYPE = {"float32": "float", "float64": "double", "float16": "c10::Half", "bfloat16": "c10::BFloat16"}
_LCE_MAP = {"hidden": "input", "weight": "linear_weight", "bias": "linear_bias"}


def _linear_cross_entropy_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "linear_weight", "target", "linear_bias", "weight"))
    x, Wl, t = np.asarray(A["input"]), np.asarray(A["linear_weight"]), np.asarray(A["target"])
    b = None if A["linear_bias"] is None else np.asarray(A["linear_bias"])
    if x.ndim < 1 or x.ndim > 2:
        raise RuntimeError(f"expected input with dimensionality 1 or 2, got {x.ndim}")
    if Wl.ndim < 2:
        raise RuntimeError(f"expected linear_weight with dimensionality at least 2, got {Wl.ndim}")
    d = x.shape[-1]
    if d != Wl.shape[-1]:
        raise RuntimeError("expected equal input and linear_weight last dimensions (in_features), "
                           f"got {x.shape[-1]} and {Wl.shape[-1]}, respectively")
    C, outf = Wl.shape[0], tuple(Wl.shape[1:-1])
    if b is not None and b.shape != (C,) + outf:
        raise RuntimeError(f"expected linear_bias shape {(C, *outf)}, got {tuple(b.shape)}")
    if outf and x.ndim == 1:
        raise RuntimeError(f"K-dimensional loss defined by linear_weight shape {tuple(Wl.shape)} requires "
                           f"batched input, (N, {d}), got unbatched input with shape {tuple(x.shape)}")
    logits_shape = x.shape[:-1] + (C,) + outf
    prob = t.shape == logits_shape
    ii = a["ignore_index"]
    if prob and ii is not None:
        raise RuntimeError("ignore_index cannot be specified when target contains probabilities")
    ii = -100 if ii is None else ii
    red, eps, options = a["reduction"], a["label_smoothing"], a["options"]
    if options is not None and (outf or red not in {"mean", "sum", "none"} or eps != 0.0 or t.dtype != np.int64):
        warnings.warn(
            "linear_cross_entropy: ``options`` ignored; chunked path needs reduction in {'mean','sum','none'}, "
            "label_smoothing == 0, target.dtype == int64, out_features == (). Got "
            f"reduction={red!r}, label_smoothing={eps}, target.dtype={'torch.' + str(t.dtype)}, "
            f"out_features={outf}, tracing=False, linear_bias.shape={None if b is None else tuple(b.shape)}.",
            UserWarning, stacklevel=3)
    require_float(x, "addmm_impl_cpu_")
    if x.dtype != Wl.dtype:
        raise RuntimeError(f"expected m1 and m2 to have the same dtype, but got: "
                           f"{_C_TYPE.get(x.dtype.name, x.dtype.name)} != {_C_TYPE.get(Wl.dtype.name, Wl.dtype.name)}")
    if b is not None and b.dtype != x.dtype:
        b = b.astype(x.dtype)
    if outf or prob:
        return _linear_ce_unfused(A, a, x, Wl, b, t, logits_shape, ii, wrt, grad_output, grad_out)
    # the fused, chunked core path: cross_entropy's own checks first
    check_reduction(red)
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"cross_entropy_loss(): argument 'label_smoothing' (position 8) must be float, "
                        f"not {type(eps).__name__}")
    if float(eps) > 1.0:
        raise RuntimeError(f"label_smoothing must be between 0.0 and 1.0. Got: {float(eps)}")
    ii = check_int(ii, "ignore_index", "cross_entropy_loss", 5)
    # cross_entropy's target checks, in torch's order (the batch size before the dtype);
    # the logits are only a shape here (a zero-size broadcast view: nothing is formed)
    t, _ = _index_target(np.broadcast_to(np.empty((), np.bool_), logits_shape), t, "linear_cross_entropy")
    cs = getattr(options, "batch_chunk_size", None) if options is not None else None
    core = dict(hidden=x, weight=Wl, labels=t, bias=b, class_weight=_class_weight(A["weight"], C),
                ignore_index=ii, label_smoothing=max(float(eps), 0.0), reduction=red, z_loss=0.0,
                return_lse=False, chunk_size=cs, out=None, n_threads=None)
    inv = {ours: core_ for core_, ours in _LCE_MAP.items()}
    cwrt = tuple(inv[n] for n in wrt if n in inv)
    try:
        value, grads = D.linear_cross_entropy_impl(core, cwrt, grad_output, _core_grad_out(grad_out, _LCE_MAP))
    except V.LabelError as e:
        raise relabel(e) from None
    return A.wrap(value), _grads(A, grads, _LCE_MAP)


def _linear_ce_unfused(A, a, x, Wl, b, t, logits_shape, ii, wrt, grad_output, grad_out):
    """K-dimensional weights or probability targets: torch's reference composition
    (linear, then cross_entropy) -- the logits are formed, as torch forms them."""
    d = x.shape[-1]
    W2 = Wl.reshape(-1, d)
    x2 = x.reshape(-1, d)
    flat = x2 @ W2.T + (0 if b is None else b.reshape(-1))
    logits = flat.reshape(logits_shape)
    ce = dict(input=logits, target=A["target"], weight=A["weight"], size_average=None, ignore_index=ii,
              reduce=None, reduction=a["reduction"], label_smoothing=a["label_smoothing"])
    value, g = _cross_entropy_impl(ce, ("input",) if wrt else (), grad_output)
    grads = {}
    if wrt:
        gl = np.asarray(g["input"]).reshape(flat.shape)
        if "input" in wrt:
            grads["input"] = (gl @ W2).reshape(x.shape)
        if "linear_weight" in wrt:
            grads["linear_weight"] = (gl.T @ x2).reshape(Wl.shape)
        if "linear_bias" in wrt and b is not None:
            grads["linear_bias"] = gl.sum(0).reshape(b.shape)
        for k, v in list(grads.items()):
            if grad_out and k in grad_out:
                np.copyto(grad_out[k], v, casting="unsafe")
                v = grad_out[k]
            grads[k] = A.wrap(v)
    return A.wrap(value), grads


@overload
def linear_cross_entropy(input: ArrayInput, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: Literal["mean", "sum"] = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., options: Any = ...) -> FloatScalar: ...
@overload
def linear_cross_entropy(input: ArrayInput, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: Literal["none"], ignore_index: int | None = ...,
                         label_smoothing: float = ..., options: Any = ...) -> FloatArray: ...
@overload
def linear_cross_entropy(input: ArrayInput, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: str = ..., ignore_index: int | None = ..., label_smoothing: float = ...,
                         options: Any = ...) -> LossValue: ...
@overload
def linear_cross_entropy(input: torch.Tensor, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = ..., weight: ArrayLike | None = ...,
                         reduction: str = ..., ignore_index: int | None = ..., label_smoothing: float = ...,
                         options: Any = ...) -> torch.Tensor: ...
def linear_cross_entropy(input: ArrayLike, linear_weight: ArrayLike, target: ArrayLike, *,
                         linear_bias: ArrayLike | None = None, weight: ArrayLike | None = None,
                         reduction: str = "mean", ignore_index: int | None = None,
                         label_smoothing: float = 0.0, options: Any = None) -> LossValue | torch.Tensor:
    """torch.nn.functional.linear_cross_entropy (torch 2.13): ``cross_entropy(linear(input,
    linear_weight, linear_bias), target)`` computed by the fused, chunked core
    (:func:`stableloss.linear_cross_entropy`): no (N, C) logits are held, with or without
    `options` (an explicit ``options.batch_chunk_size`` is the chunk size; torch's other
    option fields do not apply). ``ignore_index=None`` means -100 for class indices, as
    torch. K-dimensional weights ``(C, d_1, ..., d_K, in_features)`` and probability
    targets take torch's reference composition (the logits are formed). `options` with a
    configuration torch's chunked path does not support warns as torch does."""
    return _linear_cross_entropy_impl(dict(input=input, linear_weight=linear_weight, target=target,
                                           linear_bias=linear_bias, weight=weight, reduction=reduction,
                                           ignore_index=ignore_index, label_smoothing=label_smoothing,
                                           options=options), (), None)[0]


def _nll_loss_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "target", "weight"))
    red = resolve_reduction(a)
    ii = check_int(a["ignore_index"], "ignore_index", "nll_loss_nd", 5)
    x, t = np.asarray(A["input"]), np.asarray(A["target"])
    if x.ndim == 0:
        raise ValueError(f"Expected 1 or more dimensions (got {x.ndim})")
    require_float(x, "nll_loss_out_frame")
    t, axis = _index_target(x, t, "nll_loss")    # a target of the input's shape included
    w = _class_weight(A["weight"], x.shape[axis])
    mapping = {"log_probs": "input"}
    try:
        value, grads = D.nll_loss_impl(dict(log_probs=x, labels=t, axis=axis, weight=w, ignore_index=ii,
                                            reduction=red, out=None, n_threads=None),
                                       ("log_probs",) if wrt else (), grad_output, _core_grad_out(grad_out, mapping))
    except V.LabelError as e:
        raise relabel(e) from None
    return A.wrap(value), _grads(A, grads, mapping)


@overload
def nll_loss(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ..., size_average: None = ...,
             ignore_index: int = ..., reduce: None = ...,
             reduction: Literal["mean", "sum"] = ...) -> FloatScalar: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ..., size_average: None = ...,
             ignore_index: int = ..., reduce: None = ..., *, reduction: Literal["none"]) -> FloatArray: ...
@overload
def nll_loss(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
             reduction: str = ...) -> LossValue: ...
@overload
def nll_loss(input: torch.Tensor, target: ArrayLike, weight: ArrayLike | None = ...,
             size_average: bool | None = ..., ignore_index: int = ..., reduce: bool | None = ...,
             reduction: str = ...) -> torch.Tensor: ...
def nll_loss(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
             size_average: bool | None = None, ignore_index: int = -100, reduce: bool | None = None,
             reduction: str = "mean") -> LossValue | torch.Tensor:
    """torch.nn.functional.nll_loss: ``-w[y] * input[y]`` per position, input taken as given."""
    return _nll_loss_impl(dict(input=input, target=target, weight=weight, size_average=size_average,
                               ignore_index=ignore_index, reduce=reduce, reduction=reduction), (), None)[0]


# ------------------------------------------------------------------ binary losses
def _elem_weight(w, shape, name):
    if w is None:
        return None
    w = np.asarray(w)
    try:
        b = np.broadcast_shapes(w.shape, tuple(shape))
    except ValueError:
        raise RuntimeError(f"{name}: the size of tensor a {tuple(w.shape)} must match the size of tensor b "
                           f"{tuple(shape)} at every non-singleton dimension") from None
    if b != tuple(shape):
        raise RuntimeError(f"output with shape {list(shape)} doesn't match the broadcast shape {list(b)}")
    return w


def _bce_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "target", "weight"))
    red = resolve_reduction(a)
    x, t = np.asarray(A["input"]), np.asarray(A["target"])
    if t.shape != x.shape:
        raise ValueError(f"Using a target size ({size_str(t.shape)}) that is different to the input size "
                         f"({size_str(x.shape)}) is deprecated. Please ensure they have the same size.")
    require_float(x, "binary_cross_entropy")
    for arr, what in ((x, "input"), (t, "target")):
        with np.errstate(invalid="ignore"):
            if arr.size and not (np.all(arr >= 0) and np.all(arr <= 1)):
                raise RuntimeError(f"all elements of {what} should be between 0 and 1")
    w = _elem_weight(A["weight"], x.shape, "weight")
    mapping = {"probs": "input"}
    value, grads = D.binary_cross_entropy_impl(
        dict(probs=x, labels=t, weight=w, reduction=red, out=None, policy="clamp", epsilon=None, n_threads=None),
        ("probs",) if wrt else (), grad_output, _core_grad_out(grad_out, mapping))
    return A.wrap(value), _grads(A, grads, mapping)


@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: None = ..., reduce: None = ...,
                         reduction: Literal["mean", "sum"] = ...) -> FloatScalar: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: None = ..., reduce: None = ..., *,
                         reduction: Literal["none"]) -> FloatArray: ...
@overload
def binary_cross_entropy(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: bool | None = ..., reduce: bool | None = ...,
                         reduction: str = ...) -> LossValue: ...
@overload
def binary_cross_entropy(input: torch.Tensor, target: ArrayLike, weight: ArrayLike | None = ...,
                         size_average: bool | None = ..., reduce: bool | None = ...,
                         reduction: str = ...) -> torch.Tensor: ...
def binary_cross_entropy(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                         size_average: bool | None = None, reduce: bool | None = None,
                         reduction: str = "mean") -> LossValue | torch.Tensor:
    """torch.nn.functional.binary_cross_entropy: each log clamped at -100, gradient
    ``w (x - t) / max(x (1 - x), 1e-12f)`` (torch's float32 floor, also in float64)."""
    return _bce_impl(dict(input=input, target=target, weight=weight, size_average=size_average,
                          reduce=reduce, reduction=reduction), (), None)[0]


def _bce_logits_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "target", "weight", "pos_weight"))
    red = resolve_reduction(a)
    x, t = np.asarray(A["input"]), np.asarray(A["target"])
    if t.shape != x.shape:
        raise ValueError(f"Target size ({size_str(t.shape)}) must be the same as input size ({size_str(x.shape)})")
    require_float(x, "log_sigmoid_cpu")
    if t.dtype.kind in "biu":
        raise RuntimeError(f"result type Float can't be cast to the desired output type {torch_name(t.dtype)}")
    rd = np.result_type(x.dtype, t.dtype) if x.dtype.itemsize != 2 and t.dtype.itemsize != 2 else x.dtype
    if rd != x.dtype:
        x = x.astype(rd)
    w = _elem_weight(A["weight"], x.shape, "weight")
    pw = _elem_weight(A["pos_weight"], x.shape, "pos_weight")
    mapping = {"logits": "input"}
    core = dict(logits=x, labels=t, weight=w, pos_weight=pw, reduction=red, out=None, n_threads=None)
    if V.all_finite(x):
        value, grads = D.sigmoid_cross_entropy_impl(core, ("logits",) if wrt else (), grad_output,
                                                    _core_grad_out(grad_out, mapping))
        return A.wrap(value), _grads(A, grads, mapping)
    # torch evaluates (1 - t) x - lw logsigmoid(x) literally: at x = +-inf that is NaN
    # (0 * inf, or -inf + inf) or +inf, where the exact core returns the limit. Reproduced.
    loss, grads = D.sigmoid_cross_entropy_impl(dict(core, reduction="none"), ("logits",) if wrt else (),
                                               1.0 if red != "none" else grad_output, None)
    loss = np.array(loss, dtype=np.float64 if loss.dtype.itemsize == 2 else loss.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        inf = np.isinf(x)
        xi, ti = x[inf].astype(loss.dtype), np.asarray(t, loss.dtype)[inf]
        pwi = 1.0 if pw is None else np.broadcast_to(np.asarray(pw, loss.dtype), x.shape)[inf]
        wi = 1.0 if w is None else np.broadcast_to(np.asarray(w, loss.dtype), x.shape)[inf]
        ls = np.where(xi > 0, 0.0, -np.inf)                # logsigmoid(+-inf)
        loss[inf] = wi * ((1 - ti) * xi - (1 + (pwi - 1) * ti) * ls)
    rdt = np.asarray(A["input"]).dtype if rd == x.dtype and np.asarray(A["input"]).dtype.itemsize == 2 else rd
    if red == "none":
        value = loss.astype(rdt)
    else:
        total = float(np.sum(loss, dtype=np.float64))
        value = np.dtype(rdt).type(total if red == "sum" else (total / loss.size))
    if "logits" in grads and red != "none":
        from ..._dispatch import _scalar_grad
        g0 = _scalar_grad(grad_output)
        scale = g0 if red == "sum" else g0 / x.size
        if scale != 1.0:
            grads["logits"] = (grads["logits"] * np.asarray(scale, grads["logits"].dtype)).astype(grads["logits"].dtype)
    if grad_out and "input" in grad_out and "logits" in grads:
        np.copyto(grad_out["input"], grads["logits"], casting="unsafe")
        grads["logits"] = grad_out["input"]
    return A.wrap(value), _grads(A, grads, mapping)


@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: None = ..., reduce: None = ...,
                                     reduction: Literal["mean", "sum"] = ...,
                                     pos_weight: ArrayLike | None = ...) -> FloatScalar: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: None = ..., reduce: None = ..., *,
                                     reduction: Literal["none"],
                                     pos_weight: ArrayLike | None = ...) -> FloatArray: ...
@overload
def binary_cross_entropy_with_logits(input: ArrayInput, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: bool | None = ..., reduce: bool | None = ...,
                                     reduction: str = ...,
                                     pos_weight: ArrayLike | None = ...) -> LossValue: ...
@overload
def binary_cross_entropy_with_logits(input: torch.Tensor, target: ArrayLike, weight: ArrayLike | None = ...,
                                     size_average: bool | None = ..., reduce: bool | None = ...,
                                     reduction: str = ...,
                                     pos_weight: ArrayLike | None = ...) -> torch.Tensor: ...
def binary_cross_entropy_with_logits(input: ArrayLike, target: ArrayLike, weight: ArrayLike | None = None,
                                     size_average: bool | None = None, reduce: bool | None = None,
                                     reduction: str = "mean",
                                     pos_weight: ArrayLike | None = None) -> LossValue | torch.Tensor:
    """torch.nn.functional.binary_cross_entropy_with_logits, exact in both tails (torch's
    loss cancels for t = 0, x << 0 and its gradient for t = 1, x >> 0). `weight` and
    `pos_weight` broadcast right-aligned to the input, as torch."""
    return _bce_logits_impl(dict(input=input, target=target, weight=weight, size_average=size_average,
                                 reduce=reduce, reduction=reduction, pos_weight=pos_weight), (), None)[0]


# ------------------------------------------------------------------ kl_div
_KL_MEAN_WARNING = ("reduction: 'mean' divides the total loss by both the batch size and the support size."
                    "'batchmean' divides only by the batch size, and aligns with the KL div math definition."
                    "'mean' will be changed to behave the same as 'batchmean' in the next major release.")


def _kl_div_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input", "target"))
    x, t = np.asarray(A["input"]), np.asarray(A["target"])
    if x.dtype.kind in "biu" or t.dtype.kind in "biu":
        raise RuntimeError("kl_div: Integral inputs not supported.")
    try:
        np.broadcast_shapes(x.shape, t.shape)
    except ValueError:       # torch's broadcasting error (the core's would be a ValueError)
        for d in range(1, max(x.ndim, t.ndim) + 1):
            a_, b_ = (t.shape[-d] if d <= t.ndim else 1), (x.shape[-d] if d <= x.ndim else 1)
            if a_ != b_ and 1 not in (a_, b_):
                raise RuntimeError(f"The size of tensor a ({a_}) must match the size of tensor b ({b_}) at "
                                   f"non-singleton dimension {max(x.ndim, t.ndim) - d}") from None
        raise
    if a["size_average"] is not None or a["reduce"] is not None:
        red = legacy_reduction(a["size_average"], a["reduce"])
    else:
        if a["reduction"] == "mean":
            warnings.warn(_KL_MEAN_WARNING, UserWarning, stacklevel=3)
        red = check_reduction(a["reduction"], ("none", "mean", "sum", "batchmean"))
    if x.dtype.itemsize != 2 and t.dtype.itemsize != 2:
        rd = np.result_type(x.dtype, t.dtype)
        if rd != x.dtype:
            x = x.astype(rd)
    batchmean = red == "batchmean"
    n0 = x.shape[0] if x.ndim else 1
    go = grad_output
    if batchmean and wrt:
        from ..._dispatch import _scalar_grad
        go = _scalar_grad(grad_output) / n0 if n0 else math.nan
    mapping = {"log_probs": "input"}
    value, grads = D.kl_div_impl(dict(log_probs=x, target=t, log_target=bool(a["log_target"]),
                                      reduction="sum" if batchmean else red, out=None, n_threads=None),
                                 ("log_probs",) if wrt else (), go, _core_grad_out(grad_out, mapping))
    if batchmean and x.ndim:
        with np.errstate(invalid="ignore", divide="ignore"):
            value = value.dtype.type(np.float64(value) / n0) if n0 else value.dtype.type(math.nan)
    return A.wrap(value), _grads(A, grads, mapping)


@overload
def kl_div(input: ArrayInput, target: ArrayLike, size_average: None = ..., reduce: None = ...,
           reduction: Literal["mean", "sum", "batchmean"] = ..., log_target: bool = ...) -> FloatScalar: ...
@overload
def kl_div(input: ArrayInput, target: ArrayLike, size_average: None = ..., reduce: None = ..., *,
           reduction: Literal["none"], log_target: bool = ...) -> FloatArray: ...
@overload
def kl_div(input: ArrayInput, target: ArrayLike, size_average: bool | None = ..., reduce: bool | None = ...,
           reduction: str = ..., log_target: bool = ...) -> LossValue: ...
@overload
def kl_div(input: torch.Tensor, target: ArrayLike, size_average: bool | None = ...,
           reduce: bool | None = ..., reduction: str = ..., log_target: bool = ...) -> torch.Tensor: ...
def kl_div(input: ArrayLike, target: ArrayLike, size_average: bool | None = None, reduce: bool | None = None,
           reduction: str = "mean", log_target: bool = False) -> LossValue | torch.Tensor:
    """torch.nn.functional.kl_div: pointwise ``t (log t - input)`` (``exp(t) (t - input)``
    with `log_target`), reductions incl. ``'batchmean'`` (sum / input.shape[0]); ``'mean'``
    warns as torch does."""
    return _kl_div_impl(dict(input=input, target=target, size_average=size_average, reduce=reduce,
                             reduction=reduction, log_target=log_target), (), None)[0]


# ------------------------------------------------------------------ sigmoid pair
def _sigmoid_like(a, wrt, grad_output, grad_out, log):
    A = Args(a, ("input",))
    x = np.asarray(A["input"])
    if x.dtype.kind in "biu":
        if log:
            raise NotImplementedError(f'"log_sigmoid_cpu" not implemented for \'{torch_name(x.dtype)}\'')
        x = x.astype(np.float32)                          # torch.sigmoid promotes integers to float32
    impl = D.log_sigmoid_impl if log else D.sigmoid_impl
    value, grads = impl(dict(x=x, out=None, n_threads=None), ("x",) if wrt else (), grad_output,
                        _core_grad_out(grad_out, {"x": "input"}))
    return A.wrap(value), _grads(A, grads, {"x": "input"})


def _sigmoid_impl(a, wrt, grad_output, grad_out=None):
    return _sigmoid_like(a, wrt, grad_output, grad_out, False)


def _logsigmoid_impl(a, wrt, grad_output, grad_out=None):
    return _sigmoid_like(a, wrt, grad_output, grad_out, True)


@overload
def sigmoid(input: ArrayInput) -> FloatArray: ...
@overload
def sigmoid(input: torch.Tensor) -> torch.Tensor: ...
def sigmoid(input: ArrayLike) -> FloatArray | torch.Tensor:
    """torch.nn.functional.sigmoid, exact in both tails."""
    return _sigmoid_impl(dict(input=input), (), None)[0]


@overload
def logsigmoid(input: ArrayInput) -> FloatArray: ...
@overload
def logsigmoid(input: torch.Tensor) -> torch.Tensor: ...
def logsigmoid(input: ArrayLike) -> FloatArray | torch.Tensor:
    """torch.nn.functional.logsigmoid: ``-softplus(-x)``, never 0 or -inf where the true
    value is finite."""
    return _logsigmoid_impl(dict(input=input), (), None)[0]


IMPLS: Dict[Callable[..., Any], Impl] = {
    softmax: _softmax_impl, log_softmax: _log_softmax_impl, cross_entropy: _cross_entropy_impl,
    nll_loss: _nll_loss_impl, binary_cross_entropy: _bce_impl,
    binary_cross_entropy_with_logits: _bce_logits_impl, kl_div: _kl_div_impl,
    sigmoid: _sigmoid_impl, logsigmoid: _logsigmoid_impl,
}
for _f, _impl in IMPLS.items():
    register(_f, _impl, ("input",))
# linear_bias is keyword-only (no argnum): its gradient comes from stableloss.torch.autograd,
# LinearCrossEntropyLoss.backward() or the core function (argnums=3)
IMPLS[linear_cross_entropy] = _linear_cross_entropy_impl
register(linear_cross_entropy, _linear_cross_entropy_impl, ("input", "linear_weight"))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
