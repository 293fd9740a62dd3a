"""Adversarial logit families for the accuracy tests (fixed seeds, deterministic).

Every generator returns ``(logits, labels)``: ``logits`` of shape (N, C) in the requested
dtype (float32 or float64), ``labels`` int64 of shape (N,).  The values are generated in
float64 and rounded once to the dtype; the tests always compute the reference from the
rounded values, so rounding never matters for correctness.

Families
--------
scale1, scale1e2, scale1e4, scale1e30
    standard normal x scale.  Row 0's label is the row's argmax (smallest loss), row 1's the
    argmin (largest loss), the others random.
half_neginf
    each row has floor(C/2) entries set to -inf, never the target (whose logit stays finite);
    the finite entries are normal x 5.
near1e4
    1e4 + normal x spread (spread 1e-3 for float64; 4e-3 ~ 4 ulp(1e4) for float32 so that the
    rows contain several distinct float32 values); every 3rd row uses -1e4 instead.
    Catches implementations that form ``logsumexp(x) - x[y]`` (catastrophic cancellation).
confident
    the target logit exceeds every other logit by a margin in [20, 60] (losses ~ (C-1)e^-margin,
    i.e. down to ~1e-26).  Even rows: all other logits equal (v, v + margin); odd rows: random
    others (normal x 3), target = max(others) + margin.  Margins include the exact integers
    20, 40, 60.  Catches implementations that compute ``log(S)`` instead of
    ``log1p(S - 1)`` or ``p_y - 1`` by subtraction.
"""

from __future__ import annotations

import zlib

import numpy as np

FAMILIES = ("scale1", "scale1e2", "scale1e4", "scale1e30", "half_neginf", "near1e4", "confident")
DTYPES = (np.float32, np.float64)
DEFAULT_CS = (1, 2, 10, 1000)
SLOW_CS = (32000,)

_SCALES = {"scale1": 1.0, "scale1e2": 1e2, "scale1e4": 1e4, "scale1e30": 1e30}


def default_rows(C: int) -> int:
    """Rows per family, keeping the mpmath reference cheap."""
    if C <= 10:
        return 16
    if C <= 1000:
        return 6
    return 2


def _rng(family: str, dtype, C: int, salt: int = 0) -> np.random.Generator:
    key = zlib.crc32(f"{family}|{np.dtype(dtype).name}|{C}|{salt}".encode())
    return np.random.default_rng(key)


def make_family(family: str, dtype, C: int, n_rows: int | None = None):
    """Return ``(logits, labels)`` for one family / dtype / number of classes."""
    dtype = np.dtype(dtype)
    N = default_rows(C) if n_rows is None else n_rows
    rng = _rng(family, dtype, C)
    labels = rng.integers(0, C, size=N).astype(np.int64)

    if family in _SCALES:
        x = rng.standard_normal((N, C)) * _SCALES[family]
        x = x.astype(dtype)
        if N > 0:
            labels[0] = int(np.argmax(x[0]))
        if N > 1:
            labels[1] = int(np.argmin(x[1]))
        return x, labels

    if family == "half_neginf":
        x = (rng.standard_normal((N, C)) * 5.0).astype(dtype)
        k = C // 2
        for n in range(N):
            others = np.array([c for c in range(C) if c != labels[n]], dtype=np.int64)
            idx = rng.choice(others, size=k, replace=False) if k else others[:0]
            x[n, idx] = -np.inf
        return x, labels

    if family == "near1e4":
        spread = 1e-3 if dtype == np.float64 else 4e-3
        base = np.where(np.arange(N) % 3 == 2, -1e4, 1e4)[:, None]
        x = (base + rng.standard_normal((N, C)) * spread).astype(dtype)
        return x, labels

    if family == "confident":
        margins = rng.uniform(20.0, 60.0, size=N)
        fixed = (20.0, 40.0, 60.0, 20.0, 60.0, 40.0)
        margins[: min(N, len(fixed))] = fixed[: min(N, len(fixed))]
        x = np.empty((N, C), dtype=dtype)
        for n in range(N):
            y = labels[n]
            if n % 2 == 0:
                v = dtype.type(rng.standard_normal())
                row = np.full(C, v, dtype=dtype)
                row[y] = dtype.type(float(v) + margins[n])
            else:
                row = (rng.standard_normal(C) * 3.0).astype(dtype)
                others = np.delete(row, y)
                top = float(others.max()) if others.size else 0.0
                row[y] = dtype.type(top + margins[n])
            x[n] = row
        return x, labels

    raise ValueError(f"unknown family {family!r}")


def iter_cases(cs=DEFAULT_CS, families=FAMILIES, dtypes=DTYPES):
    """Yield ``(case_id, family, dtype, C)`` for parametrisation."""
    for fam in families:
        for dt in dtypes:
            for C in cs:
                yield f"{fam}-{np.dtype(dt).name}-C{C}", fam, np.dtype(dt), C
