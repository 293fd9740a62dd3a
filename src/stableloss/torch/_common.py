"""Shared translation helpers of the PyTorch mirror: tensors in and out, torch's
reduction rules and warnings, torch's error types and texts.

Nothing here computes a loss: the maths is the core's (:mod:`stableloss._dispatch`).
"""
from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import _validation as V

# torch's names for dtypes, as its error messages print them
_TORCH_NAMES = {"int64": "Long", "int32": "Int", "int16": "Short", "int8": "Char", "uint8": "Byte",
                "bool": "Bool", "float32": "Float", "float64": "Double", "float16": "Half",
                "bfloat16": "BFloat16", "uint16": "UInt16", "uint32": "UInt32", "uint64": "UInt64",
                "complex64": "ComplexFloat", "complex128": "ComplexDouble"}


def torch_name(dtype):
    dt = np.dtype(dtype)
    return _TORCH_NAMES.get(dt.name, dt.name)


def _torch():
    return sys.modules.get("torch")


def is_tensor(a):
    t = _torch()
    return t is not None and isinstance(a, t.Tensor)


def to_numpy(a, name):
    """A CPU torch.Tensor as a NumPy array (zero-copy when no grad is attached; bfloat16
    through ml_dtypes); anything else unchanged (the core calls np.asarray)."""
    if not is_tensor(a):
        return a
    torch = _torch()
    if a.device.type != "cpu":
        raise TypeError(f"{name}: stableloss computes on the CPU; got a tensor on {a.device} "
                        f"(move it with .cpu())")
    if a.requires_grad:
        a = a.detach()
    if a.is_conj() or a.is_neg():
        a = a.resolve_conj().resolve_neg()
    if a.dtype == torch.bfloat16:
        import ml_dtypes
        return a.view(torch.int16).numpy().view(ml_dtypes.bfloat16)
    return a.numpy()


def to_tensor(r):
    """NumPy result -> torch.Tensor (zero-copy for arrays)."""
    torch = _torch()
    arr = np.asarray(r)
    if arr.dtype.name == "bfloat16":
        return torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(torch.bfloat16)
    if arr.ndim == 0:
        return torch.tensor(arr.item(), dtype=getattr(torch, arr.dtype.name))
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


class Args:
    """The bound arguments of a mirror call with every tensor turned into NumPy;
    `wrap` gives results back as tensors when the main input was a tensor."""

    def __init__(self, a, names, main="input"):
        self.tensor_in = is_tensor(a.get(main))
        self.a = dict(a)
        for n in names:
            if n in self.a and self.a[n] is not None:
                self.a[n] = to_numpy(self.a[n], n)
                dt = getattr(self.a[n], "dtype", None) or np.asarray(self.a[n]).dtype
                if dt.kind in "OSUVMmc" and dt.name != "bfloat16":   # no complex kernels; torch holds no others
                    raise TypeError(f"{n}: expected a real numeric tensor or array, got dtype {dt}")
            elif n == main or n in ("target", "targets"):
                # torch: "argument 'input' (position 1) must be Tensor, not NoneType"
                raise TypeError(f"{n}: expected a tensor or an array, got None")

    def __getitem__(self, k):
        return self.a[k]

    def wrap(self, r):
        return to_tensor(r) if self.tensor_in else r


def np_dtype(d):
    """A torch.dtype, NumPy dtype or name -> NumPy dtype (bfloat16 via ml_dtypes)."""
    s = str(d)
    if s.startswith("torch."):
        s = s[6:]
        if s == "bfloat16":
            import ml_dtypes
            return np.dtype(ml_dtypes.bfloat16)
        return np.dtype({"float": "float32", "double": "float64", "half": "float16",
                         "long": "int64", "int": "int32"}.get(s, s))
    return np.dtype(d)


def dtype_of(x):
    return np.asarray(x).dtype


# ------------------------------------------------------------------ reductions
def legacy_reduction(size_average, reduce, emit_warning=True):
    """torch.nn._reduction.legacy_get_string: None counts as True."""
    sa = True if size_average is None else size_average
    rd = True if reduce is None else reduce
    ret = "mean" if (sa and rd) else ("sum" if rd else "none")
    if emit_warning:
        warnings.warn(f"size_average and reduce args will be deprecated, please use reduction='{ret}' instead.",
                      UserWarning, stacklevel=4)
    return ret


def check_reduction(reduction, allowed=("none", "mean", "sum")):
    """torch.nn._reduction.get_enum: 'elementwise_mean' warns and means 'mean'."""
    if reduction == "elementwise_mean":
        warnings.warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.",
                      UserWarning, stacklevel=4)
        return "mean"
    if not isinstance(reduction, str) or reduction not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return reduction


def resolve_reduction(a):
    if a.get("size_average") is not None or a.get("reduce") is not None:
        return legacy_reduction(a["size_average"], a["reduce"])
    return check_reduction(a["reduction"])


# ------------------------------------------------------------------ argument checks
def check_int(v, name, fn, pos):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{fn}(): argument '{name}' (position {pos}) must be int, not {type(v).__name__}")
    return int(v)


def check_dim(dim, ndim):
    """torch's dimension wrap: IndexError 'Dimension out of range (...)'."""
    lo, hi = (-1, 0) if ndim == 0 else (-ndim, ndim - 1)
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"dim: expected an int, got {type(dim).__name__}")
    if not lo <= dim <= hi:
        raise IndexError(f"Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})")
    return int(dim) % max(ndim, 1)


def require_float(x, kernel, what="input"):
    """torch's kernels refuse integer/bool inputs with NotImplementedError."""
    dt = np.asarray(x).dtype
    if dt.kind in "biu":
        raise NotImplementedError(f'"{kernel}" not implemented for \'{torch_name(dt)}\'')
    return dt


def size_str(shape):
    return f"torch.Size({list(shape)})"


def relabel(exc_value):
    """The core's LabelError worded as torch words it."""
    return V.LabelError(f"Target {exc_value.value} is out of bounds.", exc_value.value, exc_value.index)
