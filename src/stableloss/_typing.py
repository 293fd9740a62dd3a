"""Type aliases for the annotations of the public API (no runtime role).

The results of the NumPy functions are NumPy arrays (``FloatArray``) or, for reduced
losses, NumPy scalars (``FloatScalar``); the float dtype (float16/32/64, bfloat16) follows
the input. bfloat16 values are ml_dtypes scalars/arrays, which NumPy's static types do not
model: they are typed as NumPy floating values here.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Literal, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["ArrayLike", "DTypeLike", "NDArray", "FloatArray", "FloatScalar", "LossValue", "Reduction",
           "Reduced", "Policy", "Axis", "Impl", "GradOut", "ArrayInput",
           "KerasReduction", "TFReduced"]

#: a float array result
FloatArray = NDArray[np.floating[Any]]
#: a reduced loss: a NumPy float scalar of the result dtype
FloatScalar = np.floating[Any]
#: a loss whose reduction is not known statically
LossValue = Union[FloatArray, FloatScalar]
#: the core's reductions
Reduction = Literal["mean", "sum", "none"]
#: the reductions that give a scalar
Reduced = Literal["mean", "sum"]
#: binary_cross_entropy's policies at p = 0 or 1
Policy = Literal["clamp", "clip", "add", "exact"]
#: logsumexp's axis: one axis, several, or all (None)
Axis = Union[int, Tuple[int, ...], None]
#: a registered impl: impl(bound_args, wrt, grad_output, grad_out) -> (value, {name: gradient})
Impl = Callable[..., Tuple[Any, Dict[str, Any]]]
#: value_and_grad's grad_out: one array, or a tuple (None entries allowed) matching argnums
GradOut = Union[NDArray[Any], Tuple[Optional[NDArray[Any]], ...], None]
#: what the mirrors' NumPy overloads take (array-likes that are not tensors): arrays,
#: NumPy and Python scalars, (nested) sequences
ArrayInput = Union[NDArray[Any], np.generic, float, complex, Sequence[Any]]
#: Keras's reductions (None: unreduced, as "none")
KerasReduction = Optional[Literal["sum_over_batch_size", "sum", "none", "mean", "mean_with_sample_weight"]]
#: tf.compat.v1.losses.Reduction's values that give a scalar
TFReduced = Literal["weighted_sum", "weighted_sum_over_batch_size", "weighted_mean", "weighted_sum_by_nonzero_weights"]
