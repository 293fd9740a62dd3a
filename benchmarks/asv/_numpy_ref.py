"""Plain NumPy versions of the stableloss kernels: the ``implementation="numpy"`` baseline.

Written the way a careful NumPy user would: the class axis is the last one, every
softmax-family function is max-shifted (``exp(x - max)``, so nothing overflows), everything
is computed in the input dtype, reductions over rows are summed in float64 and rounded
once (as stableloss does), and in-place ufuncs are used wherever they save a temporary or
a pass. Defaults match stableloss's: ``reduction="mean"``, no weights, BCE on
probabilities with PyTorch's clamp policy.

These are speed baselines, not accuracy references: float32 sums, no ``log1p`` path for
confident rows (``accuracy.py`` measures what that costs).
"""
import numpy as np


def _scalar(dtype, value):
    return np.dtype(dtype).type(value)


# --------------------------------------------------------------------------------------
# row-wise (softmax family), x of shape (N, C)

def softmax(x):
    m = x.max(axis=-1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=-1, keepdims=True)
    np.reciprocal(s, out=s)
    e *= s
    return e


def log_softmax(x):
    m = x.max(axis=-1, keepdims=True)
    y = np.subtract(x, m)
    e = np.exp(y)
    s = e.sum(axis=-1, keepdims=True)
    np.log(s, out=s)
    y -= s
    return y


def logsumexp(x):
    m = x.max(axis=-1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=-1)
    np.log(s, out=s)
    s += m[..., 0]
    return s


# --------------------------------------------------------------------------------------
# cross-entropy with class-index labels t of shape (N,), mean over rows

def _ce_index_rows(x, t):
    """(per-row losses, exp(x - m), s) with loss_n = m + log(s) - x[n, t_n]."""
    rows = np.arange(x.shape[0])
    m = x.max(axis=-1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=-1)
    loss = np.log(s)
    loss += m[:, 0]
    loss -= x[rows, t]
    return loss, e, s


def ce_index_losses(x, t):
    """Per-row losses (``reduction="none"``)."""
    return _ce_index_rows(x, t)[0]


def ce_index_forward(x, t):
    loss, _, _ = _ce_index_rows(x, t)
    return _scalar(x.dtype, loss.sum(dtype=np.float64) / x.shape[0])


def ce_index_forward_backward(x, t):
    """(mean loss, gradient (softmax(x) - onehot(t)) / N)."""
    n = x.shape[0]
    loss, g, s = _ce_index_rows(x, t)
    # one multiply per element: g_nj *= 1 / (s_n * N)
    scale = np.multiply(s, n)
    np.reciprocal(scale, out=scale)
    g *= scale[:, None]
    g[np.arange(n), t] -= _scalar(x.dtype, 1.0 / n)
    return _scalar(x.dtype, loss.sum(dtype=np.float64) / n), g


# --------------------------------------------------------------------------------------
# cross-entropy with probability labels q of shape (N, C), mean over rows
#   loss_n = -sum_c q_c lp_c = lse_n * sum_c q_c - sum_c q_c x_c

def _ce_prob_rows(x, q):
    m = x.max(axis=-1, keepdims=True)
    e = np.subtract(x, m)
    np.exp(e, out=e)
    s = e.sum(axis=-1)
    qs = q.sum(axis=-1)
    loss = np.log(s)
    loss += m[:, 0]
    loss *= qs
    loss -= np.einsum("ij,ij->i", q, x)
    return loss, e, s, qs


def ce_prob_forward(x, q):
    loss, _, _, _ = _ce_prob_rows(x, q)
    return _scalar(x.dtype, loss.sum(dtype=np.float64) / x.shape[0])


def ce_prob_forward_backward(x, q):
    """(mean loss, gradient (p * sum(q) - q) / N) with respect to the logits."""
    n = x.shape[0]
    loss, g, s, qs = _ce_prob_rows(x, q)
    qs /= s
    g *= qs[:, None]        # p_j * sum(q)
    g -= q
    g *= _scalar(x.dtype, 1.0 / n)
    return _scalar(x.dtype, loss.sum(dtype=np.float64) / n), g


# --------------------------------------------------------------------------------------
# nll_loss on log-probabilities lp of shape (N, C), index labels t, mean over rows

def nll_forward(lp, t):
    picked = lp[np.arange(lp.shape[0]), t]
    return _scalar(lp.dtype, -picked.sum(dtype=np.float64) / lp.shape[0])


def nll_forward_backward(lp, t):
    n = lp.shape[0]
    rows = np.arange(n)
    loss = _scalar(lp.dtype, -lp[rows, t].sum(dtype=np.float64) / n)
    g = np.zeros_like(lp)
    g[rows, t] = _scalar(lp.dtype, -1.0 / n)
    return loss, g


# --------------------------------------------------------------------------------------
# sigmoid_cross_entropy (BCE with logits), elementwise, mean over all elements
#   loss = max(x, 0) - x z + log1p(exp(-|x|));  d/dx = sigmoid(x) - z

def _bce_logits_terms(x, z):
    """(elementwise loss, exp(-|x|), a spare buffer of x's shape and dtype)."""
    e = np.abs(x)
    np.negative(e, out=e)
    np.exp(e, out=e)                    # exp(-|x|), never overflows
    loss = np.log1p(e)
    b = np.maximum(x, 0)
    loss += b
    np.multiply(x, z, out=b)
    loss -= b
    return loss, e, b


def bce_logits_forward(x, z):
    loss, _, _ = _bce_logits_terms(x, z)
    return _scalar(x.dtype, loss.sum(dtype=np.float64) / x.size)


def bce_logits_forward_backward(x, z):
    loss, e, g = _bce_logits_terms(x, z)
    value = _scalar(x.dtype, loss.sum(dtype=np.float64) / x.size)
    # sigmoid(x) = 1 / (1 + exp(-|x|)) for x >= 0, exp(-|x|) / (1 + exp(-|x|)) for x < 0
    np.add(e, 1, out=g)
    np.reciprocal(g, out=g)
    np.multiply(g, e, out=g, where=x < 0)
    g -= z
    g *= _scalar(x.dtype, 1.0 / x.size)
    return value, g


# --------------------------------------------------------------------------------------
# binary_cross_entropy on probabilities p (policy "clamp", as PyTorch), mean over elements
#   loss = -[z max(log p, -100) + (1 - z) max(log(1 - p), -100)]
#   d/dp = (p - z) / max(p (1 - p), 1e-12)

def _bce_probs_loss(p, z):
    a = np.log(p)
    np.maximum(a, -100, out=a)
    b = np.negative(p)
    np.log1p(b, out=b)                  # log(1 - p)
    np.maximum(b, -100, out=b)
    a -= b                              # z a + (1 - z) b = b + z (a - b)
    a *= z
    a += b
    return a, b


def bce_probs_forward(p, z):
    a, _ = _bce_probs_loss(p, z)
    return _scalar(p.dtype, -a.sum(dtype=np.float64) / p.size)


def bce_probs_forward_backward(p, z):
    a, d = _bce_probs_loss(p, z)
    value = _scalar(p.dtype, -a.sum(dtype=np.float64) / p.size)
    np.subtract(1, p, out=d)
    d *= p
    np.maximum(d, _scalar(np.float32, 1e-12), out=d)
    g = np.subtract(p, z, out=a)
    g /= d
    g *= _scalar(p.dtype, 1.0 / p.size)
    return value, g
