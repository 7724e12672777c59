"""Torsos: Keras models mapping observations to features (the agents add the heads)."""

from keras_trust.networks.mlp import mlp

__all__ = ["mlp"]
