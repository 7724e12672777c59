"""Independent Categoricals for `MultiDiscrete` actions, as one padded logits tensor."""

import gymnasium as gym
import keras
import tensorflow as tf
import tensorflow_probability as tfp

from keras_trust.distributions.base import orthogonal
from keras_trust.distributions.categorical import MASKED_LOGIT, Categorical

# Logit given to the padded (impossible) categories of MultiDiscrete sub-actions: exp()
# underflows to exactly 0, while log-softmax stays finite so KL and entropy stay finite.
PAD_LOGIT = MASKED_LOGIT


@keras.saving.register_keras_serializable(package="keras_trust")
class MultiCategoricalHead(keras.layers.Layer):
    """Maps features to padded logits `(B, len(nvec), max(nvec))` of independent Categoricals.

    Args:
        nvec: number of choices of each sub-action.
        gain: orthogonal-initializer gain. Defaults to `0.01`.
    """

    distribution = "multi_categorical"

    def __init__(self, nvec, gain: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.nvec = [int(n) for n in nvec]
        self.gain = float(gain)
        self.dense = keras.layers.Dense(
            sum(self.nvec), kernel_initializer=orthogonal(self.gain), dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        flat = self.dense(features)
        width = max(self.nvec)
        parts = tf.split(flat, self.nvec, axis=-1)
        padded = [
            tf.pad(p, [[0, 0], [0, width - n]], constant_values=PAD_LOGIT)
            for p, n in zip(parts, self.nvec)
        ]
        return [tf.stack(padded, axis=1)]

    def get_config(self):
        return {**super().get_config(), "nvec": self.nvec, "gain": self.gain}


class MultiCategorical(Categorical):
    """`len(nvec)` independent Categoricals; params `[padded logits (B, k, max_n)]`.

    One padded tensor (rather than a list of k) keeps every op batched; the padding's
    probability is exactly 0, so it is never sampled and adds nothing to KL or entropy.
    Sampling (Gumbel-max along the last axis), the mode and the `start` offset are
    `Categorical`'s, applied per sub-action.
    """

    name = "multi_categorical"

    @classmethod
    def supports(cls, space) -> bool:
        if not isinstance(space, gym.spaces.MultiDiscrete):
            return False
        if len(space.nvec.shape) != 1:
            raise ValueError(
                f"Unsupported action space {space}: MultiDiscrete must be 1-D. "
                f"Received nvec shape {space.nvec.shape}."
            )
        return True

    def make_head(self, **kwargs):
        return MultiCategoricalHead(self.space.nvec.tolist(), **kwargs)

    def distribution(self, params):
        return tfp.distributions.Independent(
            tfp.distributions.Categorical(logits=params[0]), reinterpreted_batch_ndims=1
        )

    @property
    def noise_shape(self) -> tuple:
        return (len(self.space.nvec), int(max(self.space.nvec)))

    @property
    def mask_size(self) -> int:
        """Length of an action mask row: the sub-actions' masks concatenated."""
        return int(sum(self.space.nvec))

    def apply_mask(self, params, mask):
        """Masks `(B, sum(nvec))` split per sub-action and padded like the logits."""
        nvec = [int(n) for n in self.space.nvec]
        width = max(nvec)
        parts = tf.split(tf.cast(mask, tf.bool), nvec, axis=-1)
        padded = tf.stack([tf.pad(p, [[0, 0], [0, width - n]]) for p, n in zip(parts, nvec)], 1)
        return [tf.where(padded, params[0], MASKED_LOGIT)]
