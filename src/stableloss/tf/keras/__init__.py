"""``stableloss.tf.keras``: the same objects as :mod:`stableloss.keras` (in TF 2.21
``tf.keras`` *is* Keras 3), so ``stableloss.tf.keras.losses.CategoricalCrossentropy is
stableloss.keras.losses.CategoricalCrossentropy``."""
from ...keras import config, losses

__all__ = ["config", "losses"]
