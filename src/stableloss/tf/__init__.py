"""stableloss.tf: TensorFlow's softmax and cross-entropy API over NumPy arrays.

Mirrors TensorFlow 2.21 -- ``tf.nn``, ``tf.math``, ``tf.compat.v1.losses`` and two
``tf.raw_ops`` -- with the same signatures, defaults, dtype and shape rules, errors and
quirks (docs/tensorflow.md), computed by stableloss's fused kernels. Importing it does
not import TensorFlow; tf.Tensors are accepted (converted with ``.numpy()``), results
are NumPy arrays. ``stableloss.tf.bridge`` (TensorFlow required) wraps the cross-entropies
as ``tf.custom_gradient`` ops on tf.Tensors.

>>> import numpy as np, stableloss as sl
>>> from stableloss import tf as sltf
>>> labels, logits = np.array([[0., 1., 0.]], np.float32), np.array([[1., 2., 3.]], np.float32)
>>> loss, g = sl.value_and_grad(sltf.nn.softmax_cross_entropy_with_logits, argnums=1)(labels, logits)
>>> loss.dtype, np.round(loss, 6)                # float32, as TensorFlow
(dtype('float32'), array([1.407606], dtype=float32))
>>> print(np.round(g, 6))                        # softmax(logits) - labels
[[ 0.090031 -0.755272  0.665241]]
"""
from . import errors, nn, math, raw_ops, compat, keras
from .math import reduce_logsumexp
from .errors import InvalidArgumentError

__all__ = ["nn", "math", "raw_ops", "compat", "errors", "keras", "reduce_logsumexp", "InvalidArgumentError"]


def __dir__() -> list[str]:
    return list(__all__)     # completion shows the mirrored names, not the helpers
