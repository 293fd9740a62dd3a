"""Accuracy of float32 cross-entropy (index labels): ``track_`` benchmarks, one number each.

Inputs are float32 logits; the reference is computed in float64 from the same float32
values with the form that never cancels (docs/numerics.md):

    loss_n = (m - x_t) + log1p(s'),   s' = sum_{j != k*} exp(x_j - m)

whose float64 error (~1e-15 relative) is far below what float32 results can reach, so
the numbers below are the float32 results' own errors.

Logit families:
- ``random``: uniform on [-8, 8), random targets (losses around log C).
- ``confident``: the target logit exceeds every other one by 20, so the true loss is
  tiny (~1e-9 for C = 1000). ``lse - x_t`` in float32 returns 0 there (relative error 1),
  and ``p_t - 1`` loses the target's gradient entry in the same way.
"""
import numpy as np

from . import _numpy_ref as ref
from ._data import IMPLEMENTATIONS, confident_logits, index_labels, logits
from ._impls import kernel

import stableloss as sl

_REFERENCE = {}


def _reference(x32, t):
    """(per-row losses, mean loss, gradient of the mean) in float64, for float32 logits."""
    key = (x32.shape, x32.ctypes.data)
    if key in _REFERENCE:
        return _REFERENCE[key]
    _REFERENCE.clear()
    x = x32.astype(np.float64)
    n = x.shape[0]
    rows = np.arange(n)
    k = x.argmax(axis=1)
    m = x[rows, k]
    e = np.exp(x - m[:, None])
    e[rows, k] = 0.0
    s1 = e.sum(axis=1)                          # s', without the max's own term
    losses = (m - x[rows, t]) + np.log1p(s1)
    # gradient of the mean: (p - onehot(t)) / N, with p_k* = 1 / (1 + s'); where the
    # target holds the maximum, p_t - 1 = -s' / (1 + s') is formed without cancelling
    g = e / (1.0 + s1)[:, None]
    g[rows, k] = 1.0 / (1.0 + s1)
    at_max = t == k
    g[rows[~at_max], t[~at_max]] -= 1.0
    g[rows[at_max], t[at_max]] = -s1[at_max] / (1.0 + s1[at_max])
    g /= n
    value = _REFERENCE[key] = (losses, float(np.sum(losses) / n), g)
    return value


def _max_rel(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))


class CrossEntropyFloat32Accuracy:
    params = [["random", "confident"], ["4096x1000", "256x32000"], IMPLEMENTATIONS]
    param_names = ["logits", "shape", "implementation"]
    unit = "relative error"
    rounds = 1
    timeout = 120

    def setup(self, family, shape, implementation):
        make = logits if family == "random" else confident_logits
        self.x = make(shape, "float32")
        self.t = index_labels(shape)
        self.ref_losses, self.ref_mean, self.ref_grad = _reference(self.x, self.t)
        self.losses = (
            (lambda x, t: sl.softmax_cross_entropy(x, t, reduction="none"))
            if implementation == "stableloss" else ref.ce_index_losses
        )
        self.fb = kernel(implementation, "ce_index_fb")

    def track_row_loss_max_rel_error(self, family, shape, implementation):
        """Largest relative error of the per-row losses (reduction="none")."""
        return _max_rel(self.losses(self.x, self.t), self.ref_losses)

    def track_mean_loss_rel_error(self, family, shape, implementation):
        """Relative error of the mean loss returned by the forward+backward call."""
        value, _ = self.fb(self.x, self.t)
        return _max_rel(value, self.ref_mean)

    def track_grad_max_rel_error(self, family, shape, implementation):
        """Largest elementwise relative error of the gradient (no entry is 0 here)."""
        _, g = self.fb(self.x, self.t)
        return _max_rel(g, self.ref_grad)
