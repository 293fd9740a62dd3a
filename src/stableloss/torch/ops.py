"""``stableloss.torch.ops``: torchvision.ops' loss functions."""
from __future__ import annotations

from typing import TYPE_CHECKING, Literal, overload

import numpy as np

from .. import _dispatch as D
from .._grad import register
from ._common import Args

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

    from .._typing import ArrayInput, FloatArray, FloatScalar, LossValue

__all__ = ["sigmoid_focal_loss"]


def _focal_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("inputs", "targets"), main="inputs")
    red = a["reduction"]
    if red not in ("none", "mean", "sum"):
        raise ValueError(f"Invalid Value for arg 'reduction': '{red} \n "
                         f"Supported reduction modes: 'none', 'mean', 'sum'")
    alpha = a["alpha"]
    value, grads = D.sigmoid_focal_loss_impl(
        dict(logits=A["inputs"], labels=A["targets"], alpha=None if alpha < 0 else alpha, gamma=a["gamma"],
             reduction=red, out=None, n_threads=None),
        ("logits",) if wrt else (), grad_output,
        {"logits": grad_out["inputs"]} if grad_out and "inputs" in grad_out else None)
    return A.wrap(value), ({"inputs": A.wrap(grads["logits"])} if "logits" in grads else {})


@overload
def sigmoid_focal_loss(inputs: ArrayInput, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: Literal["none"] = ...) -> FloatArray: ...
@overload
def sigmoid_focal_loss(inputs: ArrayInput, targets: ArrayLike, alpha: float = ..., gamma: float = ..., *,
                       reduction: Literal["mean", "sum"]) -> FloatScalar: ...
@overload
def sigmoid_focal_loss(inputs: ArrayInput, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: str = ...) -> LossValue: ...
@overload
def sigmoid_focal_loss(inputs: torch.Tensor, targets: ArrayLike, alpha: float = ..., gamma: float = ...,
                       reduction: str = ...) -> torch.Tensor: ...
def sigmoid_focal_loss(inputs: ArrayLike, targets: ArrayLike, alpha: float = 0.25, gamma: float = 2,
                       reduction: str = "none") -> LossValue | torch.Tensor:
    """torchvision.ops.sigmoid_focal_loss: ``alpha_t (1 - p_t)^gamma BCE(inputs, targets)``
    (no alpha weighting when ``alpha < 0``), default ``reduction='none'``. Both tails exact
    (see :func:`stableloss.sigmoid_focal_loss`)."""
    return _focal_impl(dict(inputs=inputs, targets=targets, alpha=alpha, gamma=gamma, reduction=reduction),
                       (), None)[0]


register(sigmoid_focal_loss, _focal_impl, ("inputs",))


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
