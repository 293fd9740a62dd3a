"""Mirror of ``tf.compat`` (``v1.losses``)."""
from . import v1

__all__ = ["v1"]
