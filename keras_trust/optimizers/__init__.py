"""Keras 3 optimizers for natural-gradient and trust-region policy steps."""

from keras_trust.optimizers.natural_gradient import NaturalGradient
from keras_trust.optimizers.trust_region import TrustRegion

__all__ = ["NaturalGradient", "TrustRegion"]
