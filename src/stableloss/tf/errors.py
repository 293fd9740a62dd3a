"""TensorFlow's error types, without importing TensorFlow.

:class:`InvalidArgumentError` subclasses ``ValueError``. When TensorFlow is already
imported in the process, the instances raised are also instances of
``tf.errors.InvalidArgumentError`` (a subclass made on first use), so code written
against TensorFlow's exceptions catches the mirror's errors unchanged.
"""
from __future__ import annotations

import sys
from typing import Any

__all__ = ["InvalidArgumentError"]   # invalid_argument: the mirrors' helper, not TF API


class InvalidArgumentError(ValueError):
    """The mirror of ``tf.errors.InvalidArgumentError`` (an op received a bad argument)."""

    def __init__(self, node_def: Any = None, op: Any = None, message: str = "", *args: Any) -> None:
        if message == "" and isinstance(node_def, str) and op is None:   # InvalidArgumentError("text")
            node_def, message = None, node_def
        ValueError.__init__(self, message)
        self._node_def, self._op, self._message = node_def, op, message
        self._error_code, self._experimental_payloads = 3, {}   # type: ignore[var-annotated]  # INVALID_ARGUMENT

    @property
    def message(self) -> str:
        return self._message

    @property
    def node_def(self) -> Any:
        return self._node_def

    @property
    def op(self) -> Any:
        return self._op

    @property
    def error_code(self) -> int:
        return self._error_code

    def __str__(self) -> str:
        return self._message


_both: Any = None


def invalid_argument(message: str) -> InvalidArgumentError:
    """An InvalidArgumentError instance carrying `message` (also a TF one when TF is loaded)."""
    global _both
    tf_errors = sys.modules.get("tensorflow.python.framework.errors_impl")
    if tf_errors is not None:
        if _both is None:
            class _InvalidArgumentError(InvalidArgumentError, tf_errors.InvalidArgumentError):  # type: ignore[name-defined,misc]
                __module__ = __name__
                __qualname__ = "InvalidArgumentError"

                def __init__(self, message):
                    InvalidArgumentError.__init__(self, None, None, message)

                def __str__(self):
                    return self._message

                def __reduce__(self):
                    return (InvalidArgumentError, (None, None, self._message))
            _both = _InvalidArgumentError
        return _both(message)
    return InvalidArgumentError(None, None, message)


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
