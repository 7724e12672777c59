"""Diagonal Gaussian with a state-independent log-std, for float `Box` actions of any shape."""

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_trust.distributions.base import ActionDistribution, float32_constant, orthogonal


@keras.saving.register_keras_serializable(package="keras_trust")
class DiagGaussianHead(keras.layers.Layer):
    """Maps features to the mean of a diagonal Gaussian with a state-independent log-std.

    The log-std is a trainable weight of shape `(dim,)` (not a function of the input),
    broadcast to the batch, as in Schulman et al. (2015) and PPO.

    Args:
        dim: action dimension.
        log_std_init: initial log standard deviation. Defaults to `0.0`.
        gain: orthogonal-initializer gain of the mean layer. Defaults to `0.01`.

    Example:
    >>> mean, log_std = DiagGaussianHead(2)(tf.zeros([4, 5]))
    >>> mean.shape, log_std.shape
    (TensorShape([4, 2]), TensorShape([4, 2]))
    """

    distribution = "diag_gaussian"

    def __init__(self, dim: int, log_std_init: float = 0.0, gain: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.log_std_init = float(log_std_init)
        self.gain = float(gain)
        self.dense = keras.layers.Dense(
            self.dim, kernel_initializer=orthogonal(self.gain), dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.log_std = self.add_weight(
            shape=(self.dim,),
            initializer=keras.initializers.Constant(self.log_std_init),
            name="log_std",
        )

    def call(self, features):
        mean = self.dense(features)
        log_std = tf.broadcast_to(tf.cast(self.log_std, mean.dtype), tf.shape(mean))
        return [mean, log_std]

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "log_std_init": self.log_std_init,
            "gain": self.gain,
        }


class DiagGaussian(ActionDistribution):
    """Independent Normals over the action dimensions; params `[mean, log_std]`, each `(B, d)`.

    Samples are `mean + exp(log_std) * eps` with standard-normal `eps`. The env receives
    the sample clipped to the space's bounds (as Stable-Baselines3 does); the stored
    action, and so its log-probability, is the unclipped sample. A Box of any shape is
    handled flat inside (`d = prod(shape)`) and reshaped to the space's shape for the env.

    Options:
        log_std_init: initial log-std of the head. Defaults to `0.0`.
    """

    name = "diag_gaussian"

    @classmethod
    def supports(cls, space) -> bool:
        if not isinstance(space, gym.spaces.Box):
            return False
        if len(space.shape) == 0 or int(np.prod(space.shape)) == 0:
            raise ValueError(f"Unsupported action space {space}: a Box action needs a shape.")
        if not np.issubdtype(space.dtype, np.floating):
            raise ValueError(f"Unsupported action space {space}: Box actions must be float.")
        return True

    def make_head(self, **kwargs):
        kwargs.setdefault("log_std_init", float(self.options.get("log_std_init", 0.0)))
        return DiagGaussianHead(self.dim, **kwargs)

    @property
    def dim(self) -> int:
        """Number of action dimensions (the Box flattened)."""
        return int(np.prod(self.space.shape))

    def distribution(self, params):
        mean, log_std = params
        return tfp.distributions.Independent(
            tfp.distributions.Normal(loc=mean, scale=tf.exp(log_std)), reinterpreted_batch_ndims=1
        )

    @property
    def noise_shape(self) -> tuple:
        return (self.dim,)

    def noise(self, rng, size):
        return rng.standard_normal((*size, *self.noise_shape))

    def sample(self, params, noise):
        mean, log_std = params
        return mean + tf.exp(log_std) * noise

    def mode(self, params):
        return params[0]

    def env_action(self, action):
        low, high = self.space.low.reshape(-1), self.space.high.reshape(-1)
        if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
            action = tf.clip_by_value(action, float32_constant(low), float32_constant(high))
        return self.to_space_shape(action)

    def to_space_shape(self, action):
        """`(B, d)` -> `(B, *shape)` (the identity for a 1-D Box)."""
        if len(self.space.shape) == 1:
            return action
        return tf.reshape(action, [-1, *self.space.shape])
