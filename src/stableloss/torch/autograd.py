"""``stableloss.torch.autograd``: the PyTorch mirror's functions as
``torch.autograd.Function``s -- tensors in, tensors out, forward and backward by the
stableloss kernels (zero-copy on contiguous CPU tensors).

A drop-in for training loops: ``loss = cross_entropy(model(x), t)`` then
``loss.backward()``. When the output is a scalar (a reduced loss) the forward pass runs
the fused kernel once for the value *and* the gradient and keeps the gradient;
``backward`` only scales it by the upstream gradient. For non-scalar outputs
(``reduction='none'``, softmax, ...) ``backward`` calls the kernel with the upstream
gradient.

Gradients flow to ``input`` (argument 0) only; a target, weight or pos_weight that
requires grad raises ``NotImplementedError`` (torch would differentiate them).
Double backward is not supported: the functions are ``once_differentiable`` and a
second differentiation raises torch's error for that.
"""
from __future__ import annotations

import functools
import inspect

import numpy as np

try:
    import torch
    from torch.autograd.function import once_differentiable
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("stableloss.torch.autograd needs PyTorch (pip install torch==2.13.0)") from exc

from .._grad import _lookup
from . import logsumexp as _logsumexp
from . import ops as _ops
from .nn import functional as _F
from ._common import to_numpy, to_tensor

__all__ = ["softmax", "log_softmax", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "sigmoid", "logsigmoid", "logsumexp",
           "sigmoid_focal_loss"]


class _Bridge(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, spec):
        impl, args, main, reduced = spec
        args = dict(args)
        args[main] = to_numpy(x, main)
        if reduced:
            value, grads = impl(args, (main,), None, None)
            ctx.saved_grad = grads[main]
            ctx.args = args             # for a second backward through a retained graph
        else:
            value, _ = impl(args, (), None, None)
            ctx.saved_grad = None
            ctx.args = args
        ctx.impl, ctx.main, ctx.dtype = impl, main, x.dtype
        return to_tensor(value)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        if ctx.saved_grad is not None:
            gr = to_tensor(ctx.saved_grad)
            ctx.saved_grad = None      # sole owner: autograd can take the buffer as x.grad, no copy
                                       # (a second backward recomputes, below)
            if not (g.numel() == 1 and float(g) == 1.0):
                gr = gr * g.to(gr.dtype)
            return gr.to(ctx.dtype), None
        _, grads = ctx.impl(ctx.args, (ctx.main,), to_numpy(g.contiguous(), "grad_output"), None)
        return to_tensor(grads[ctx.main]).to(ctx.dtype), None


_SCALAR_LOSSES = {"cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                  "kl_div", "sigmoid_focal_loss"}


def _bridge(fn, main="input"):
    entry = _lookup(fn)
    sig = inspect.signature(fn)
    is_loss = fn.__name__ in _SCALAR_LOSSES

    @functools.wraps(fn)
    def bridged(*args, **kwargs):
        bound = sig.bind(*args, **kwargs)
        bound.apply_defaults()
        a = dict(bound.arguments)
        x = a[main]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{fn.__name__}(): argument '{main}' must be a torch.Tensor, not {type(x).__name__}")
        for k, v in a.items():
            if k != main and isinstance(v, torch.Tensor) and v.requires_grad:
                raise NotImplementedError(f"{fn.__name__}(): the stableloss bridge differentiates '{main}' only; "
                                          f"'{k}' requires grad (use torch's own function for that)")
        reduced = is_loss and a.get("reduction", "mean") != "none" and not (
            a.get("size_average") is not None or a.get("reduce") is not None)
        return _Bridge.apply(x, (entry.impl, a, main, reduced))

    bridged.__doc__ = (f"Autograd-bridged :func:`stableloss.torch.{fn.__module__.split('stableloss.torch.')[-1]}."
                       f"{fn.__name__}`: tensors in and out, gradient w.r.t. `{main}` from the fused kernel.")
    return bridged


softmax = _bridge(_F.softmax)
log_softmax = _bridge(_F.log_softmax)
cross_entropy = _bridge(_F.cross_entropy)
nll_loss = _bridge(_F.nll_loss)
binary_cross_entropy = _bridge(_F.binary_cross_entropy)
binary_cross_entropy_with_logits = _bridge(_F.binary_cross_entropy_with_logits)
kl_div = _bridge(_F.kl_div)
sigmoid = _bridge(_F.sigmoid)
logsigmoid = _bridge(_F.logsigmoid)
logsumexp = _bridge(_logsumexp)
sigmoid_focal_loss = _bridge(_ops.sigmoid_focal_loss, main="inputs")
