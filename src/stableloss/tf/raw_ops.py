"""Mirror of two ``tf.raw_ops``: SoftmaxCrossEntropyWithLogits and
SparseSoftmaxCrossEntropyWithLogits, returning ``(loss, backprop)`` namedtuples.

Keyword-only at call time, as TensorFlow (a positional call raises TypeError), though
``inspect.signature`` shows ``(features, labels, name=None)``. ``backprop`` is the
un-scaled logits gradient ``softmax(features) - labels``. Differences from TF: float16 /
bfloat16 are computed in float32 and rounded once (TF's raw ops compute natively);
confident rows get the exact tiny loss (TF: 0).
"""
from __future__ import annotations

import collections
import inspect
from typing import TYPE_CHECKING, Any, Callable, Dict, NamedTuple, Protocol, Tuple

import numpy as np

from . import _common as C
from . import nn as _nn
from ._common import invalid_argument

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from .._typing import FloatArray

    class _LossBackprop(NamedTuple):
        loss: FloatArray
        backprop: FloatArray

    class _RawOp(Protocol):
        """A keyword-only raw op: ``op(features=, labels=, name=None) -> (loss, backprop)``."""
        __name__: str
        __qualname__: str

        def __call__(self, *, features: ArrayLike, labels: ArrayLike, name: str | None = None) -> _LossBackprop: ...

__all__ = ["SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits"]

_Dense = collections.namedtuple("SoftmaxCrossEntropyWithLogits", ["loss", "backprop"])  # type: ignore[name-match]
_Sparse = collections.namedtuple("SparseSoftmaxCrossEntropyWithLogits", ["loss", "backprop"])  # type: ignore[name-match]
_SIG = inspect.Signature([inspect.Parameter("features", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                          inspect.Parameter("labels", inspect.Parameter.POSITIONAL_OR_KEYWORD),
                          inspect.Parameter("name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)])


def _keyword_only(op_name: str, impl: Callable[..., Tuple[Any, Dict[str, Any]]], doc: str) -> _RawOp:
    def f(*args: Any, **kwargs: Any) -> Any:
        if args:
            raise TypeError(f"{op_name} only takes keyword args (possible keys: ['features', 'labels', "
                            f"'name']). Please pass these args as kwargs instead.")
        a = _SIG.bind(**kwargs)
        a.apply_defaults()
        return impl(a.arguments, (), None)[0]
    f.__signature__ = _SIG  # type: ignore[attr-defined]
    f.__doc__ = doc
    return f  # type: ignore[return-value]


def _dense_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x = C.to_numpy(a["features"])
    y = C.to_numpy(a["labels"])
    # one dtype T for both: two tf.Tensors must agree; otherwise the other input is
    # converted to the dtype of the tf.Tensor (or of features, for two NumPy arrays)
    if C.is_tensor(a["features"]) and C.is_tensor(a["labels"]):
        C.check_float(x)
        C.cast_like(y, x.dtype, "SoftmaxCrossEntropyWithLogits", 1)
    elif C.is_tensor(a["labels"]):
        x = x.astype(y.dtype)
    else:
        y = y.astype(x.dtype)
    C.check_float(x)
    try:
        b = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        b = None
    if b is not None and len(b) != 2 or x.ndim > 2 or y.ndim > 2:
        raise invalid_argument("logits and labels must be either 2-dimensional, or broadcasted to be "
                               "2-dimensional")
    if b is None:
        raise invalid_argument(f"logits and labels must be broadcastable: logits_size={C.dims_str(x.shape)} "
                               f"labels_size={C.dims_str(y.shape)}")
    if wrt and (x.shape != b or ("labels" in wrt and y.shape != b)):
        raise ValueError("argnums: gradients of broadcast features/labels are not supported; pass both "
                         f"with the shape {C.shape_str(b)}")
    x2 = np.broadcast_to(x, b)
    y2 = np.broadcast_to(y, b)
    cot = None if grad_output is None else np.broadcast_to(np.asarray(grad_output, np.float64), b[:1])
    loss, g = _nn._ce_prob_core(x2, y2, ("logits",), None)   # backprop: the un-scaled gradient
    value = _Dense(loss, g["logits"])
    grads = {}
    if wrt:
        _, gg = _nn._ce_prob_core(x2, y2, tuple(("logits" if n == "features" else n) for n in wrt), cot)
        if "features" in wrt:
            grads["features"] = gg["logits"]
        if "labels" in wrt:
            grads["labels"] = gg["labels"]
    return value, grads


def _sparse_impl(a, wrt, grad_output, grad_out=None):
    C.no_grad_out(grad_out)
    x = C.to_numpy(a["features"])
    y = C.to_numpy(a["labels"])
    C.check_float(x)
    if y.dtype not in (np.int32, np.int64):
        raise invalid_argument(f"Value for attr 'Tlabels' of {C.tf_dtype_name(y.dtype)} is not in the list of "
                               f"allowed values: int32, int64")
    if x.ndim != 2:
        raise invalid_argument(f"logits must be 2-D, but got shape {C.dims_str(x.shape)}")
    if y.ndim != 1:
        raise invalid_argument(f"labels must be 1-D, but got shape {C.dims_str(y.shape)}")
    if x.shape[0] != y.shape[0]:
        raise invalid_argument(f"logits and labels must have the same first dimension, got logits shape "
                               f"{C.dims_str(x.shape)} and labels shape {C.dims_str(y.shape)}")
    if x.shape[1] == 0:
        raise invalid_argument(f"Must have at least one class, but got logits shape {C.dims_str(x.shape)}")
    _nn._check_sparse_labels(y, x.shape[1])
    loss, g = _nn._sparse_core(x, y, ("logits",), None)
    value = _Sparse(loss, g["logits"])
    grads = {}
    if wrt:
        grads["features"] = _nn._sparse_core(x, y, ("logits",), grad_output)[1]["logits"]
    return value, grads


SoftmaxCrossEntropyWithLogits: _RawOp = _keyword_only(
    "softmax_cross_entropy_with_logits", _dense_impl,
    """``tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=, labels=)`` -> ``(loss, backprop)``.

    features and labels of one float dtype (no casting), broadcasting to exactly 2-D;
    ``loss = sum_c labels_c (lse - features_c)``, ``backprop = softmax(features) - labels``.
    value_and_grad differentiates `loss` (features: argnums=0, labels: argnums=1).""")
SoftmaxCrossEntropyWithLogits.__name__ = SoftmaxCrossEntropyWithLogits.__qualname__ = \
    "SoftmaxCrossEntropyWithLogits"
SparseSoftmaxCrossEntropyWithLogits: _RawOp = _keyword_only(
    "sparse_softmax_cross_entropy_with_logits", _sparse_impl,
    """``tf.raw_ops.SparseSoftmaxCrossEntropyWithLogits(features=, labels=)`` -> ``(loss, backprop)``.

    features 2-D float, labels 1-D int32/int64 in ``[0, C)`` (else InvalidArgumentError);
    ``backprop = softmax(features) - onehot(labels)``. value_and_grad differentiates `loss`
    wrt features (argnums=0).""")
SparseSoftmaxCrossEntropyWithLogits.__name__ = SparseSoftmaxCrossEntropyWithLogits.__qualname__ = \
    "SparseSoftmaxCrossEntropyWithLogits"

C.register(SoftmaxCrossEntropyWithLogits, _dense_impl, ("features", "labels"))
C.register(SparseSoftmaxCrossEntropyWithLogits, _sparse_impl, ("features",))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
