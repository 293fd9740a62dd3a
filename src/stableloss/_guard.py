"""The misuse guard: logits where probabilities belong, and the other way round.

NumPy arrays carry no record of the softmax layer they came from, so the guard looks at
values. It never changes the math: it warns (a :class:`MisuseWarning`, a ``UserWarning``),
once per call site and kind of mistake, with a message that names the fix.

Switches: ``stableloss.set_misuse_warnings(False)``, the environment variable
``STABLELOSS_MISUSE_WARNINGS=0`` (read at import), or the usual
``warnings.filterwarnings("ignore", category=stableloss.MisuseWarning)``.

Triggers
--------
- :func:`check_probabilities` (a call that wants probabilities): a value outside
  ``[0, 1]`` (NaN is left to the losses), or, for categorical calls (``axis`` given), a
  row whose sum differs from 1 by more than ``ROW_SUM_TOL`` (relative to the row length,
  so float16 rounding and Keras-style renormalising calls on nearly normalised rows do not
  trip it).
- :func:`check_logits` (a ``from_logits=True`` / ``*_with_logits`` call): every value lies
  in ``[0, 1]`` *and* every row sums to 1 within ``ROW_SUM_TOL`` with at least 2 classes
  -- the signature of a softmax output. Logits that merely happen to lie in [0, 1] do not
  sum to 1 row by row, so they do not trigger it.
"""
from __future__ import annotations

import os
import warnings
from typing import Any, Set

import numpy as np

__all__ = ["MisuseWarning", "set_misuse_warnings", "misuse_warnings_enabled",
           "reset_misuse_warnings", "check_probabilities", "check_logits"]

ROW_SUM_TOL = 1e-3


class MisuseWarning(UserWarning):
    """Values that look like the wrong kind of input (logits vs probabilities)."""


_enabled = os.environ.get("STABLELOSS_MISUSE_WARNINGS", "1").strip().lower() not in ("0", "false", "no", "off")
_warned: Set[Any] = set()


def set_misuse_warnings(enabled: bool) -> bool:
    """Turn the logits/probabilities misuse warnings on or off; returns the previous setting."""
    global _enabled
    prev, _enabled = _enabled, bool(enabled)
    return prev


def misuse_warnings_enabled() -> bool:
    return _enabled


def reset_misuse_warnings() -> None:
    """Forget which call sites already warned (each warns once per process otherwise)."""
    _warned.clear()


def _warn(key, message, stacklevel):
    if key in _warned:
        return
    _warned.add(key)
    warnings.warn(message, MisuseWarning, stacklevel=stacklevel + 1)


def _real(a):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf" and a.dtype.name not in ("bfloat16",):
        return None
    return a


def _rows_sum_to_one(a, axis):
    """True when every row along `axis` sums to 1 within the tolerance (empty: False)."""
    if a.size == 0 or a.ndim == 0:
        return False
    C = a.shape[axis]
    s = np.sum(a, axis=axis, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return bool(np.all(np.abs(s - 1.0) <= ROW_SUM_TOL * max(1.0, C / 1000.0)))


def check_probabilities(p, *, argument, caller, fix, axis=None, stacklevel=3):
    """Warn when `p` cannot hold probabilities: values outside [0, 1], or (with `axis`)
    rows along `axis` that do not sum to 1. `fix` is the advice, e.g. ``"from_logits=True"``."""
    if not _enabled:
        return
    a = _real(p)
    if a is None or a.size == 0:
        return
    with np.errstate(invalid="ignore"):
        lo, hi = np.nanmin(a) if a.dtype.kind == "f" else a.min(), np.nanmax(a) if a.dtype.kind == "f" else a.max()
    if lo < 0 or hi > 1:
        _warn((caller, argument, "range"),
              f"{caller}: {argument} has values outside [0, 1] (min {float(lo):.4g}, max {float(hi):.4g}), "
              f"so it cannot hold probabilities; if these are logits, {fix}", stacklevel)
        return
    if axis is not None and a.ndim > 0 and a.shape[axis] > 1 and not _rows_sum_to_one(a, axis):
        _warn((caller, argument, "rowsum"),
              f"{caller}: the rows of {argument} do not sum to 1, so they are not a softmax output; "
              f"if these are logits, {fix}", stacklevel)


def check_logits(x, *, argument, caller, fix, axis=-1, stacklevel=3):
    """Warn when `x`, passed where logits are expected, looks like a softmax output: all
    values in [0, 1] and every row along `axis` (at least 2 classes) summing to 1."""
    if not _enabled:
        return
    a = _real(x)
    if a is None or a.size == 0 or a.ndim == 0 or a.shape[axis] < 2:
        return
    with np.errstate(invalid="ignore"):
        if not (np.min(a) >= 0 and np.max(a) <= 1):
            return
    if _rows_sum_to_one(a, axis):
        _warn((caller, argument, "softmaxed"),
              f"{caller}: every row of {argument} lies in [0, 1] and sums to 1 -- it looks like a "
              f"softmax output, but this call applies softmax itself; {fix}", stacklevel)
