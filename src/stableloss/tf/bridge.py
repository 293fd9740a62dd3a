"""stableloss's cross-entropies as TensorFlow ops (``tf.custom_gradient``), on tf.Tensors.

Requires TensorFlow (``import stableloss.tf`` does not; this module does). Each function
has the signature of its ``tf.nn`` namesake, runs stableloss's fused kernel through
``tf.numpy_function`` (so it works eagerly and inside ``tf.function``) and returns a
tf.Tensor whose gradient -- the kernel's, computed in the same call as the value -- is
TensorFlow's own: ``softmax - labels`` for the logits of the dense op, ``-log_softmax``
for its labels, ``sigmoid(x) - z`` / ``-x`` for the sigmoid op, TF's form for the weighted
op. Differences from ``tf.nn`` are those of the NumPy mirror (docs/tensorflow.md):
confident rows carry the exact tiny loss and gradient instead of 0.

>>> import numpy as np
>>> import tensorflow as tf
>>> from stableloss.tf import bridge
>>> x = tf.Variable([[2.0, 1.0, 0.1]])
>>> with tf.GradientTape() as tape:
...     loss = tf.reduce_sum(bridge.softmax_cross_entropy_with_logits([[1.0, 0.0, 0.0]], x))
>>> g = tape.gradient(loss, x)
>>> print(np.round(g.numpy(), 6))                # softmax(x) - labels, as tf.nn's op
[[-0.340999  0.242433  0.098566]]
"""
from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from .. import _grad
from . import nn as _nn

__all__ = ["softmax_cross_entropy_with_logits", "sparse_softmax_cross_entropy_with_logits",
           "sigmoid_cross_entropy_with_logits", "weighted_cross_entropy_with_logits"]


def _float(t):
    return t.dtype.is_floating


def _value_and_grads(fn, argnums, kwargs):
    """A NumPy function returning (value, *grads) of mirror `fn` for `argnums`."""
    vg = _grad.value_and_grad(fn, argnums=tuple(argnums))

    def run(*arrays):
        names = list(kwargs)
        call = dict(kwargs)
        for n, a in zip(names, arrays):
            call[n] = np.asarray(a)
        value, grads = vg(**call)
        return (np.asarray(value),) + tuple(np.asarray(g) for g in grads)
    return run


def softmax_cross_entropy_with_logits(labels: Any, logits: Any, axis: int = -1, name: str | None = None) -> tf.Tensor:
    """``tf.nn.softmax_cross_entropy_with_logits`` computed by stableloss, differentiable
    wrt logits and (float) labels, with TensorFlow's gradients."""
    logits = tf.convert_to_tensor(logits)
    labels = tf.cast(tf.convert_to_tensor(labels), logits.dtype) if not _float(tf.convert_to_tensor(labels)) \
        else tf.convert_to_tensor(labels)
    return _dense(labels, logits, axis)


def _dense(labels, logits, axis):
    ax = axis

    @tf.custom_gradient
    def op(y, x):
        run = _value_and_grads(_nn.softmax_cross_entropy_with_logits, (0, 1),
                               {"labels": None, "logits": None, "axis": ax})
        with_labels = y.shape == x.shape
        if with_labels:
            loss, gy, gx = tf.numpy_function(run, [y, x], [x.dtype, y.dtype, x.dtype], stateful=False)
        else:   # broadcast labels: TF has no labels gradient there either
            run1 = _value_and_grads(_nn.softmax_cross_entropy_with_logits, (1,),
                                    {"labels": None, "logits": None, "axis": ax})
            loss, gx = tf.numpy_function(run1, [y, x], [x.dtype, x.dtype], stateful=False)
            gy = None
        out_shape = x.shape[:ax % x.shape.rank] + x.shape[ax % x.shape.rank + 1:] if x.shape.rank else None
        if out_shape is not None:
            loss.set_shape(out_shape)
        gx.set_shape(x.shape)
        if gy is not None:
            gy.set_shape(y.shape)

        def grad(upstream):
            up = tf.expand_dims(upstream, ax)
            return (None if gy is None else up * gy), up * gx
        return loss, grad
    return op(labels, logits)


def sparse_softmax_cross_entropy_with_logits(labels: Any, logits: Any, name: str | None = None) -> tf.Tensor:
    """``tf.nn.sparse_softmax_cross_entropy_with_logits`` computed by stableloss
    (gradient wrt logits ``softmax - onehot``; labels have none)."""
    logits = tf.convert_to_tensor(logits)
    labels = tf.convert_to_tensor(labels)

    @tf.custom_gradient
    def op(x):
        run = _value_and_grads(_nn.sparse_softmax_cross_entropy_with_logits, (1,),
                               {"labels": None, "logits": None})
        loss, gx = tf.numpy_function(run, [labels, x], [x.dtype, x.dtype], stateful=False)
        loss.set_shape(labels.shape)
        gx.set_shape(x.shape)

        def grad(upstream):
            return tf.expand_dims(upstream, -1) * gx
        return loss, grad
    return op(logits)


def _elementwise(fn, labels, logits, extra):
    @tf.custom_gradient
    def op(z, x):
        run = _value_and_grads(fn, (0, 1), dict({"labels": None, "logits": None}, **extra))
        loss, gz, gx = tf.numpy_function(run, [z, x], [x.dtype, z.dtype, x.dtype], stateful=False)
        for t in (loss, gz, gx):
            t.set_shape(x.shape)

        def grad(upstream):
            return upstream * gz, upstream * gx
        return loss, grad
    return op(labels, logits)


def sigmoid_cross_entropy_with_logits(labels: Any = None, logits: Any = None, name: str | None = None) -> tf.Tensor:
    """``tf.nn.sigmoid_cross_entropy_with_logits`` computed by stableloss (exact in both
    tails), gradients ``sigmoid(x) - z`` (logits) and ``-x`` (labels)."""
    if labels is None or logits is None:
        _nn.sigmoid_cross_entropy_with_logits(labels, logits)    # raises TF's ValueError
    return _elementwise(_nn.sigmoid_cross_entropy_with_logits, tf.convert_to_tensor(labels),
                        tf.convert_to_tensor(logits), {})


def weighted_cross_entropy_with_logits(labels: Any, logits: Any, pos_weight: Any,
                                       name: str | None = None) -> tf.Tensor:
    """``tf.nn.weighted_cross_entropy_with_logits`` computed by stableloss with TF's
    evaluation and gradients (logits, labels); `pos_weight` is taken as a constant."""
    logits = tf.convert_to_tensor(logits)
    q = pos_weight.numpy() if hasattr(pos_weight, "numpy") else pos_weight
    return _elementwise(_nn.weighted_cross_entropy_with_logits, tf.convert_to_tensor(labels), logits,
                        {"pos_weight": q})


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
