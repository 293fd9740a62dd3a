"""Mirror of ``tf.compat.v1`` (the ``losses`` module)."""
from . import losses

__all__ = ["losses"]
