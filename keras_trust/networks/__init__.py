"""Torsos: Keras models mapping observations to features (the agents add the heads)."""

from keras_trust.networks.cnn import image_encoder, nature_cnn, small_cnn
from keras_trust.networks.mlp import mlp
from keras_trust.networks.multi_input import MultiInputTorso, default_torso
from keras_trust.networks.recurrent import RecurrentTorso

__all__ = [
    "MultiInputTorso",
    "RecurrentTorso",
    "default_torso",
    "image_encoder",
    "mlp",
    "nature_cnn",
    "small_cnn",
]
