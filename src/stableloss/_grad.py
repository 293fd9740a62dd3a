"""The gradient registry: the one way gradients are found.

A public function is registered with the names of its differentiable arguments and
its dispatch ``impl`` (``impl(bound_args, wrt, grad_output) -> (value, {name: grad})``).
``value_and_grad(f, argnums)`` binds the call's arguments to ``f``'s signature, maps
``argnums`` (positions among ``f``'s positional parameters) to names and asks the impl
for those gradients: one call of the fused kernel, no autodiff, no finite differences.
Mirrors (torch, tf, keras front ends) register their functions the same way, with
their own argument names and a translating impl.
"""
from __future__ import annotations

import functools
import inspect
import operator
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Protocol, Tuple, TypeVar, Union, overload

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

    from ._typing import FloatArray, GradOut, Impl

__all__ = ["register", "differentiable", "value_and_grad", "grad", "is_registered"]

_REGISTRY: Dict[Any, _Entry] = {}

_F = TypeVar("_F", bound=Callable[..., Any])
_T = TypeVar("_T")
_R = TypeVar("_R")
_R_co = TypeVar("_R_co", covariant=True)
_G_co = TypeVar("_G_co", covariant=True)


class ValueAndGradFn(Protocol[_R_co, _G_co]):
    """What :func:`value_and_grad` returns: ``f``'s arguments plus ``grad_output`` and
    ``grad_out``, giving ``(value, gradient)``. The value type is that of ``f``'s return
    (its first overload, for an overloaded ``f``: the default call's, e.g. a NumPy scalar for a
    reduced loss even if the call passes ``reduction="none"``); the gradient is an array for an
    int ``argnums``, a tuple of arrays for a tuple. The torch mirror called on tensors returns
    tensors although typed as its NumPy overload (:mod:`stableloss.torch.autograd` is the
    tensor path)."""

    def __call__(self, *args: Any, grad_output: ArrayLike | None = None, grad_out: GradOut = None,
                 **kwargs: Any) -> Tuple[_R_co, _G_co]: ...


class GradFn(Protocol[_G_co]):
    """What :func:`grad` returns: ``f``'s arguments (and ``grad_output``, ``grad_out``)
    giving the gradient(s) only."""

    def __call__(self, *args: Any, grad_output: ArrayLike | None = None, grad_out: GradOut = None,
                 **kwargs: Any) -> _G_co: ...


class _Entry:
    __slots__ = ("impl", "names", "signature", "params", "is_class")

    def __init__(self, f: Any, impl: Impl, names: Tuple[str, ...]) -> None:
        self.impl = impl
        self.names = tuple(names)
        self.is_class = isinstance(f, type)
        sig = inspect.signature(f.__call__ if self.is_class else f)
        if self.is_class:   # drop `self`: instances are called like functions
            sig = sig.replace(parameters=list(sig.parameters.values())[1:])
        self.signature = sig
        self.params = [p.name for p in self.signature.parameters.values()
                       if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def register(f: _T, impl: Impl, differentiable_args: Tuple[str, ...]) -> _T:
    """Register a function, or a class whose instances are called (``__call__``); for a
    class the impl receives the instance as ``args["__self__"]``."""
    _REGISTRY[f] = _Entry(f, impl, differentiable_args)
    return f


def differentiable(*names: str, impl: Impl) -> Callable[[_F], _F]:
    """Decorator: ``@differentiable("logits", impl=_dispatch.softmax_cross_entropy_impl)``."""
    def deco(f: _F) -> _F:
        register(f, impl, names)
        return f
    return deco


def is_registered(f: Any) -> bool:
    return _lookup(f) is not None


def _lookup(f: Any) -> _Entry | None:
    e = _REGISTRY.get(f)
    if e is None:
        e = _REGISTRY.get(type(f))      # instances of registered classes (modules, Keras losses)
    return e


def _bind(entry: _Entry, f: Any, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    try:
        bound = entry.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{getattr(f, '__name__', type(f).__name__)}(): {exc}") from None
    bound.apply_defaults()
    return bound.arguments


@overload
def value_and_grad(f: Callable[..., _R], argnums: int = 0) -> ValueAndGradFn[_R, FloatArray]: ...
@overload
def value_and_grad(f: Callable[..., _R], argnums: Tuple[int]) -> ValueAndGradFn[_R, Tuple[FloatArray]]: ...
@overload
def value_and_grad(f: Callable[..., _R], argnums: Tuple[int, int]
                   ) -> ValueAndGradFn[_R, Tuple[FloatArray, FloatArray]]: ...
@overload
def value_and_grad(f: Callable[..., _R], argnums: Tuple[int, int, int]
                   ) -> ValueAndGradFn[_R, Tuple[FloatArray, FloatArray, FloatArray]]: ...
@overload
def value_and_grad(f: Callable[..., _R], argnums: Tuple[int, ...] | List[int]
                   ) -> ValueAndGradFn[_R, Tuple[FloatArray, ...]]: ...
def value_and_grad(f: Callable[..., Any], argnums: int | Tuple[int, ...] | List[int] = 0
                   ) -> ValueAndGradFn[Any, Any]:
    """Return a function computing ``(f(*args, **kw), gradient)`` in one fused call.

    Parameters
    ----------
    f : a stableloss function (or a registered mirror).
    argnums : int or tuple of int
        Positions among ``f``'s positional parameters to differentiate. A tuple gives a
        tuple of gradients in the same order.

    The returned function takes ``f``'s arguments plus the keywords ``grad_output`` (the
    cotangent, of ``f``'s output shape; default: ones, or 1.0 for a scalar loss) and
    ``grad_out`` (an array, or a tuple matching ``argnums``, to write the gradient(s) into:
    no allocation; it may be the differentiated argument itself -- e.g. the logits, for an
    in-place gradient as in Liger-style training loops -- but no other input).
    The value is bit-for-bit what ``f`` returns.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(np.array([[2.0, 0.0]]), np.array([0]))
    >>> bool(abs(g.sum()) < 1e-15)
    True
    """
    entry = _lookup(f)
    if entry is None:
        raise TypeError(f"value_and_grad: {getattr(f, '__name__', repr(f))} is not a registered "
                        "stableloss function; gradients come from stableloss's fused kernels only")
    single = not isinstance(argnums, (tuple, list))
    nums: Tuple[Any, ...] = tuple(argnums) if isinstance(argnums, (tuple, list)) else (argnums,)
    if not nums:
        raise ValueError("argnums: give at least one argument position")
    wrt: List[str] = []
    for n in nums:
        try:
            i = operator.index(n)
        except TypeError:
            raise TypeError(f"argnums: expected int or tuple of ints, got {n!r}") from None
        if not -len(entry.params) <= i < len(entry.params):
            raise ValueError(f"argnums: {i} is out of range for {len(entry.params)} positional parameters "
                             f"{tuple(entry.params)}")
        name = entry.params[i]
        if name not in entry.names:
            raise TypeError(f"argnums: argument {i} ({name!r}) is not differentiable; differentiable: "
                            f"{', '.join(entry.names)}")
        wrt.append(name)

    @functools.wraps(f if inspect.isfunction(f) else type(f).__call__)
    def vg(*args: Any, grad_output: ArrayLike | None = None, grad_out: GradOut = None,
           **kwargs: Any) -> Tuple[Any, Any]:
        bound = _bind(entry, f, args, kwargs)
        if entry.is_class:
            bound["__self__"] = f
        named = None
        if grad_out is not None:
            outs = (grad_out,) if single else tuple(grad_out)  # type: ignore[arg-type]
            if len(outs) != len(wrt):
                raise ValueError(f"grad_out: expected {len(wrt)} arrays (one per argnum), got {len(outs)}")
            named = {n: o for n, o in zip(wrt, outs) if o is not None}
        value, grads = entry.impl(bound, tuple(wrt), grad_output, named)
        g = tuple(grads[n] for n in wrt)
        return value, (g[0] if single else g)

    return vg


@overload
def grad(f: Callable[..., Any], argnums: int = 0) -> GradFn[FloatArray]: ...
@overload
def grad(f: Callable[..., Any], argnums: Tuple[int]) -> GradFn[Tuple[FloatArray]]: ...
@overload
def grad(f: Callable[..., Any], argnums: Tuple[int, int]) -> GradFn[Tuple[FloatArray, FloatArray]]: ...
@overload
def grad(f: Callable[..., Any], argnums: Tuple[int, int, int]
         ) -> GradFn[Tuple[FloatArray, FloatArray, FloatArray]]: ...
@overload
def grad(f: Callable[..., Any], argnums: Tuple[int, ...] | List[int]) -> GradFn[Tuple[FloatArray, ...]]: ...
def grad(f: Callable[..., Any], argnums: int | Tuple[int, ...] | List[int] = 0) -> GradFn[Any]:
    """Like :func:`value_and_grad` but returns only the gradient(s)."""
    vg = value_and_grad(f, argnums)

    @functools.wraps(vg)
    def g(*args: Any, **kwargs: Any) -> Any:
        return vg(*args, **kwargs)[1]

    return g
