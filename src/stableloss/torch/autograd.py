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
``linear_cross_entropy`` differentiates ``input``, ``linear_weight`` and ``linear_bias``
(those that require grad), all from the one fused, chunked pass.
Double backward is not supported: the functions are ``once_differentiable`` and a
second differentiation raises torch's error for that.

>>> import torch
>>> from stableloss.torch import autograd as A
>>> x = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]], dtype=torch.float64, requires_grad=True)
>>> loss = A.cross_entropy(x, torch.tensor([0, 1]))    # torch.nn.functional.cross_entropy's value
>>> loss.backward()                                     # and its x.grad
>>> print(round(loss.item(), 10))
0.3068820566
>>> print(x.grad.numpy().round(6))
[[-0.170499  0.121216  0.049283]
 [ 0.055583 -0.089295  0.033713]]
"""
from __future__ import annotations

import functools
import inspect
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

try:
    import torch
    from torch.autograd.function import once_differentiable
except ImportError as _exc:  # pragma: no cover - exercised only without torch
    raise ImportError("stableloss.torch.autograd needs PyTorch (pip install torch==2.13.0)") from _exc

from .._grad import _lookup
from . import logsumexp as _logsumexp
from . import ops as _ops
from .nn import functional as _F
from ._common import to_numpy, to_tensor

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["softmax", "log_softmax", "cross_entropy", "nll_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits", "kl_div", "sigmoid", "logsigmoid", "logsumexp",
           "sigmoid_focal_loss", "linear_cross_entropy"]


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


def _bridge(fn: Callable[..., Any], main: str = "input") -> Callable[..., torch.Tensor]:
    entry = _lookup(fn)
    sig = inspect.signature(fn)
    is_loss = fn.__name__ in _SCALAR_LOSSES

    @functools.wraps(fn)
    def bridged(*args: Any, **kwargs: Any) -> torch.Tensor:
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
        return _Bridge.apply(x, (entry.impl, a, main, reduced))  # type: ignore[union-attr]

    bridged.__doc__ = (f"Autograd-bridged :func:`stableloss.torch.{fn.__module__.split('stableloss.torch.')[-1]}."
                       f"{fn.__name__}`: tensors in and out, gradient w.r.t. `{main}` from the fused kernel.")
    return bridged


softmax: Callable[..., torch.Tensor] = _bridge(_F.softmax)
log_softmax: Callable[..., torch.Tensor] = _bridge(_F.log_softmax)
cross_entropy: Callable[..., torch.Tensor] = _bridge(_F.cross_entropy)
nll_loss: Callable[..., torch.Tensor] = _bridge(_F.nll_loss)
binary_cross_entropy: Callable[..., torch.Tensor] = _bridge(_F.binary_cross_entropy)
binary_cross_entropy_with_logits: Callable[..., torch.Tensor] = _bridge(_F.binary_cross_entropy_with_logits)
kl_div: Callable[..., torch.Tensor] = _bridge(_F.kl_div)
sigmoid: Callable[..., torch.Tensor] = _bridge(_F.sigmoid)
logsigmoid: Callable[..., torch.Tensor] = _bridge(_F.logsigmoid)
logsumexp: Callable[..., torch.Tensor] = _bridge(_logsumexp)
sigmoid_focal_loss: Callable[..., torch.Tensor] = _bridge(_ops.sigmoid_focal_loss, main="inputs")


class _LinearCEBridge(torch.autograd.Function):
    """input, linear_weight, linear_bias -> loss; for a reduced loss the forward pass computes
    the gradients of those that require grad in the same chunked pass."""

    @staticmethod
    def forward(ctx, x, w, b, spec):
        impl, args, reduced = spec
        args = dict(args)
        args["input"], args["linear_weight"] = to_numpy(x, "input"), to_numpy(w, "linear_weight")
        args["linear_bias"] = None if b is None else to_numpy(b, "linear_bias")
        names = ("input", "linear_weight", "linear_bias")
        wrt = tuple(n for n, need in zip(names, ctx.needs_input_grad[:3]) if need)
        ctx.args, ctx.impl, ctx.wrt = args, impl, wrt
        ctx.dtypes = (x.dtype, w.dtype, None if b is None else b.dtype)
        if reduced and wrt:
            value, grads = impl(args, wrt, None, None)
            ctx.saved = grads
        else:
            value, _ = impl(args, (), None, None)
            ctx.saved = None
        return to_tensor(value)

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        if ctx.saved is not None:
            grads, ctx.saved = ctx.saved, None
            scale = None if (g.numel() == 1 and float(g) == 1.0) else g
        else:
            _, grads = ctx.impl(ctx.args, ctx.wrt, to_numpy(g.contiguous(), "grad_output"), None)
            scale = None
        out = []
        for n, dt in zip(("input", "linear_weight", "linear_bias"), ctx.dtypes):
            if n not in grads:
                out.append(None)
                continue
            gr = to_tensor(grads[n])
            if scale is not None:
                gr = gr * scale.to(gr.dtype)
            out.append(gr.to(dt))
        return out[0], out[1], out[2], None


def linear_cross_entropy(input: torch.Tensor, linear_weight: torch.Tensor, target: ArrayLike, *,
                         linear_bias: torch.Tensor | None = None, weight: ArrayLike | None = None,
                         reduction: str = "mean", ignore_index: int | None = None, label_smoothing: float = 0.0,
                         options: Any = None) -> torch.Tensor:
    """Autograd-bridged :func:`stableloss.torch.nn.functional.linear_cross_entropy`: tensors
    in and out; gradients w.r.t. `input`, `linear_weight` and `linear_bias` (those that
    require grad) from the fused, chunked pass."""
    for name, v in (("input", input), ("linear_weight", linear_weight)):
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"linear_cross_entropy(): argument '{name}' must be a torch.Tensor, "
                            f"not {type(v).__name__}")
    for name, v in (("target", target), ("weight", weight)):  # type: ignore[assignment]
        if isinstance(v, torch.Tensor) and v.requires_grad:
            raise NotImplementedError(f"linear_cross_entropy(): the stableloss bridge differentiates input, "
                                      f"linear_weight and linear_bias; '{name}' requires grad")
    args = dict(target=target, weight=weight, reduction=reduction, ignore_index=ignore_index,
                label_smoothing=label_smoothing, options=options)
    impl = _lookup(_F.linear_cross_entropy).impl  # type: ignore[union-attr]
    return _LinearCEBridge.apply(input, linear_weight, linear_bias, (impl, args, reduction != "none"))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
