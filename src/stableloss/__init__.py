"""stableloss: exact and fast softmax, log-softmax, logsumexp and cross-entropy losses
(forward and gradient) for NumPy arrays, from fused Cython/C kernels.

>>> import numpy as np, stableloss as sl
>>> loss, g = sl.value_and_grad(sl.softmax_cross_entropy)(np.array([[2.0, 1.0, 0.1]]), np.array([0]))
>>> print(round(float(loss), 10))
0.4170300163
>>> print(g)                                   # softmax - onehot
[[-0.34099886  0.24243297  0.09856589]]
"""
from ._version import __version__

from ._validation import LabelError, AxisError
from ._config import show_config, get_num_threads, set_num_threads, SerialBuildWarning
from ._grad import value_and_grad, grad
from ._guard import MisuseWarning, set_misuse_warnings
from ._api import (
    logsumexp,
    softmax,
    log_softmax,
    softmax_cross_entropy,
    linear_cross_entropy,
    nll_loss,
    sigmoid_cross_entropy,
    binary_cross_entropy,
    sigmoid,
    log_sigmoid,
    kl_div,
    sigmoid_focal_loss,
)

__all__ = [
    "logsumexp", "softmax", "log_softmax", "softmax_cross_entropy", "linear_cross_entropy", "nll_loss",
    "sigmoid_cross_entropy", "binary_cross_entropy", "sigmoid", "log_sigmoid", "kl_div",
    "sigmoid_focal_loss",
    "value_and_grad", "grad", "show_config", "get_num_threads", "set_num_threads",
    "LabelError", "AxisError", "MisuseWarning", "SerialBuildWarning", "set_misuse_warnings", "__version__",
]

from ._config import warn_if_serial_build as _warn_if_serial_build
_warn_if_serial_build()     # once per process: a build without OpenMP must not go unnoticed
del _warn_if_serial_build
