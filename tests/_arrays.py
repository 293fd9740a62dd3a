"""Hostile array layouts for the stableloss tests.

Every generator here takes an ordinary C-contiguous, native-byte-order array ``a`` and returns an
array (or a Python list) that holds *the same values* but is laid out in a way that breaks naive
kernels: strided, Fortran-ordered, negatively strided, read-only, byte-swapped, misaligned,
zero-stride broadcast.  A correct library must give the same answer for each of them as for
``a`` itself (and must never write to any of them).

The model is Bottleneck's ``tests/util.py``: one place that knows how to build the awkward arrays,
so that every test can iterate over the same list by name.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "LAYOUTS",
    "ARRAY_LAYOUTS",
    "make_layout",
    "layout_ok",
    "strided",
    "strided_last",
    "fortran",
    "readonly",
    "byteswapped",
    "negative_stride",
    "swapped_axes",
    "misaligned",
    "readonly_strided",
    "as_list",
    "broadcast_rows",
    "broadcast_cols",
    "non_native",
]


def _native(a):
    a = np.asarray(a)
    # np.asarray(order="C"), not np.ascontiguousarray: the latter turns 0-d into shape (1,)
    return np.asarray(a, dtype=a.dtype.newbyteorder("="), order="C")


def strided(a):
    """Every axis strided: ``a`` embedded in a 2x larger array and taken back with ``::2``."""
    a = _native(a)
    if a.ndim == 0:
        return a.copy()
    big = np.full(tuple(2 * s for s in a.shape), _poison(a.dtype), dtype=a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def strided_last(a):
    """Only the last axis strided (``x[:, ::2]`` of a wider array); the poison lies between."""
    a = _native(a)
    if a.ndim == 0:
        return a.copy()
    big = np.full(a.shape[:-1] + (2 * a.shape[-1],), _poison(a.dtype), dtype=a.dtype)
    view = big[..., ::2]
    view[...] = a
    return view


def fortran(a):
    return np.asfortranarray(_native(a))


def readonly(a):
    b = _native(a).copy()
    b.flags.writeable = False
    return b


def non_native(dtype):
    """The byte-swapped (non-native) spelling of ``dtype``, e.g. '>f8' on a little-endian CPU."""
    dtype = np.dtype(dtype)
    if dtype.itemsize == 1:
        return dtype
    return dtype.newbyteorder("S") if dtype.isnative else dtype


def byteswapped(a):
    """Same values stored in the non-native byte order ('>f4', '>f8', '>i8' on x86)."""
    a = _native(a)
    return a.astype(non_native(a.dtype))


def negative_stride(a):
    """A view with a negative stride along the last axis."""
    a = _native(a)
    if a.ndim == 0:
        return a.copy()
    rev = np.ascontiguousarray(a[..., ::-1])
    return rev[..., ::-1]


def swapped_axes(a):
    """First and last axes swapped in memory (``c.swapaxes(0, -1)`` of a contiguous copy)."""
    a = _native(a)
    if a.ndim < 2:
        return a.copy()
    c = np.ascontiguousarray(np.swapaxes(a, 0, -1))
    return np.swapaxes(c, 0, -1)


def misaligned(a):
    """Same values in a buffer whose address is not a multiple of the itemsize."""
    a = _native(a)
    if a.dtype.itemsize == 1:
        return a.copy()
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    b = buf[1:].view(a.dtype).reshape(a.shape)
    b[...] = a
    return b


def readonly_strided(a):
    b = strided(a)
    b.flags.writeable = False
    return b


def as_list(a):
    return _native(a).tolist()


def _poison(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return np.nan
    if dtype.kind in "iu":
        return np.iinfo(dtype).max
    if dtype.kind == "b":
        return True
    return 0


#: name -> generator.  "list" only keeps the values (not the dtype) for float64 / int64 input.
LAYOUTS = {
    "strided": strided,
    "strided_last": strided_last,
    "fortran": fortran,
    "readonly": readonly,
    "byteswapped": byteswapped,
    "negative_stride": negative_stride,
    "swapped_axes": swapped_axes,
    "misaligned": misaligned,
    "readonly_strided": readonly_strided,
    "list": as_list,
}

#: the layouts that are ndarrays (every one but the Python list)
ARRAY_LAYOUTS = [k for k in LAYOUTS if k != "list"]


def layout_ok(name, a):
    """Whether layout ``name`` keeps ``a``'s dtype (a Python list does so only for 64-bit)."""
    a = np.asarray(a)
    if name == "list":
        return a.dtype in (np.dtype(np.float64), np.dtype(np.int64), np.dtype(bool))
    return True


def make_layout(a, name):
    out = LAYOUTS[name](a)
    if name != "list":
        np.testing.assert_array_equal(np.asarray(out), np.asarray(a))  # the generator's own check
        if name == "byteswapped" and np.asarray(a).dtype.itemsize > 1:
            assert not out.dtype.isnative
        if name == "misaligned" and np.asarray(a).dtype.itemsize > 1:
            assert not out.flags.aligned or out.__array_interface__["data"][0] % out.dtype.itemsize
    return out


def broadcast_rows(row, n):
    """Zero stride along every leading axis: ``n`` copies of one row (``row.ndim`` >= 1)."""
    row = _native(row)
    b = np.broadcast_to(row, (n,) + row.shape)
    assert b.strides[0] == 0
    return b


def broadcast_cols(col, c):
    """Zero stride along the last (class) axis: every row is constant."""
    col = _native(col)
    b = np.broadcast_to(col[..., None], col.shape + (c,))
    assert b.strides[-1] == 0
    return b
