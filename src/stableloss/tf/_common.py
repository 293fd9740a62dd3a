"""Shared glue of the TensorFlow mirror: input conversion as TF converts, TF's dtype
rules and error types, and the adapter that registers a mirror function's gradient.

Nothing here imports TensorFlow. The math is always the core's (stableloss._dispatch).
"""
from __future__ import annotations


import numpy as np

from .. import _config, _grad
from .errors import InvalidArgumentError, invalid_argument

_FLOAT_NAMES = {"float16": "half", "float32": "float", "float64": "double", "bfloat16": "bfloat16"}
# the dtypes a TF floating op accepts (attr 'T'), in TF's order per op family
FLOATS = ("half", "bfloat16", "float", "double")
FLOATS_ISFINITE = ("bfloat16", "half", "float", "double")


def tf_dtype_name(dt):
    """TensorFlow's name of a NumPy dtype ('float' for float32, 'double' for float64, ...)."""
    dt = np.dtype(dt)
    return _FLOAT_NAMES.get(dt.name, dt.name)


def is_tf_float(dt):
    return np.dtype(dt).name in _FLOAT_NAMES


def to_numpy(x):
    """An array as TensorFlow's convert_to_tensor would type it.

    NumPy arrays and NumPy scalars keep their dtype; tf.Tensors (anything with
    ``.numpy()``) are converted with it; Python floats / lists of floats become float32
    and Python ints int32 (TF's defaults), bools bool. Never copies a NumPy array.
    """
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "OSUV" and x.dtype.name != "bfloat16":
            _refuse(x)
        # TF holds native byte order: a big-endian array converts to the same values
        return x if x.dtype.isnative else x.astype(x.dtype.newbyteorder("="))
    if isinstance(x, np.generic):
        return np.asarray(x)
    numpy = getattr(x, "numpy", None)
    if numpy is not None and callable(numpy) and not isinstance(x, (list, tuple)):
        return np.asarray(numpy())
    a = np.asarray(x)
    if a.dtype.kind in "OSUV" and a.dtype.name != "bfloat16":
        _refuse(a, x)
    if a.dtype == np.float64:
        return a.astype(np.float32)
    if a.dtype == np.int64:
        if a.size and (a.max() > np.iinfo(np.int32).max or a.min() < np.iinfo(np.int32).min):
            return a
        return a.astype(np.int32)
    return a


def _refuse(a, x=None):
    """What TF does with values no float op takes: object arrays (and None) fail to convert
    (ValueError); strings become string tensors that the ops refuse (InvalidArgumentError)."""
    if a.dtype.kind in "OV":
        what = "a value (None) with an unsupported type (<class 'NoneType'>)" if x is None and a.ndim == 0 \
            and a.item() is None else f"a NumPy array of dtype {a.dtype}"
        raise ValueError(f"Failed to convert {what} to a Tensor")
    raise invalid_argument(f"Value for attr 'T' of string is not in the list of allowed values "
                           f"(a string tensor: {a.dtype})")


def is_tensor(x):
    """A tf.Tensor-like (anything with ``.numpy()`` that is not a NumPy array or a list)."""
    return (not isinstance(x, (np.ndarray, np.generic, list, tuple))
            and callable(getattr(x, "numpy", None)))


def check_float(a, allowed=FLOATS, attr="T"):
    """TF's op-attr check: a float dtype in `allowed`, else InvalidArgumentError."""
    if tf_dtype_name(a.dtype) not in allowed:
        raise invalid_argument(f"Value for attr '{attr}' of {tf_dtype_name(a.dtype)} is not in the list of "
                               f"allowed values: {', '.join(allowed)}")
    return a


def cast_like(a, dt, what="Mul", index=1):
    """TF's no-cast binary op: `a` must already have dtype `dt`."""
    if a.dtype != dt:
        raise invalid_argument(f"cannot compute {what} as input #{index}(zero-based) was expected to be a "
                               f"{tf_dtype_name(dt)} tensor but is a {tf_dtype_name(a.dtype)} tensor")
    return a


def shape_str(shape):
    """TensorShape's str: (2, 3), (2,), ()."""
    shape = tuple(int(s) for s in shape)
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


def dims_str(shape):
    """TF kernels' shape format: [2,3]."""
    return "[" + ",".join(str(int(s)) for s in shape) + "]"


def user_stacklevel():
    """The guard's `stacklevel` that makes a MisuseWarning point at the first frame
    outside stableloss (the user's call), however deep the mirror's call chain is. The
    core's rule, counted from this helper's frame, which stands in for the guard's own."""
    return _config.user_stacklevel()


def register(f, impl, names):
    """Register mirror `f` with the gradient registry (impl(args, wrt, grad_output, grad_out))."""
    _grad.register(f, impl, names)
    return f


def no_grad_out(grad_out):
    if grad_out:
        raise ValueError("grad_out: the TensorFlow mirror returns new gradient arrays; "
                         "grad_out is not supported here")


__all__ = ["InvalidArgumentError", "invalid_argument", "to_numpy", "check_float", "cast_like",
           "tf_dtype_name", "shape_str", "dims_str", "register"]
