"""The default torso for any observation space: one encoder per leaf, concatenated, an MLP.

Images go through a CNN (`cnn.image_encoder`), every other leaf is flattened; the
features are concatenated and passed through the MLP (as Stable-Baselines3's
`CombinedExtractor` followed by its `net_arch`). A space that is a single image gets
the CNN alone (its last Dense layer is the feature layer, as in SB3's `CnnPolicy`); a
single non-image leaf gets the plain MLP.
"""

import keras
import tensorflow as tf

from keras_trust.networks.cnn import image_encoder
from keras_trust.networks.mlp import mlp
from keras_trust.spaces import channels_first, is_image


def _image_shape(space):
    """An image leaf's shape as the network sees it (channels last)."""
    shape = tuple(space.shape)
    return (*shape[1:], shape[0]) if channels_first(space) else shape


class MultiInputTorso(keras.Model):
    """Encodes each leaf of an observation nest, concatenates, then applies `head`.

    Args:
        leaf_spaces: the observation space's leaves in `tf.nest` order.
        hidden_sizes: the MLP after the concatenation.
        activation: the MLP's activation.
    """

    def __init__(self, leaf_spaces, hidden_sizes=(64, 64), activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.encoders = [
            image_encoder(_image_shape(s), name=f"leaf_{i}_cnn")
            if is_image(s)
            else keras.layers.Flatten()
            for i, s in enumerate(leaf_spaces)
        ]
        self.concat = keras.layers.Concatenate(axis=-1)
        self.head = mlp(hidden_sizes, activation, name="mlp")

    def build(self, input_shape):
        # The encoders and the MLP build on the first call (the agent makes one on a
        # dummy batch before training or loading weights).
        self.built = True

    def call(self, obs):
        leaves = tf.nest.flatten(obs)
        features = [encoder(x) for encoder, x in zip(self.encoders, leaves)]
        x = self.concat(features) if len(features) > 1 else features[0]
        return self.head(x)


def default_torso(observation_format, hidden_sizes, name, activation="tanh") -> keras.Model:
    """The default torso for an `ObservationFormat`'s space."""
    leaves = observation_format.leaves
    if not observation_format.nested:
        if is_image(leaves[0]):
            return image_encoder(_image_shape(leaves[0]), name=name)
        return mlp(hidden_sizes, activation, name=name)
    return MultiInputTorso(leaves, hidden_sizes, activation, name=name)
