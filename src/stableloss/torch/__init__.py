"""``stableloss.torch``: the PyTorch mirror.

- :mod:`stableloss.torch.nn.functional` -- torch.nn.functional's softmax family and losses;
- :mod:`stableloss.torch.nn` -- the modules (with ``backward()`` for NumPy loops);
- :func:`logsumexp` -- torch.logsumexp;
- :mod:`stableloss.torch.ops` -- torchvision's ``sigmoid_focal_loss``;
- :mod:`stableloss.torch.autograd` -- the same functions as ``torch.autograd.Function``s
  (needs torch installed; imported on first access).

Importing this package does not import torch. See ``docs/torch.md``.

>>> import numpy as np
>>> from stableloss.torch.nn import functional as F
>>> x = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]]); t = np.array([0, 1])
>>> print(F.cross_entropy(x, t, reduction="none"))   # NumPy in, NumPy out
[0.41703002 0.1967341 ]
>>> print(round(float(F.cross_entropy(x, t)), 10))   # torch's default reduction='mean'
0.3068820566
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any, Sequence, overload

import numpy as np

from .. import _dispatch as D
from .._grad import register
from ._common import Args, check_dim, to_numpy
from . import nn, ops

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike, NDArray

    from .._typing import ArrayInput, FloatArray

__all__ = ["nn", "ops", "logsumexp", "autograd"]


def _logsumexp_impl(a, wrt, grad_output, grad_out=None):
    A = Args(a, ("input",))
    x = np.asarray(A["input"])
    if x.dtype.kind in "biu":
        x = x.astype(np.float32)                  # torch promotes to the default float dtype
    dim = a["dim"]
    if isinstance(dim, (tuple, list)):
        if len(dim) == 0:
            raise RuntimeError(f"output with shape [] doesn't match the broadcast shape {[1] * x.ndim}")
        dims = [check_dim(d, x.ndim) for d in dim]
        for d in dims:
            if dims.count(d) > 1:
                raise RuntimeError(f"dim {d} appears multiple times in the list of dims")
        axis = tuple(dims)
    else:
        axis = check_dim(dim, x.ndim)
    out = a.get("out")
    out = to_numpy(out, "out") if out is not None else None
    value, grads = D.logsumexp_impl(dict(x=x, axis=axis, keepdims=bool(a["keepdim"]), out=out, n_threads=None),
                                    ("x",) if wrt else (), grad_output,
                                    {"x": grad_out["input"]} if grad_out and "input" in grad_out else None)
    if "x" in grads:
        # torch's gradient is g * exp(x - out): on a row whose result is +inf that is NaN at
        # the +inf entries and 0 elsewhere (the core's softmax gives the whole row NaN)
        v = np.asarray(value)
        if np.any(v == np.inf):
            vk = v if a["keepdim"] or x.ndim == 0 else np.expand_dims(v, axis)
            rows = np.broadcast_to(vk == np.inf, x.shape)
            g = grads["x"]
            with np.errstate(invalid="ignore"):
                fix = np.where(x == np.inf, np.nan, 0.0)
            g[rows] = fix[rows]
    return A.wrap(value), ({"input": A.wrap(grads["x"])} if "x" in grads else {})


@overload
def logsumexp(input: ArrayInput, dim: int | Sequence[int], keepdim: bool = ..., *,
              out: NDArray[Any] | torch.Tensor | None = ...) -> FloatArray: ...
@overload
def logsumexp(input: torch.Tensor, dim: int | Sequence[int], keepdim: bool = ..., *,
              out: NDArray[Any] | torch.Tensor | None = ...) -> torch.Tensor: ...
def logsumexp(input: ArrayLike, dim: int | Sequence[int], keepdim: bool = False, *,
              out: NDArray[Any] | torch.Tensor | None = None) -> FloatArray | torch.Tensor:
    """torch.logsumexp: `dim` (an int or a tuple/list of ints) is required; integer inputs
    are promoted to float32 as torch does. Exact: ``m + log1p(s')``."""
    return _logsumexp_impl(dict(input=input, dim=dim, keepdim=keepdim, out=out), (), None)[0]


register(logsumexp, _logsumexp_impl, ("input",))


def __getattr__(name: str) -> ModuleType:
    if name == "autograd":
        return importlib.import_module(".autograd", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
