"""Categorical distribution for `Discrete(n)` actions: head, TFP law, Gumbel-max sampling."""

import gymnasium as gym
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_trust.distributions.base import ActionDistribution, discrete_offset, orthogonal

# Logit of a masked (or padded) action: see `Categorical.apply_mask`.
MASKED_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="keras_trust")
class CategoricalHead(keras.layers.Layer):
    """Maps features to the logits of a Categorical over `n` actions.

    Args:
        n: number of actions.
        gain: orthogonal-initializer gain; small values start near-uniform.
            Defaults to `0.01`.

    Example:
    >>> CategoricalHead(3)(tf.zeros([2, 5]))[0].shape
    TensorShape([2, 3])
    """

    distribution = "categorical"

    def __init__(self, n: int, gain: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.n = int(n)
        self.gain = float(gain)
        self.dense = keras.layers.Dense(
            self.n, kernel_initializer=orthogonal(self.gain), dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        return [self.dense(features)]

    def get_config(self):
        return {**super().get_config(), "n": self.n, "gain": self.gain}


class Categorical(ActionDistribution):
    """One categorical choice among `n`; params `[logits (B, n)]`.

    Sampling is Gumbel-max: `argmax(logits + g)` with standard Gumbel noise `g` is an
    exact sample of `softmax(logits)`, so a rollout's actions are a pure function of its
    pre-drawn noise (reproducible across processes and workers).
    """

    name = "categorical"

    @classmethod
    def supports(cls, space) -> bool:
        return isinstance(space, gym.spaces.Discrete)

    def make_head(self, **kwargs):
        return CategoricalHead(int(self.space.n), **kwargs)

    def distribution(self, params):
        return tfp.distributions.Categorical(logits=params[0])

    @property
    def noise_shape(self) -> tuple:
        return (int(self.space.n),)

    def noise(self, rng, size):
        return rng.gumbel(size=(*size, *self.noise_shape))

    def sample(self, params, noise):
        return tf.argmax(params[0] + noise, axis=-1, output_type=tf.int64)

    def mode(self, params):
        return tf.argmax(params[0], axis=-1, output_type=tf.int64)

    @property
    def mask_size(self) -> int:
        """Length of an action mask row: one bool per action."""
        return int(self.space.n)

    def apply_mask(self, params, mask):
        """Logits with the masked actions set to `MASKED_LOGIT` (probability exactly 0).

        exp() of the masked logit underflows to exactly 0 while log-softmax stays finite,
        so masked actions are never sampled or chosen and add exactly 0 to entropy and KL.
        """
        return [tf.where(tf.cast(mask, tf.bool), params[0], MASKED_LOGIT)]

    def env_action(self, action):
        offset = discrete_offset(self.space)
        return action if offset is None else action + tf.constant(offset, tf.int64)
