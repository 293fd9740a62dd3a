"""``stableloss.torch.nn``: torch.nn's softmax and loss modules with torch's constructor
signatures. Calling an instance gives what torch's ``forward`` gives; ``backward(grad_output=1.0)``
returns the gradient w.r.t. the input of the last call (for NumPy training loops), and
instances work with ``stableloss.value_and_grad`` like the functions."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Dict, Optional, Sequence, Tuple, overload

import numpy as np

from ..._grad import register, value_and_grad
from .._common import legacy_reduction, np_dtype
from . import functional as F

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike, DTypeLike, NDArray

    from ..._typing import ArrayInput, FloatArray, Impl, LossValue

__all__ = ["Softmax", "LogSoftmax", "Sigmoid", "LogSigmoid", "CrossEntropyLoss", "NLLLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "LinearCrossEntropyLoss", "functional"]


class _Module:
    """What the stableloss modules share: the last call is remembered for backward()."""

    _fn: ClassVar[Callable[..., Any]] = None  # type: ignore[assignment]  # the functional this module calls
    _last: Optional[Tuple[Any, ...]] = None

    def _kwargs(self) -> Dict[str, Any]:
        raise NotImplementedError      # pragma: no cover - every subclass defines it

    def forward(self, *args: Any) -> Any:
        return type(self)._fn(*args, **self._kwargs())

    def __call__(self, *args: Any) -> Any:
        out = self.forward(*args)
        self._last = args
        return out

    def backward(self, grad_output: ArrayLike = 1.0) -> FloatArray | torch.Tensor:
        """Gradient of the last call's output w.r.t. its input, scaled by `grad_output`
        (a scalar for reduced losses; an array of the output's shape otherwise)."""
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward(): call the module on an input first")
        return value_and_grad(type(self)._fn)(*self._last, grad_output=grad_output, **self._kwargs())[1]

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


def _module_impl(a: Dict[str, Any], wrt: Tuple[str, ...], grad_output: Any,
                 grad_out: Optional[Dict[str, Any]] = None) -> Tuple[Any, Dict[str, Any]]:
    self = a.pop("__self__")
    args = dict(a)
    args.update(self._kwargs())
    return F.IMPLS[type(self)._fn](_bind_fn(type(self)._fn, args), wrt, grad_output, grad_out)


def _bind_fn(fn: Callable[..., Any], args: Dict[str, Any]) -> Dict[str, Any]:
    import inspect
    sig = inspect.signature(fn)
    out = {k: p.default for k, p in sig.parameters.items()}
    out.update({k: v for k, v in args.items() if k in out})
    return out


class _Activation(_Module):
    @overload
    def __call__(self, input: ArrayInput) -> FloatArray: ...
    @overload
    def __call__(self, input: torch.Tensor) -> torch.Tensor: ...
    def __call__(self, input: ArrayLike) -> FloatArray | torch.Tensor:
        return super().__call__(input)


class Softmax(_Activation):
    """torch.nn.Softmax(dim=None)."""
    _fn = staticmethod(F.softmax)

    def __init__(self, dim: int | None = None) -> None:
        self.dim: int | None = dim

    def _kwargs(self) -> Dict[str, Any]:
        return {"dim": self.dim, "_stacklevel": 5}

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """torch.nn.LogSoftmax(dim=None)."""
    _fn = staticmethod(F.log_softmax)


class Sigmoid(_Activation):
    """torch.nn.Sigmoid()."""
    _fn = staticmethod(F.sigmoid)

    def __init__(self) -> None:
        pass

    def _kwargs(self) -> Dict[str, Any]:
        return {}


class LogSigmoid(Sigmoid):
    """torch.nn.LogSigmoid()."""
    _fn = staticmethod(F.logsigmoid)


class _Loss(_Module):
    def __init__(self, size_average: bool | None = None, reduce: bool | None = None,
                 reduction: str = "mean") -> None:
        if size_average is not None or reduce is not None:
            reduction = legacy_reduction(size_average, reduce)
        self.reduction: str = reduction            # checked at call time, as torch

    @overload
    def __call__(self, input: ArrayInput, target: ArrayLike) -> LossValue: ...
    @overload
    def __call__(self, input: torch.Tensor, target: ArrayLike) -> torch.Tensor: ...
    def __call__(self, input: ArrayLike, target: ArrayLike) -> LossValue | torch.Tensor:
        return super().__call__(input, target)


class CrossEntropyLoss(_Loss):
    """torch.nn.CrossEntropyLoss."""
    _fn = staticmethod(F.cross_entropy)

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean", label_smoothing: float = 0.0) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight: ArrayLike | None = weight
        self.ignore_index: int = ignore_index
        self.label_smoothing: float = label_smoothing

    def _kwargs(self) -> Dict[str, Any]:
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """torch.nn.NLLLoss."""
    _fn = staticmethod(F.nll_loss)

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None, ignore_index: int = -100,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight: ArrayLike | None = weight
        self.ignore_index: int = ignore_index

    def _kwargs(self) -> Dict[str, Any]:
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(_Loss):
    """torch.nn.BCELoss."""
    _fn = staticmethod(F.binary_cross_entropy)

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean") -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight: ArrayLike | None = weight

    def _kwargs(self) -> Dict[str, Any]:
        return dict(weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """torch.nn.BCEWithLogitsLoss."""
    _fn = staticmethod(F.binary_cross_entropy_with_logits)

    def __init__(self, weight: ArrayLike | None = None, size_average: bool | None = None,
                 reduce: bool | None = None, reduction: str = "mean", pos_weight: ArrayLike | None = None) -> None:
        super().__init__(size_average, reduce, reduction)
        self.weight: ArrayLike | None = weight
        self.pos_weight: ArrayLike | None = pos_weight

    def _kwargs(self) -> Dict[str, Any]:
        return dict(weight=self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class KLDivLoss(_Loss):
    """torch.nn.KLDivLoss (the default 'mean' warns at every call, not at construction)."""
    _fn = staticmethod(F.kl_div)

    def __init__(self, size_average: bool | None = None, reduce: bool | None = None, reduction: str = "mean",
                 log_target: bool = False) -> None:
        super().__init__(size_average, reduce, reduction)
        self.log_target: bool = log_target

    def _kwargs(self) -> Dict[str, Any]:
        return dict(reduction=self.reduction, log_target=self.log_target)


class _Linear:
    """The projection a LinearCrossEntropyLoss owns, as torch.nn.Linear stores it: `weight`
    of shape (C * prod(out_features), in_features) and `bias` (or None), NumPy arrays
    initialised as torch's Linear (uniform in +-1/sqrt(in_features); NumPy's generator, so
    not torch's numbers). ``grad_weight`` / ``grad_bias`` hold the gradients of the last
    ``LinearCrossEntropyLoss.backward()``."""

    def __init__(self, in_features: int, out_features: int, bias: bool, dtype: DTypeLike,
                 seed: int | None = None) -> None:
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.in_features: int = in_features
        self.out_features: int = out_features
        self.weight: NDArray[Any] = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        self.bias: NDArray[Any] | None = rng.uniform(-bound, bound, out_features).astype(dtype) if bias else None
        self.grad_weight: FloatArray | None = None
        self.grad_bias: FloatArray | None = None

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")


class LinearCrossEntropyLoss(_Loss):
    """torch.nn.LinearCrossEntropyLoss (torch 2.13): owns ``self.linear`` (a :class:`_Linear`
    with NumPy ``weight``/``bias``; assign torch's values to reproduce a torch module) and
    calls :func:`functional.linear_cross_entropy` (fused, chunked). ``backward()`` returns
    the input's gradient and stores the weight's and bias's in ``self.linear.grad_weight`` /
    ``grad_bias`` -- one fused pass for the three."""
    _fn = staticmethod(F.linear_cross_entropy)

    def __init__(self, in_features: int, num_classes: int, *, out_features: Sequence[int] = (), bias: bool = False,
                 device: Any = None, dtype: DTypeLike | torch.dtype | None = None, reduction: str = "mean",
                 weight: ArrayLike | None = None, ignore_index: int | None = None, label_smoothing: float = 0.0,
                 options: Any = None) -> None:
        if weight is not None and tuple(np.shape(weight)) != (num_classes,):
            raise RuntimeError(f"expected weight shape to be {(num_classes,)}, got {tuple(np.shape(weight))}")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise RuntimeError(f"expected label_smoothing to be in range [0, 1], got {label_smoothing}")
        if device is not None and str(device) != "cpu":
            raise ValueError(f"device: stableloss computes on the CPU, got {device!r}")
        super().__init__(None, None, reduction)
        self.weight: ArrayLike | None = weight
        self.num_classes: int = num_classes
        self.out_features: Tuple[int, ...] = tuple(out_features)
        self.ignore_index: int | None = ignore_index
        self.label_smoothing: float = label_smoothing
        self.options: Any = options
        dt = np.dtype(np.float32) if dtype is None else np_dtype(dtype)
        self.linear: _Linear = _Linear(in_features, math.prod(self.out_features, start=num_classes), bias, dt)

    def _kwargs(self) -> Dict[str, Any]:
        lin = self.linear
        lw = lin.weight.reshape((self.num_classes, *self.out_features, lin.in_features))
        lb = None if lin.bias is None else lin.bias.reshape((self.num_classes, *self.out_features))
        return dict(linear_weight=lw, linear_bias=lb, weight=self.weight, reduction=self.reduction,
                    ignore_index=self.ignore_index, label_smoothing=self.label_smoothing, options=self.options)

    def forward(self, input: ArrayInput | torch.Tensor, target: ArrayLike  # type: ignore[override]
                ) -> LossValue | torch.Tensor:
        kw = self._kwargs()
        return F.linear_cross_entropy(input, kw.pop("linear_weight"), target, **kw)

    def backward(self, grad_output: ArrayLike = 1.0) -> FloatArray | torch.Tensor:
        """Gradient of the last call w.r.t. its input; the weight's and bias's gradients (same
        pass) go to ``self.linear.grad_weight`` / ``grad_bias`` (in the linear's storage shape)."""
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward(): call the module on an input first")
        kw = self._kwargs()
        a = dict(input=self._last[0], target=self._last[1], **kw)
        wrt = ("input", "linear_weight") + (("linear_bias",) if kw["linear_bias"] is not None else ())
        _, g = F.IMPLS[F.linear_cross_entropy](a, wrt, grad_output, None)
        lin = self.linear
        lin.grad_weight = g["linear_weight"].reshape(lin.weight.shape)
        if "linear_bias" in g:
            self.linear.grad_bias = g["linear_bias"].reshape(lin.bias.shape)  # type: ignore[union-attr]
        return g["input"]

    def extra_repr(self) -> str:
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}, options={self.options}")


for _cls in (Softmax, LogSoftmax, Sigmoid, LogSigmoid, CrossEntropyLoss, NLLLoss, BCELoss,
             BCEWithLogitsLoss, KLDivLoss, LinearCrossEntropyLoss):
    register(_cls, _module_impl, ("input",))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
