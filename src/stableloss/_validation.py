"""The one validation layer: every argument check and every message lives here.

Messages start with the argument's name (``"labels: value 12 at index (3,) is out of
range for 10 classes"``). Front ends translate these exceptions where a framework
raises a different type; they never re-implement the checks.
"""
from __future__ import annotations

import numbers
import operator
from typing import Tuple

import numpy as np

try:  # NumPy >= 1.25
    from numpy.exceptions import AxisError
except ImportError:  # pragma: no cover
    from numpy import AxisError  # type: ignore[attr-defined,no-redef]

__all__ = ["LabelError", "AxisError"]

REDUCTIONS = ("none", "mean", "sum")


class LabelError(IndexError, ValueError):
    """A class label outside [0, C) that is not the ignore index.

    Subclasses both IndexError (what PyTorch raises) and ValueError (what NumPy
    users expect for a bad value). ``value`` and ``index`` (when known) name the first
    bad label, so front ends can word the message as their framework does."""

    def __init__(self, message: str, value: int | None = None, index: Tuple[int, ...] | int | None = None) -> None:
        super().__init__(message)
        self.value: int | None = value
        self.index: Tuple[int, ...] | int | None = index


def _dtype_name(dt):
    return np.dtype(dt).name if not isinstance(dt, str) else dt


def float_array(a, name):
    """Return (array in its compute dtype, result dtype).

    float32/float64 are kept; float16 (and bfloat16 from ml_dtypes) compute in
    float32 and return their own dtype; integer/bool promote to float64 (NumPy's
    rule); complex, object, string and structured arrays raise TypeError.
    Non-native byte order is converted (a copy); nothing is ever written to `a`.
    """
    arr = np.asarray(a)
    dt = arr.dtype
    kind = dt.kind
    if kind == "f":
        if dt.itemsize == 2:
            # results in the native-order half dtype (a byte-swapped '>f2' input must not
            # give '>f2' results, nor a '>bfloat16' one results that NumPy calls '>V2')
            return arr.astype(np.float32), dt.newbyteorder("=")
        if dt.itemsize in (4, 8):
            native = np.dtype(np.float32 if dt.itemsize == 4 else np.float64)
            return (arr if dt == native else arr.astype(native)), native
        # long double: compute in float64, return float64
        return arr.astype(np.float64), np.dtype(np.float64)
    if kind in "biu":
        return arr.astype(np.float64), np.dtype(np.float64)
    if dt.name == "bfloat16":
        return arr.astype(np.float32), dt.newbyteorder("=")
    if kind == "c":
        raise TypeError(f"{name}: complex input ({dt}) is not supported; pass the real part or magnitude explicitly")
    raise TypeError(f"{name}: expected a real numeric array, got dtype {_dtype_name(dt)}")


def half_kind(arr):
    """'f16' or 'bf16' for a native-order half-precision array the kernels can read
    directly, else None."""
    dt = getattr(arr, "dtype", None)
    if dt is None or dt.itemsize != 2 or not dt.isnative:
        return None
    if dt.kind == "f":
        return "f16"
    if dt.name == "bfloat16":
        return "bf16"
    return None


def as_compute(a, dtype, name):
    """A float array-like `a` (weights, probability labels, grad_output) in compute dtype."""
    arr = np.asarray(a)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name}: complex input ({arr.dtype}) is not supported")
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {_dtype_name(arr.dtype)}")
    return contiguous(arr, dtype)


def contiguous(a, dtype=None):
    """C-contiguous and aligned, copying only when needed; unlike np.ascontiguousarray
    keeps 0-d. (A misaligned buffer -- a view at an odd byte offset -- is C-contiguous to
    NumPy, but a kernel reading it through a double* is undefined behaviour: found by
    UBSan, tools/sanitize.sh.)"""
    arr = np.asarray(a, dtype=dtype, order="C")
    return arr if arr.flags.aligned else arr.copy()


def check_axis(axis, ndim, name="axis"):
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"{name}: expected an integer, got {type(axis).__name__}") from None
    nd = max(ndim, 1)       # a 0-d input is one row of one element
    if not -nd <= ax < nd:
        raise AxisError(f"{name}: {ax} is out of bounds for an array of dimension {ndim}")
    return ax % nd


def all_finite(*arrays):
    """True when no element of the arrays is NaN or +-inf: one float64 sum per array, no
    temporary array. A sum of finite values that overflows also gives False; callers then
    take their careful path, which is correct, only slower."""
    with np.errstate(over="ignore", invalid="ignore"):
        return all(bool(np.isfinite(np.sum(a, dtype=np.float64))) for a in arrays if np.size(a))


def check_axes(axis, ndim, name="axis"):
    """An int, a tuple/list of distinct ints, or None (all axes) -> a sorted tuple of axes."""
    if axis is None:
        return tuple(range(max(ndim, 1)))
    if isinstance(axis, (tuple, list)):
        if len(axis) == 0:
            raise ValueError(f"{name}: an empty tuple reduces nothing; give at least one axis (None for all)")
        axes = [check_axis(a, ndim, name) for a in axis]
        if len(set(axes)) != len(axes):
            raise ValueError(f"{name}: axis {sorted(a for a in axes if axes.count(a) > 1)[0]} appears more than once in {tuple(axis)}")
        return tuple(sorted(axes))
    return (check_axis(axis, ndim, name),)


def check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction: {reduction!r} is not one of {', '.join(map(repr, REDUCTIONS))}")
    return reduction


def check_label_smoothing(eps):
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, numbers.Real):
        raise TypeError(f"label_smoothing: expected a real number, got {type(eps).__name__}")
    eps = float(eps)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing: must lie in [0, 1], got {eps}")
    return eps


def check_z_loss(z):
    """The z-loss coefficient: a finite real number >= 0."""
    if isinstance(z, (bool, np.bool_)) or not isinstance(z, numbers.Real):
        raise TypeError(f"z_loss: expected a real number, got {type(z).__name__}")
    z = float(z)
    if not (0.0 <= z < float("inf")):
        raise ValueError(f"z_loss: must be a finite number >= 0, got {z}")
    return z


def check_chunk_size(cs):
    """None (automatic) or a positive integer."""
    if cs is None:
        return None
    if isinstance(cs, (bool, np.bool_)):
        raise TypeError("chunk_size: expected a positive integer or None, got bool")
    try:
        n = operator.index(cs)
    except TypeError:
        raise TypeError(f"chunk_size: expected a positive integer or None, got {type(cs).__name__}") from None
    if n < 1:
        raise ValueError(f"chunk_size: expected a positive integer or None, got {n}")
    return n


def check_ignore_index(ignore_index):
    if ignore_index is None:
        return False, 0
    if isinstance(ignore_index, (bool, np.bool_)):
        raise TypeError("ignore_index: expected an integer or None, got bool")
    try:
        return True, operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"ignore_index: expected an integer or None, got {type(ignore_index).__name__}") from None


def index_labels(labels, expected_shape, name="labels", prob_shape=None):
    """Integer class labels of `expected_shape`, as a C-contiguous int64 array.

    `prob_shape`: the logits' shape, when labels of that shape would be read as
    probabilities (named in the shape error)."""
    lab = np.asarray(labels)
    expected_shape = tuple(expected_shape)
    if lab.shape != expected_shape and (lab.dtype.kind in "iuf" or lab.dtype.name == "bfloat16"):
        # the shape is wrong whatever the dtype: say so (a cast would not help)
        forms = f"integer class indices of shape {expected_shape}"
        if prob_shape is not None:
            forms += f" or probabilities of the logits' shape {tuple(prob_shape)}"
        raise ValueError(f"{name}: got shape {lab.shape} ({_dtype_name(lab.dtype)}); expected {forms}")
    if lab.dtype.kind not in "iu":
        if lab.dtype.kind == "f":
            hint = " (NaN labels are not class indices)" if np.isnan(lab).any() else ""
            raise TypeError(f"{name}: expected integer class indices, got {lab.dtype}{hint}; "
                            f"cast with {name}.astype(np.int64)")
        raise TypeError(f"{name}: expected integer class indices, got dtype {_dtype_name(lab.dtype)}")
    if lab.dtype == np.uint64 and lab.size and lab.max() > np.iinfo(np.int64).max:
        bad = np.unravel_index(int(np.argmax(lab > np.iinfo(np.int64).max)), lab.shape)
        raise LabelError(f"{name}: value {int(lab[bad])} at index {tuple(int(i) for i in bad)} is out of range",
                         int(lab[bad]), tuple(int(i) for i in bad))
    return contiguous(lab, np.int64)


def check_label_range(lab64, shape, C, has_ignore, ignore_index, name="labels"):
    """Raise LabelError for the first label outside [0, C) that is not ignore_index."""
    if lab64.size == 0:
        return
    bad = (lab64 < 0) | (lab64 >= C)
    if has_ignore:
        bad &= lab64 != ignore_index
    if bad.any():
        raise_bad_label(lab64, shape, int(np.argmax(bad)), C, name)


def raise_bad_label(lab64, shape, flat_pos, C, name="labels"):
    idx = np.unravel_index(flat_pos, shape) if len(shape) else ()
    idx = tuple(int(i) for i in idx)
    v = int(lab64.reshape(-1)[flat_pos])
    raise LabelError(f"{name}: value {v} at index {idx} is out of range for {C} classes", v, idx)


def class_weight(weight, C, dtype, name="weight"):
    if weight is None:
        return None
    w = as_compute(weight, dtype, name)
    if w.shape != (C,):
        raise ValueError(f"{name}: expected one weight per class, shape ({C},), got {w.shape}")
    return w


def same_shape(a, shape, name, what):
    if a.shape != tuple(shape):
        raise ValueError(f"{name}: shape {a.shape} does not match {what} shape {tuple(shape)}")


def check_probabilities(p, name="probs"):
    # min/max first: no temporary the input's size (a NaN fails both and is located below)
    if p.size and not (p.min() >= 0 and p.max() <= 1):
        bad = ~((p >= 0) & (p <= 1))
        pos = np.unravel_index(int(np.argmax(bad)), p.shape) if p.ndim else ()
        raise ValueError(f"{name}: probabilities must lie in [0, 1]; got {p[pos]!r} at index "
                         f"{tuple(int(i) for i in pos)}")


def check_out(out, shape, dtype, name="out"):
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name}: expected a NumPy array, got {type(out).__name__}")
    if out.shape != tuple(shape):
        raise ValueError(f"{name}: expected shape {tuple(shape)}, got {out.shape}")
    if out.dtype != dtype:
        raise ValueError(f"{name}: expected dtype {np.dtype(dtype).name}, got {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{name}: array is read-only")
    return out


def check_grad_output(g, shape, dtype, name="grad_output"):
    """None → None (ones); else an array of `shape` (or broadcastable to it) in dtype."""
    if g is None:
        return None
    arr = np.asarray(g)
    if arr.dtype.kind not in "biuf" and arr.dtype.name != "bfloat16":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {_dtype_name(arr.dtype)}")
    try:
        arr = np.broadcast_to(arr, tuple(shape))
    except ValueError:
        raise ValueError(f"{name}: shape {arr.shape} does not match the output shape {tuple(shape)}") from None
    return contiguous(arr, dtype)
