"""``stableloss.torch.nn``: torch.nn's softmax and loss modules with torch's constructor
signatures. Calling an instance gives what torch's ``forward`` gives; ``backward(grad_output=1.0)``
returns the gradient w.r.t. the input of the last call (for NumPy training loops), and
instances work with ``stableloss.value_and_grad`` like the functions."""
from __future__ import annotations

import math

import numpy as np

from ..._grad import register, value_and_grad
from .._common import legacy_reduction, np_dtype
from . import functional as F

__all__ = ["Softmax", "LogSoftmax", "Sigmoid", "LogSigmoid", "CrossEntropyLoss", "NLLLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "LinearCrossEntropyLoss", "functional"]


class _Module:
    """What the stableloss modules share: the last call is remembered for backward()."""

    _fn = None          # the functional this module calls
    _last = None

    def _kwargs(self):
        raise NotImplementedError      # pragma: no cover - every subclass defines it

    def forward(self, *args):
        return type(self)._fn(*args, **self._kwargs())

    def __call__(self, *args):
        out = self.forward(*args)
        self._last = args
        return out

    def backward(self, grad_output=1.0):
        """Gradient of the last call's output w.r.t. its input, scaled by `grad_output`
        (a scalar for reduced losses; an array of the output's shape otherwise)."""
        if self._last is None:
            raise RuntimeError(f"{type(self).__name__}.backward(): call the module on an input first")
        return value_and_grad(type(self)._fn)(*self._last, grad_output=grad_output, **self._kwargs())[1]

    def extra_repr(self):
        return ""

    def __repr__(self):
        return f"{type(self).__name__}({self.extra_repr()})"


def _module_impl(a, wrt, grad_output, grad_out=None):
    self = a.pop("__self__")
    args = dict(a)
    args.update(self._kwargs())
    return F.IMPLS[type(self)._fn](_bind_fn(type(self)._fn, args), wrt, grad_output, grad_out)


def _bind_fn(fn, args):
    import inspect
    sig = inspect.signature(fn)
    out = {k: p.default for k, p in sig.parameters.items()}
    out.update({k: v for k, v in args.items() if k in out})
    return out


class _Activation(_Module):
    def __call__(self, input):
        return super().__call__(input)


class Softmax(_Activation):
    """torch.nn.Softmax(dim=None)."""
    _fn = staticmethod(F.softmax)

    def __init__(self, dim=None):
        self.dim = dim

    def _kwargs(self):
        return {"dim": self.dim, "_stacklevel": 5}

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """torch.nn.LogSoftmax(dim=None)."""
    _fn = staticmethod(F.log_softmax)


class Sigmoid(_Activation):
    """torch.nn.Sigmoid()."""
    _fn = staticmethod(F.sigmoid)

    def __init__(self):
        pass

    def _kwargs(self):
        return {}


class LogSigmoid(Sigmoid):
    """torch.nn.LogSigmoid()."""
    _fn = staticmethod(F.logsigmoid)


class _Loss(_Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        if size_average is not None or reduce is not None:
            reduction = legacy_reduction(size_average, reduce)
        self.reduction = reduction            # checked at call time, as torch

    def __call__(self, input, target):
        return super().__call__(input, target)


class CrossEntropyLoss(_Loss):
    """torch.nn.CrossEntropyLoss."""
    _fn = staticmethod(F.cross_entropy)

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean",
                 label_smoothing=0.0):
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def _kwargs(self):
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction,
                    label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    """torch.nn.NLLLoss."""
    _fn = staticmethod(F.nll_loss)

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.ignore_index = ignore_index

    def _kwargs(self):
        return dict(weight=self.weight, ignore_index=self.ignore_index, reduction=self.reduction)


class BCELoss(_Loss):
    """torch.nn.BCELoss."""
    _fn = staticmethod(F.binary_cross_entropy)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.weight = weight

    def _kwargs(self):
        return dict(weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """torch.nn.BCEWithLogitsLoss."""
    _fn = staticmethod(F.binary_cross_entropy_with_logits)

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.weight = weight
        self.pos_weight = pos_weight

    def _kwargs(self):
        return dict(weight=self.weight, pos_weight=self.pos_weight, reduction=self.reduction)


class KLDivLoss(_Loss):
    """torch.nn.KLDivLoss (the default 'mean' warns at every call, not at construction)."""
    _fn = staticmethod(F.kl_div)

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def _kwargs(self):
        return dict(reduction=self.reduction, log_target=self.log_target)


class _Linear:
    """The projection a LinearCrossEntropyLoss owns, as torch.nn.Linear stores it: `weight`
    of shape (C * prod(out_features), in_features) and `bias` (or None), NumPy arrays
    initialised as torch's Linear (uniform in +-1/sqrt(in_features); NumPy's generator, so
    not torch's numbers). ``grad_weight`` / ``grad_bias`` hold the gradients of the last
    ``LinearCrossEntropyLoss.backward()``."""

    def __init__(self, in_features, out_features, bias, dtype, seed=None):
        rng = np.random.default_rng(seed)
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        self.in_features, self.out_features = in_features, out_features
        self.weight = rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype)
        self.bias = rng.uniform(-bound, bound, out_features).astype(dtype) if bias else None
        self.grad_weight = self.grad_bias = None

    def __repr__(self):
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")


class LinearCrossEntropyLoss(_Loss):
    """torch.nn.LinearCrossEntropyLoss (torch 2.13): owns ``self.linear`` (a :class:`_Linear`
    with NumPy ``weight``/``bias``; assign torch's values to reproduce a torch module) and
    calls :func:`functional.linear_cross_entropy` (fused, chunked). ``backward()`` returns
    the input's gradient and stores the weight's and bias's in ``self.linear.grad_weight`` /
    ``grad_bias`` -- one fused pass for the three."""
    _fn = staticmethod(F.linear_cross_entropy)

    def __init__(self, in_features, num_classes, *, out_features=(), bias=False, device=None, dtype=None,
                 reduction="mean", weight=None, ignore_index=None, label_smoothing=0.0, options=None):
        if weight is not None and tuple(np.shape(weight)) != (num_classes,):
            raise RuntimeError(f"expected weight shape to be {(num_classes,)}, got {tuple(np.shape(weight))}")
        if label_smoothing < 0 or label_smoothing > 1.0:
            raise RuntimeError(f"expected label_smoothing to be in range [0, 1], got {label_smoothing}")
        if device is not None and str(device) != "cpu":
            raise ValueError(f"device: stableloss computes on the CPU, got {device!r}")
        super().__init__(None, None, reduction)
        self.weight = weight
        self.num_classes = num_classes
        self.out_features = tuple(out_features)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing
        self.options = options
        dt = np.dtype(np.float32) if dtype is None else np_dtype(dtype)
        self.linear = _Linear(in_features, math.prod(self.out_features, start=num_classes), bias, dt)

    def _kwargs(self):
        lin = self.linear
        lw = lin.weight.reshape((self.num_classes, *self.out_features, lin.in_features))
        lb = None if lin.bias is None else lin.bias.reshape((self.num_classes, *self.out_features))
        return dict(linear_weight=lw, linear_bias=lb, weight=self.weight, reduction=self.reduction,
                    ignore_index=self.ignore_index, label_smoothing=self.label_smoothing, options=self.options)

    def forward(self, input, target):
        kw = self._kwargs()
        return F.linear_cross_entropy(input, kw.pop("linear_weight"), target, **kw)

    def backward(self, grad_output=1.0):
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
            self.linear.grad_bias = g["linear_bias"].reshape(lin.bias.shape)
        return g["input"]

    def extra_repr(self):
        return (f"in_features={self.linear.in_features}, num_classes={self.num_classes}, "
                f"out_features={self.out_features}, bias={self.linear.bias is not None}, "
                f"reduction={self.reduction}, ignore_index={self.ignore_index}, "
                f"label_smoothing={self.label_smoothing}, options={self.options}")


for _cls in (Softmax, LogSoftmax, Sigmoid, LogSigmoid, CrossEntropyLoss, NLLLoss, BCELoss,
             BCEWithLogitsLoss, KLDivLoss, LinearCrossEntropyLoss):
    register(_cls, _module_impl, ("input",))


def __dir__():
    return list(__all__)     # completion shows the mirrored names, not the helpers
