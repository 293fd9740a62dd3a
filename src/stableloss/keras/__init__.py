"""`stableloss.keras`: the Keras 3 cross-entropy losses over NumPy arrays.

``stableloss.keras.losses`` mirrors ``keras.losses`` (TensorFlow backend, Keras 3.15):
the five cross-entropy classes with Keras's constructor signatures, reductions, sample
weights, ``get_config``/``from_config``, the matching functions and ``get``. Quirks are
reproduced (probability clipping in the tensor dtype, CCE's renormalisation, TF's
``softmax - y`` gradient); see docs/keras.md. Neither Keras nor TensorFlow is needed.

>>> import numpy as np
>>> import stableloss.keras.losses as L
>>> cce = L.CategoricalCrossentropy(from_logits=True)
>>> loss = cce(np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 2.0, 3.0]]))
>>> print(loss.dtype, np.round(loss, 6))             # the loss dtype is floatx(), float32
float32 1.407606
"""
from . import config, losses

__all__ = ["config", "losses"]
