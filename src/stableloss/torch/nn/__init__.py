"""``stableloss.torch.nn``: torch.nn's softmax and loss modules with torch's constructor
signatures. Calling an instance gives what torch's ``forward`` gives; ``backward(grad_output=1.0)``
returns the gradient w.r.t. the input of the last call (for NumPy training loops), and
instances work with ``stableloss.value_and_grad`` like the functions."""
from __future__ import annotations

import numpy as np

from ..._grad import register, value_and_grad
from .._common import legacy_reduction
from . import functional as F

__all__ = ["Softmax", "LogSoftmax", "Sigmoid", "LogSigmoid", "CrossEntropyLoss", "NLLLoss", "BCELoss",
           "BCEWithLogitsLoss", "KLDivLoss", "functional"]


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


for _cls in (Softmax, LogSoftmax, Sigmoid, LogSigmoid, CrossEntropyLoss, NLLLoss, BCELoss,
             BCEWithLogitsLoss, KLDivLoss):
    register(_cls, _module_impl, ("input",))
