"""Benchmark inputs: generated once per (kind, shape, dtype) with fixed seeds, then cached.

asv calls ``setup`` before every timed sample, so ``setup`` must only look arrays up. The
cache lives at module level; asv runs each parameter combination in its own process, so
it holds one (shape, dtype) at a time (entries of another shape or dtype are dropped
first, which bounds the memory when the suite is run in one process, e.g. by ``asv dev``
or by hand).

Generation is deliberately cheap (uniform draws, in-place arithmetic, no temporaries of
the full size where avoidable): the (65536, 1000) float64 logits take ~0.4 s, where
``standard_normal`` takes ~2 s. Peak-memory benchmarks measure the whole process, so
generators must not peak above the arrays they return.
"""
import zlib

import numpy as np

SEED = 20240601

# Shapes (N, C) of the softmax family, and shapes of the elementwise (BCE) losses. Written
# "NxC" so that asv's tables and plots show them compactly.
ROW_SHAPES = ["4096x1000", "256x32000", "65536x1000", "8x128256", "1000000x10"]
ELEMENTWISE_SHAPES = ["4000x1000", "1000000x10"]
DTYPES = ["float32", "float64"]
IMPLEMENTATIONS = ["stableloss", "numpy"]

# Logits are uniform on [-LOGIT_SPAN/2, LOGIT_SPAN/2): every row then takes stableloss's
# fast (bounded-exp) path, as typical training logits do. Probabilities for
# binary_cross_entropy are uniform on [P_LO, 1 - P_LO), away from the clamp.
LOGIT_SPAN = 16.0
P_LO = 1e-3

_CACHE = {}


def parse_shape(shape):
    """"4096x1000" -> (4096, 1000)."""
    return tuple(int(v) for v in shape.split("x"))


def _rng(kind, shape):
    # One stream per (kind, shape), independent of the dtype and of the order of calls.
    return np.random.default_rng([SEED, zlib.crc32(f"{kind}:{shape}".encode())])


def _cached(kind, shape, dtype, make):
    key = (kind, shape, dtype)
    try:
        return _CACHE[key]
    except KeyError:
        pass
    for other in [k for k in _CACHE if k[1] != shape]:
        del _CACHE[other]
    value = _CACHE[key] = make(_rng(kind, shape), parse_shape(shape), np.dtype(dtype))
    return value


def _uniform(rng, shape, dtype, lo, hi):
    x = rng.random(shape, dtype=dtype)      # [0, 1), in place from here on
    x *= dtype.type(hi - lo)
    x += dtype.type(lo)
    return x


def logits(shape, dtype):
    """Logits of shape (N, C), uniform on [-8, 8)."""
    return _cached("logits", shape, dtype,
                   lambda rng, s, dt: _uniform(rng, s, dt, -LOGIT_SPAN / 2, LOGIT_SPAN / 2))


def index_labels(shape):
    """Class indices of shape (N,), int64, uniform on [0, C)."""
    def make(rng, s, dt):
        return rng.integers(0, s[1], size=s[0], dtype=np.int64)
    return _cached("index_labels", shape, "int64", make)


def prob_labels(shape, dtype):
    """Dense probability labels of shape (N, C): uniform draws normalised per row."""
    def make(rng, s, dt):
        q = rng.random(s, dtype=dt)
        q /= q.sum(axis=-1, keepdims=True)
        return q
    return _cached("prob_labels", shape, dtype, make)


def log_probs(shape, dtype):
    """log_softmax of ``logits(shape, dtype)``, computed with NumPy (input of nll_loss)."""
    def make(rng, s, dt):
        x = logits(shape, dtype)
        m = x.max(axis=-1, keepdims=True)
        lp = np.subtract(x, m)
        e = np.exp(lp)
        lse = np.log(e.sum(axis=-1, keepdims=True))
        del e
        lp -= lse
        return lp
    return _cached("log_probs", shape, dtype, make)


def binary_labels(shape, dtype):
    """Hard binary targets {0, 1} of shape ``shape`` in ``dtype``."""
    def make(rng, s, dt):
        return rng.integers(0, 2, size=s, dtype=np.int8).astype(dt)
    return _cached("binary_labels", shape, dtype, make)


def probs(shape, dtype):
    """Probabilities of shape ``shape``, uniform on [1e-3, 1 - 1e-3)."""
    return _cached("probs", shape, dtype,
                   lambda rng, s, dt: _uniform(rng, s, dt, P_LO, 1.0 - P_LO))


def confident_logits(shape, dtype, margin=20.0):
    """Logits whose target (``index_labels(shape)``) exceeds every other logit by >= margin.

    The true per-row loss is then tiny (about C * exp(-margin - 8)), which is where
    ``lse - x_t`` cancels completely in float32.
    """
    def make(rng, s, dt):
        x = _uniform(rng, s, dt, -LOGIT_SPAN / 2, LOGIT_SPAN / 2)
        t = index_labels(shape)
        x[np.arange(s[0]), t] = dt.type(LOGIT_SPAN / 2 + margin)
        return x
    return _cached(f"confident_logits_{margin}", shape, dtype, make)
