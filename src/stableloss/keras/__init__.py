"""`stableloss.keras`: the Keras 3 cross-entropy losses over NumPy arrays.

``stableloss.keras.losses`` mirrors ``keras.losses`` (TensorFlow backend, Keras 3.15):
the five cross-entropy classes with Keras's constructor signatures, reductions, sample
weights, ``get_config``/``from_config``, the matching functions and ``get``. Quirks are
reproduced (probability clipping in the tensor dtype, CCE's renormalisation, TF's
``softmax - y`` gradient); see docs/keras.md. Neither Keras nor TensorFlow is needed.
"""
from . import config, losses

__all__ = ["config", "losses"]
