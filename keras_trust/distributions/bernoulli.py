"""Independent Bernoullis for `MultiBinary` actions of any shape."""

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_trust.distributions.base import ActionDistribution
from keras_trust.distributions.categorical import CategoricalHead


@keras.saving.register_keras_serializable(package="keras_trust")
class BernoulliHead(CategoricalHead):
    """Maps features to the logits `(B, n)` of `n` independent Bernoullis.

    The same layer as `CategoricalHead` (a Dense layer of logits, small orthogonal
    init, so p starts near 1/2); only the law read from the logits differs.

    Args:
        n: number of binary sub-actions.
        gain: orthogonal-initializer gain. Defaults to `0.01`.
    """

    distribution = "bernoulli"


class Bernoulli(ActionDistribution):
    """`n = prod(shape)` independent Bernoullis; params `[logits (B, n)]`.

    A sample is `1[u < sigmoid(logit)]` with uniform noise `u`, an exact Bernoulli
    draw that is a pure function of the rollout's pre-drawn noise. Stored actions are
    0/1 floats `(B, n)`; the env gets them reshaped to the space's shape, as int8.
    """

    name = "bernoulli"

    @classmethod
    def supports(cls, space) -> bool:
        return isinstance(space, gym.spaces.MultiBinary)

    @property
    def n(self) -> int:
        return int(np.prod(self.space.shape))

    def make_head(self, **kwargs):
        return BernoulliHead(self.n, **kwargs)

    def distribution(self, params):
        return tfp.distributions.Independent(
            tfp.distributions.Bernoulli(logits=params[0], dtype=tf.float32),
            reinterpreted_batch_ndims=1,
        )

    @property
    def noise_shape(self) -> tuple:
        return (self.n,)

    def noise(self, rng, size):
        return rng.random((*size, *self.noise_shape))

    def sample(self, params, noise):
        return tf.cast(noise < tf.sigmoid(params[0]), tf.float32)

    def mode(self, params):
        return tf.cast(params[0] > 0.0, tf.float32)

    def env_action(self, action):
        action = tf.cast(action, tf.int8)
        if len(self.space.shape) == 1:
            return action
        return tf.reshape(action, [-1, *self.space.shape])
