"""Plain NumPy softmax cross-entropy (class-index labels, mean reduction): the baseline the
benchmarks compare stableloss against.

Written the way a careful NumPy user would: max-shifted log-sum-exp, computed in the input
dtype, one temporary of the logits' size, in-place ufuncs where they save a pass. It is a
speed baseline, not an accuracy reference (float32 sums, no log1p path for confident rows).
"""
import numpy as np


def ce_forward(x, t):
    """Mean cross-entropy of logits ``x`` (N, C) with integer targets ``t`` (N,)."""
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=1)
    # loss_n = m + log(s) - x[n, t_n]; summed in float64, rounded once to the input dtype
    loss = m[:, 0] + np.log(s) - x[rows, t]
    return x.dtype.type(loss.sum(dtype=np.float64) / n)


def ce_forward_backward(x, t):
    """(mean loss, gradient wrt x) with gradient (softmax(x) - onehot(t)) / N."""
    n = x.shape[0]
    rows = np.arange(n)
    m = x.max(axis=1, keepdims=True)
    g = np.subtract(x, m)
    np.exp(g, out=g)
    s = g.sum(axis=1, keepdims=True)
    loss = m[:, 0] + np.log(s[:, 0]) - x[rows, t]
    # scale each row by 1/(s*N) in one multiply per element
    np.multiply(g, (1.0 / (s * n)).astype(x.dtype, copy=False), out=g)
    g[rows, t] -= x.dtype.type(1.0 / n)
    return x.dtype.type(loss.sum(dtype=np.float64) / n), g
