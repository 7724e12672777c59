"""Keras layers: the adaptive KL penalty, distribution heads, running normalization."""

from keras_trust.distributions import CategoricalHead, DiagGaussianHead, MultiCategoricalHead
from keras_trust.layers.kl_penalty import KLPenalty
from keras_trust.layers.normalization import RunningNormalization

__all__ = [
    "CategoricalHead",
    "DiagGaussianHead",
    "KLPenalty",
    "MultiCategoricalHead",
    "RunningNormalization",
]
