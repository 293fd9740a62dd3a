"""The two `keras.config` settings the losses read: ``epsilon()`` (the probability clip,
read at call time as in Keras) and ``floatx()`` (the classes' default dtype)."""
from __future__ import annotations

import numbers

__all__ = ["epsilon", "set_epsilon", "floatx", "set_floatx"]

_EPSILON = 1e-7
_FLOATX = "float32"


def epsilon() -> float:
    """The fuzz factor the probability losses clip with (Keras default 1e-7)."""
    return _EPSILON


def set_epsilon(value: float) -> None:
    global _EPSILON
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"value: expected a real number, got {type(value).__name__}")
    _EPSILON = float(value)


def floatx() -> str:
    """The default float dtype of the loss classes (Keras default "float32")."""
    return _FLOATX


def set_floatx(value: str) -> None:
    global _FLOATX
    accepted = {"bfloat16", "float16", "float32", "float64"}
    if value not in accepted:
        raise ValueError(f"Unknown `floatx` value: {value}. Expected one of {accepted}")
    _FLOATX = str(value)


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
