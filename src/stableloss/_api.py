"""The framework-neutral public functions: each one is validate -> dispatch -> kernel.

All the work happens in :mod:`stableloss._dispatch` (and the checks in
:mod:`stableloss._validation`); these wrappers fix the signatures and the docs and
register each function's gradient with :mod:`stableloss._grad`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Literal, Tuple, overload

from . import _dispatch as D
from ._grad import differentiable

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ._typing import Axis, FloatArray, FloatScalar, LossValue, Policy, Reduced, Reduction


def _args(**kw: Any) -> Dict[str, Any]:
    return kw


@differentiable("x", impl=D.logsumexp_impl)
def logsumexp(x: ArrayLike, axis: Axis | List[int] = -1, keepdims: bool = False, *,
              out: NDArray[Any] | None = None, n_threads: int | None = None) -> FloatArray:
    r"""Log of the sum of exponentials along `axis`, without overflow or cancellation.

    Parameters
    ----------
    x : array_like
        Input; float32/float64 kept, float16 computed in float32, ints promoted to float64.
    axis : int, tuple of ints, or None; default -1
        The axis (or axes, flattened into one row; None = all) to reduce.
    keepdims : bool, default False
    out : ndarray, optional
        Array of the result's shape and dtype to write into.

    Returns
    -------
    ndarray of x's shape without `axis` (with a 1 there if `keepdims`).

    Notes
    -----
    With :math:`m = \max_j x_j` attained at :math:`k^*`,
    :math:`\mathrm{lse}(x) = m + \operatorname{log1p}\big(\sum_{j \ne k^*} e^{x_j - m}\big)`
    (Blanchard, Higham & Higham 2021): exact to a few ulp even when the result is
    near 0. A row with NaN gives NaN; with +inf, +inf; all -inf (or empty), -inf.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> x = np.array([0.0, -50.0])
    >>> float(np.log(np.exp(x).sum()))         # naive: the e^-50 is lost
    0.0
    >>> float(sl.logsumexp(x))                  # true value 1.9287498479639178e-22
    1.9287498479639178e-22
    """
    return D.logsumexp_impl(_args(x=x, axis=axis, keepdims=keepdims, out=out, n_threads=n_threads), (), None)[0]


@differentiable("x", impl=D.softmax_impl)
def softmax(x: ArrayLike, axis: int = -1, *, out: NDArray[Any] | None = None,
            n_threads: int | None = None) -> FloatArray:
    r"""Softmax along `axis`: :math:`p_j = e^{x_j - \mathrm{lse}(x)}`.

    Rows with NaN, +inf, or only -inf give NaN (as PyTorch). See :func:`logsumexp`.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> sl.softmax(np.array([1000.0, 0.0]))     # naive np.exp overflows
    array([1., 0.])
    """
    return D.softmax_impl(_args(x=x, axis=axis, out=out, n_threads=n_threads), (), None)[0]


@differentiable("x", impl=D.log_softmax_impl)
def log_softmax(x: ArrayLike, axis: int = -1, *, out: NDArray[Any] | None = None,
                n_threads: int | None = None) -> FloatArray:
    r"""Log-softmax along `axis`: :math:`x_j - \mathrm{lse}(x)`, computed as
    :math:`(x_j - m) - \operatorname{log1p}(s')` so the winning entry keeps its digits.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> x = np.array([40.0, 0.0])
    >>> float(np.log(np.exp(x) / np.exp(x).sum())[0])   # naive: softmax rounds to 1
    0.0
    >>> float(sl.log_softmax(x)[0])                    # -e^-40 (1 - ...)
    -4.248354255291589e-18
    """
    return D.log_softmax_impl(_args(x=x, axis=axis, out=out, n_threads=n_threads), (), None)[0]


@overload
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = ...,
                          weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                          label_smoothing: float = ..., reduction: Reduced = ..., z_loss: float = ...,
                          return_lse: Literal[False] = ..., out: NDArray[Any] | None = ...,
                          n_threads: int | None = ...) -> FloatScalar: ...
@overload
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = ...,
                          weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                          label_smoothing: float = ..., reduction: Literal["none"], z_loss: float = ...,
                          return_lse: Literal[False] = ..., out: NDArray[Any] | None = ...,
                          n_threads: int | None = ...) -> FloatArray: ...
@overload
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = ...,
                          weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                          label_smoothing: float = ..., reduction: Reduced = ..., z_loss: float = ...,
                          return_lse: Literal[True], out: NDArray[Any] | None = ...,
                          n_threads: int | None = ...) -> Tuple[FloatScalar, FloatArray]: ...
@overload
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = ...,
                          weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                          label_smoothing: float = ..., reduction: Literal["none"], z_loss: float = ...,
                          return_lse: Literal[True], out: NDArray[Any] | None = ...,
                          n_threads: int | None = ...) -> Tuple[FloatArray, FloatArray]: ...
@overload
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = ...,
                          weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                          label_smoothing: float = ..., reduction: Reduction = ..., z_loss: float = ...,
                          return_lse: bool = ..., out: NDArray[Any] | None = ...,
                          n_threads: int | None = ...) -> LossValue | Tuple[LossValue, FloatArray]: ...
@differentiable("logits", "labels", impl=D.softmax_cross_entropy_impl)
def softmax_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, axis: int = -1,
                          weight: ArrayLike | None = None, ignore_index: int | None = None,
                          label_smoothing: float = 0.0, reduction: Reduction = "mean", z_loss: float = 0.0,
                          return_lse: bool = False, out: NDArray[Any] | None = None,
                          n_threads: int | None = None) -> LossValue | Tuple[LossValue, FloatArray]:
    r"""Softmax cross-entropy from logits, fused and exact.

    Parameters
    ----------
    logits : array_like, classes along `axis`
    labels : array_like
        Integer class indices of shape ``logits.shape`` without `axis`, or
        probabilities of ``logits.shape`` (the shape decides, as in PyTorch).
    axis : int, default -1
    weight : array_like of shape (C,), optional
        Per-class weights.
    ignore_index : int, optional
        Index labels equal to this contribute nothing (loss 0, gradient 0) and are left
        out of the mean's denominator.
    label_smoothing : float in [0, 1], default 0
        PyTorch's definition (see ``docs/api.md``).
    reduction : {"mean", "sum", "none"}
        "mean" for index labels is :math:`\sum_n \ell_n / \sum_n w_{y_n}` over
        non-ignored rows (NaN if that is 0); for probability labels it divides by the
        number of rows.
    z_loss : float >= 0, default 0
        Index labels only: adds PaLM's auxiliary :math:`z\,\mathrm{lse}_n^2` to the loss of
        every non-ignored row (not multiplied by the class weight; reduced with the loss,
        "mean" dividing by the same denominator), with its gradient
        :math:`2 z\,\mathrm{lse}_n\,p_j`, in the same fused pass.
    return_lse : bool, default False
        Index labels only: return ``(loss, lse)``, ``lse`` the per-row logsumexp of the
        logits (shape of the labels, result dtype) from the same pass. Ignored rows get
        their logsumexp too; rows whose loss is NaN get NaN. Under ``value_and_grad``
        the value is this pair and the gradient is the loss's.
    out : ndarray, optional
        For ``reduction="none"``: where to write the per-row losses.

    Raises
    ------
    LabelError
        A label outside [0, C) that is not `ignore_index` (names the value and index).
    TypeError
        Non-integer index labels; complex/object logits.
    ValueError
        Shapes, weights, reduction or label_smoothing that do not fit.

    Notes
    -----
    Per row, with :math:`m` the maximum at :math:`k^*`:
    :math:`\ell = (m - x_t) + \operatorname{log1p}\big(\sum_{j\ne k^*} e^{x_j-m}\big)`,
    two non-negative terms. When the target holds the maximum (a confident-correct
    row) the loss is the log1p term alone and is returned with full relative accuracy
    (e.g. 1e-20), where PyTorch, TensorFlow, SciPy and NumPy return exactly 0.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> x = np.array([[50.0, 0.0, 0.0]]); t = np.array([0])
    >>> naive = -np.log(np.exp(x) / np.exp(x).sum(axis=1, keepdims=True))[0, 0]
    >>> float(naive), float(sl.softmax_cross_entropy(x, t))   # true: 2 e^-50
    (-0.0, 3.8574996959278356e-22)
    """
    return D.softmax_cross_entropy_impl(
        _args(logits=logits, labels=labels, axis=axis, weight=weight, ignore_index=ignore_index,
              label_smoothing=label_smoothing, reduction=reduction, z_loss=z_loss, return_lse=return_lse,
              out=out, n_threads=n_threads), (), None)[0]


@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., reduction: Reduced = ..., z_loss: float = ...,
                         return_lse: Literal[False] = ..., chunk_size: int | None = ...,
                         out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatScalar: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., reduction: Literal["none"], z_loss: float = ...,
                         return_lse: Literal[False] = ..., chunk_size: int | None = ...,
                         out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatArray: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., reduction: Reduced = ..., z_loss: float = ...,
                         return_lse: Literal[True], chunk_size: int | None = ...,
                         out: NDArray[Any] | None = ...,
                         n_threads: int | None = ...) -> Tuple[FloatScalar, FloatArray]: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., reduction: Literal["none"], z_loss: float = ...,
                         return_lse: Literal[True], chunk_size: int | None = ...,
                         out: NDArray[Any] | None = ...,
                         n_threads: int | None = ...) -> Tuple[FloatArray, FloatArray]: ...
@overload
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = ..., ignore_index: int | None = ...,
                         label_smoothing: float = ..., reduction: Reduction = ..., z_loss: float = ...,
                         return_lse: bool = ..., chunk_size: int | None = ...,
                         out: NDArray[Any] | None = ...,
                         n_threads: int | None = ...) -> LossValue | Tuple[LossValue, FloatArray]: ...
@differentiable("hidden", "weight", "bias", impl=D.linear_cross_entropy_impl)
def linear_cross_entropy(hidden: ArrayLike, weight: ArrayLike, labels: ArrayLike, bias: ArrayLike | None = None,
                         *, class_weight: ArrayLike | None = None, ignore_index: int | None = None,
                         label_smoothing: float = 0.0, reduction: Reduction = "mean", z_loss: float = 0.0,
                         return_lse: bool = False, chunk_size: int | None = None,
                         out: NDArray[Any] | None = None,
                         n_threads: int | None = None) -> LossValue | Tuple[LossValue, FloatArray]:
    r"""Fused linear cross-entropy: ``softmax_cross_entropy(hidden @ weight.T + bias, labels)``
    without ever holding the (N, V) logits.

    Parameters
    ----------
    hidden : array_like, shape (..., d)
    weight : array_like, shape (V, d)
        The output projection (one row per class).
    labels : integer array_like, shape ``hidden.shape[:-1]``
        Class indices in [0, V) (or `ignore_index`).
    bias : array_like of shape (V,), optional
    class_weight, ignore_index, label_smoothing, reduction, z_loss, return_lse, out
        As ``weight``, ``ignore_index``, ... of :func:`softmax_cross_entropy` (index labels).
    chunk_size : int, optional
        Rows per chunk; default: ``min(N, max(256, min(256 MiB // (V * itemsize), ceil(N / 5))))``
        (docs/linear_cross_entropy.md).

    Returns
    -------
    The loss as :func:`softmax_cross_entropy` returns it (``(loss, lse)`` with `return_lse`).

    Notes
    -----
    Rows are processed in chunks: one GEMM writes a chunk's logits into a reused
    (chunk, V) buffer, the fused cross-entropy kernel replaces them by the gradient
    wrt the logits (scaled by the reduction and `grad_output`) in place, then
    ``grad_hidden[chunk] = G @ weight``, ``grad_weight += G.T @ hidden[chunk]`` and
    ``grad_bias += G.sum(0)``. ``sl.value_and_grad(sl.linear_cross_entropy,
    argnums=(0, 1, 3))`` returns the three gradients from that one pass. The loss has the
    exactness of :func:`softmax_cross_entropy` on the computed logits (no cancellation on
    confident rows; a common offset added to every logit, e.g. through the bias, does not
    change the loss beyond the rounding of the logits themselves). float32 and float64
    (mixed: float64); float16/bfloat16 hidden and weight compute in float32 (a half weight
    is converted to float32 once) and return their dtype. BLAS threads are NumPy's/SciPy's
    (threadpoolctl), `n_threads` sets the cross-entropy kernel's.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> rng = np.random.default_rng(0)
    >>> h, w, t = rng.standard_normal((6, 4)), rng.standard_normal((10, 4)), np.arange(6)
    >>> loss, (gh, gw) = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1))(h, w, t)
    >>> bool(np.isclose(loss, sl.softmax_cross_entropy(h @ w.T, t)))
    True
    """
    return D.linear_cross_entropy_impl(
        _args(hidden=hidden, weight=weight, labels=labels, bias=bias, class_weight=class_weight,
              ignore_index=ignore_index, label_smoothing=label_smoothing, reduction=reduction, z_loss=z_loss,
              return_lse=return_lse, chunk_size=chunk_size, out=out, n_threads=n_threads), (), None)[0]


@overload
def nll_loss(log_probs: ArrayLike, labels: ArrayLike, *, axis: int = ..., weight: ArrayLike | None = ...,
             ignore_index: int | None = ..., reduction: Reduced = ..., out: NDArray[Any] | None = ...,
             n_threads: int | None = ...) -> FloatScalar: ...
@overload
def nll_loss(log_probs: ArrayLike, labels: ArrayLike, *, axis: int = ..., weight: ArrayLike | None = ...,
             ignore_index: int | None = ..., reduction: Literal["none"], out: NDArray[Any] | None = ...,
             n_threads: int | None = ...) -> FloatArray: ...
@overload
def nll_loss(log_probs: ArrayLike, labels: ArrayLike, *, axis: int = ..., weight: ArrayLike | None = ...,
             ignore_index: int | None = ..., reduction: Reduction = ..., out: NDArray[Any] | None = ...,
             n_threads: int | None = ...) -> LossValue: ...
@differentiable("log_probs", impl=D.nll_loss_impl)
def nll_loss(log_probs: ArrayLike, labels: ArrayLike, *, axis: int = -1, weight: ArrayLike | None = None,
             ignore_index: int | None = None, reduction: Reduction = "mean", out: NDArray[Any] | None = None,
             n_threads: int | None = None) -> LossValue:
    r"""Negative log-likelihood of integer labels given log-probabilities:
    :math:`\ell_n = -w_{y_n}\,\mathrm{log\_probs}_{n, y_n}` ("mean" divides by
    :math:`\sum w_{y_n}` over non-ignored rows, as PyTorch)."""
    return D.nll_loss_impl(
        _args(log_probs=log_probs, labels=labels, axis=axis, weight=weight, ignore_index=ignore_index,
              reduction=reduction, out=out, n_threads=n_threads), (), None)[0]


@overload
def sigmoid_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                          pos_weight: ArrayLike | None = ..., reduction: Reduced = ...,
                          out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatScalar: ...
@overload
def sigmoid_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                          pos_weight: ArrayLike | None = ..., reduction: Literal["none"],
                          out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatArray: ...
@overload
def sigmoid_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                          pos_weight: ArrayLike | None = ..., reduction: Reduction = ...,
                          out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> LossValue: ...
@differentiable("logits", "labels", impl=D.sigmoid_cross_entropy_impl)
def sigmoid_cross_entropy(logits: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = None,
                          pos_weight: ArrayLike | None = None, reduction: Reduction = "mean",
                          out: NDArray[Any] | None = None, n_threads: int | None = None) -> LossValue:
    r"""Binary cross-entropy with logits, elementwise, exact in both tails.

    :math:`\ell = w\,[(1-z)\,x + (1 + (p_w - 1) z)\,\mathrm{softplus}(-x)]`, evaluated as a
    sum of non-negative terms (no cancellation for large :math:`|x|`). `weight`
    and `pos_weight` broadcast to the logits, right-aligned (PyTorch: a (C,) vector
    applies to the last axis).
    "mean" divides by the number of elements.

    Examples
    --------
    >>> import numpy as np, stableloss as sl
    >>> float(sl.sigmoid_cross_entropy(np.array([-40.0]), np.array([0.0])))   # log1p(e^-40)
    4.248354255291589e-18
    """
    return D.sigmoid_cross_entropy_impl(
        _args(logits=logits, labels=labels, weight=weight, pos_weight=pos_weight, reduction=reduction,
              out=out, n_threads=n_threads), (), None)[0]


@overload
def binary_cross_entropy(probs: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                         reduction: Reduced = ..., out: NDArray[Any] | None = ..., policy: Policy = ...,
                         epsilon: float | None = ..., n_threads: int | None = ...) -> FloatScalar: ...
@overload
def binary_cross_entropy(probs: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                         reduction: Literal["none"], out: NDArray[Any] | None = ..., policy: Policy = ...,
                         epsilon: float | None = ..., n_threads: int | None = ...) -> FloatArray: ...
@overload
def binary_cross_entropy(probs: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = ...,
                         reduction: Reduction = ..., out: NDArray[Any] | None = ..., policy: Policy = ...,
                         epsilon: float | None = ..., n_threads: int | None = ...) -> LossValue: ...
@differentiable("probs", impl=D.binary_cross_entropy_impl)
def binary_cross_entropy(probs: ArrayLike, labels: ArrayLike, *, weight: ArrayLike | None = None,
                         reduction: Reduction = "mean", out: NDArray[Any] | None = None,
                         policy: Policy = "clamp", epsilon: float | None = None,
                         n_threads: int | None = None) -> LossValue:
    r"""Binary cross-entropy on probabilities.

    `policy` says what happens at p = 0 or 1: "clamp" (default, PyTorch: each log
    clamped at -100, gradient ``(p - z) / max(p (1 - p), 1e-12f)``), "clip" (Keras: p clipped to [epsilon, 1 - epsilon], gradient 0
    outside), "add" (TF v1 ``log_loss``: epsilon added inside the logs), "exact" (no
    protection; a term with coefficient 0 contributes 0). `epsilon` defaults to 1e-7
    for "clip" and "add". probs outside [0, 1] (or NaN) raise ValueError.
    """
    return D.binary_cross_entropy_impl(
        _args(probs=probs, labels=labels, weight=weight, reduction=reduction, out=out, policy=policy,
              epsilon=epsilon, n_threads=n_threads), (), None)[0]


@differentiable("x", impl=D.sigmoid_impl)
def sigmoid(x: ArrayLike, *, out: NDArray[Any] | None = None, n_threads: int | None = None) -> FloatArray:
    r""":math:`1 / (1 + e^{-x})`, exact in both tails (``sigmoid(-40)`` is
    :math:`e^{-40}/(1+e^{-40})`, not a difference from 1)."""
    return D.sigmoid_impl(_args(x=x, out=out, n_threads=n_threads), (), None)[0]


@differentiable("x", impl=D.log_sigmoid_impl)
def log_sigmoid(x: ArrayLike, *, out: NDArray[Any] | None = None, n_threads: int | None = None) -> FloatArray:
    r""":math:`\log\sigma(x) = -\mathrm{softplus}(-x)`: ``log_sigmoid(40)`` is
    :math:`-e^{-40}(1 - \dots)`, ``log_sigmoid(-40)`` is :math:`-40 - e^{-40}\dots`;
    never 0 or -inf where the true value is finite."""
    return D.log_sigmoid_impl(_args(x=x, out=out, n_threads=n_threads), (), None)[0]


@overload
def kl_div(log_probs: ArrayLike, target: ArrayLike, *, log_target: bool = ..., reduction: Reduced = ...,
           out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatScalar: ...
@overload
def kl_div(log_probs: ArrayLike, target: ArrayLike, *, log_target: bool = ..., reduction: Literal["none"],
           out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> FloatArray: ...
@overload
def kl_div(log_probs: ArrayLike, target: ArrayLike, *, log_target: bool = ..., reduction: Reduction = ...,
           out: NDArray[Any] | None = ..., n_threads: int | None = ...) -> LossValue: ...
@differentiable("log_probs", impl=D.kl_div_impl)
def kl_div(log_probs: ArrayLike, target: ArrayLike, *, log_target: bool = False,
           reduction: Reduction = "mean", out: NDArray[Any] | None = None,
           n_threads: int | None = None) -> LossValue:
    r"""Pointwise Kullback-Leibler divergence :math:`t\,(\log t - x)` with `x` = `log_probs`
    (`log_target=True`: target given as log-probabilities, :math:`e^t (t - x)`).

    `log_probs` and `target` broadcast against each other. A zero target contributes 0
    (:math:`0 \log 0 = 0`) unless `x` is not finite (then NaN, as PyTorch); a negative
    target gives NaN; with `log_target`, a target of -inf gives NaN (PyTorch's
    :math:`e^{t}(t - x)`). Where :math:`\log t \approx x` the result is a small difference of
    rounded numbers (the rounding of :math:`\log t` bounds its relative accuracy), as in PyTorch.
    "mean" divides by the number of elements. Gradient wrt `log_probs`: :math:`-t`
    (:math:`-e^t`), summed over broadcast axes. Elementwise NumPy over the broadcast
    shape (no dedicated kernel).
    """
    return D.kl_div_impl(_args(log_probs=log_probs, target=target, log_target=log_target,
                               reduction=reduction, out=out, n_threads=n_threads), (), None)[0]


@overload
def sigmoid_focal_loss(logits: ArrayLike, labels: ArrayLike, *, alpha: float | None = ...,
                       gamma: float = ..., reduction: Reduced = ..., out: NDArray[Any] | None = ...,
                       n_threads: int | None = ...) -> FloatScalar: ...
@overload
def sigmoid_focal_loss(logits: ArrayLike, labels: ArrayLike, *, alpha: float | None = ...,
                       gamma: float = ..., reduction: Literal["none"], out: NDArray[Any] | None = ...,
                       n_threads: int | None = ...) -> FloatArray: ...
@overload
def sigmoid_focal_loss(logits: ArrayLike, labels: ArrayLike, *, alpha: float | None = ...,
                       gamma: float = ..., reduction: Reduction = ..., out: NDArray[Any] | None = ...,
                       n_threads: int | None = ...) -> LossValue: ...
@differentiable("logits", impl=D.sigmoid_focal_loss_impl)
def sigmoid_focal_loss(logits: ArrayLike, labels: ArrayLike, *, alpha: float | None = 0.25,
                       gamma: float = 2.0, reduction: Reduction = "mean", out: NDArray[Any] | None = None,
                       n_threads: int | None = None) -> LossValue:
    r"""Focal loss on logits (Lin et al. 2017):
    :math:`\ell = \alpha_t\,(1 - p_t)^\gamma\,\mathrm{BCE}(x, z)` with :math:`p = \sigma(x)`,
    :math:`p_t = p z + (1 - p)(1 - z)`, :math:`\alpha_t = \alpha z + (1 - \alpha)(1 - z)`
    (no balancing when `alpha` is None or negative, as torchvision).

    The BCE term comes from the exact BCE-with-logits kernel and :math:`1 - p_t` from
    :math:`\sigma(x)(1 - z) + \sigma(-x) z`, so neither tail cancels. Gradient wrt logits:
    :math:`\alpha_t[(\sigma(x) - z)(1-p_t)^\gamma + \mathrm{BCE}\,\gamma(1-p_t)^{\gamma-1}
    \sigma(x)\sigma(-x)(1 - 2z)]`. "mean" divides by the number of elements.
    """
    return D.sigmoid_focal_loss_impl(_args(logits=logits, labels=labels, alpha=alpha, gamma=gamma,
                                           reduction=reduction, out=out, n_threads=n_threads), (), None)[0]
