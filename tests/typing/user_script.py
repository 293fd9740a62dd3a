"""A user's script, checked by ``mypy --strict`` in tests/test_typing.py (not run by pytest).

Every ``reveal_type`` line is matched against the type mypy reveals there; the script
must otherwise be free of mypy errors. It also runs (``python tests/typing/user_script.py``):
``reveal_type`` is imported from typing_extensions only while type checking.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

import stableloss as sl
import stableloss.torch.nn.functional as F
from stableloss.keras.losses import CategoricalCrossentropy

if TYPE_CHECKING:
    from typing_extensions import reveal_type
else:
    def reveal_type(x: object) -> object:
        return x

x = np.array([[2.0, 1.0, 0.1], [0.5, 0.2, 3.0]])
t = np.array([0, 2])

# ------------------------------------------------------------------ the core
loss = sl.softmax_cross_entropy(x, t)
reveal_type(loss)                                                # R: floating
rows = sl.softmax_cross_entropy(x, t, reduction="none")
reveal_type(rows)                                                # R: ndarray
pair = sl.softmax_cross_entropy(x, t, return_lse=True)
reveal_type(pair)                                                # R: tuple[floating, ndarray]
lse = sl.logsumexp(x, axis=(0, 1))
reveal_type(lse)                                                 # R: ndarray
reveal_type(sl.softmax(x))                                       # R: ndarray
reveal_type(sl.binary_cross_entropy(x / 4, x / 4, policy="clip"))  # R: floating

value, g = sl.value_and_grad(sl.softmax_cross_entropy)(x, t)
reveal_type(value)                                               # R: floating
reveal_type(g)                                                   # R: ndarray
value2, grads = sl.value_and_grad(sl.softmax_cross_entropy, argnums=(0, 1))(x, np.eye(3)[t])
reveal_type(grads)                                               # R: tuple[ndarray, ndarray]
g_lse = sl.grad(sl.logsumexp)(x)
reveal_type(g_lse)                                               # R: ndarray

h, w = np.ones((2, 4)), np.ones((3, 4))
_, (gh, gw, gb) = sl.value_and_grad(sl.linear_cross_entropy, argnums=(0, 1, 3))(h, w, t, np.zeros(3))
reveal_type(gw)                                                  # R: ndarray

total: float = float(loss) + float(np.sum(rows)) + float(np.sum(lse))
arr: NDArray[np.floating] = g

# ------------------------------------------------------------------ the torch mirror
ce = F.cross_entropy(x, t)
reveal_type(ce)                                                  # R: floating
ce_rows = F.cross_entropy(x, t, reduction="none")
reveal_type(ce_rows)                                             # R: ndarray
reveal_type(F.softmax(x, dim=1))                                 # R: ndarray

# ------------------------------------------------------------------ a Keras loss class
cce = CategoricalCrossentropy(from_logits=True)
k = cce(np.eye(3)[t], x)
reveal_type(k)                                                   # R: ndarray | floating
kv, kg = sl.value_and_grad(cce, argnums=1)(np.eye(3)[t], x)
reveal_type(kg)                                                  # R: ndarray

print(total, arr.shape, ce, ce_rows.shape, k, kv, kg.shape, pair[1].shape, value, value2, grads[0].shape,
      g_lse.shape, gh.shape, gb.shape)
