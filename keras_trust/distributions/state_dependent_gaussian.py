"""Generalized state-dependent exploration (gSDE) for float `Box` actions.

Raffin, Kober and Stulp, "Smooth Exploration for Robotic Reinforcement Learning" (CoRL
2021), as Stable-Baselines3's `StateDependentNoiseDistribution` has it (`full_std=True`,
no `expln`, features not learned through the noise). Independent Gaussian noise at every
step makes a jittery, nearly zero-mean push on the env; gSDE instead draws a random
linear map `E` (features x actions, entries `N(0, sigma_ij^2)`) and acts

    a = mean(s) + z(s) @ E,        z(s) = the policy torso's features,

keeping `E` for `sde_sample_freq` steps (a whole rollout when it is <= 0). Nearby states
then get nearby actions: exploration is smooth in time, which is what lets PPO and TRPO
solve Pendulum and MountainCarContinuous in rl-zoo's budgets.

Given the state, `a` is Gaussian with mean `mean(s)` and variance
`var_j(s) = sum_i z_i(s)^2 sigma_ij^2`, so everything the updates need (log-prob, KL,
entropy) is the diagonal Gaussian's with that per-row std, in closed form. The head
outputs `[mean, log_std(s), z(s)]`: the first two make the `DiagGaussian` law, `z` is
kept only to turn the noise into the sample. As in SB3, `z` enters the std with its
gradient stopped, and the variance gets `epsilon = 1e-6` added.

The sampling noise per env and step is the standard-normal matrix `eps` (`E = eps *
sigma`), repeated over blocks of `sde_sample_freq` steps of the rollout
(`rollout_noise`), so the same seeded streams as every other kind make it.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_trust.distributions.base import orthogonal
from keras_trust.distributions.diag_gaussian import DiagGaussian


@keras.saving.register_keras_serializable(package="keras_trust")
class StateDependentGaussianHead(keras.layers.Layer):
    """Features -> `[mean, log_std, features]` of a gSDE Gaussian.

    The trainable `log_std` is a `(features, dim)` matrix (`log sigma`), not a vector.

    Args:
        dim: action dimension.
        log_std_init: initial value of every `log sigma_ij`. Defaults to `0.0`.
        gain: orthogonal-initializer gain of the mean layer. Defaults to `0.01`.
        epsilon: added to the variance (SB3's `1e-6`).

    Example:
    >>> mean, log_std, z = StateDependentGaussianHead(2)(tf.ones([4, 3]))
    >>> mean.shape, log_std.shape, z.shape
    (TensorShape([4, 2]), TensorShape([4, 2]), TensorShape([4, 3]))
    """

    distribution = "gsde"

    def __init__(self, dim, log_std_init=0.0, gain=0.01, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.dim = int(dim)
        self.log_std_init = float(log_std_init)
        self.gain = float(gain)
        self.epsilon = float(epsilon)
        self.dense = keras.layers.Dense(
            self.dim, kernel_initializer=orthogonal(self.gain), dtype=self.dtype_policy
        )
        self.latent_dim = None

    def build(self, input_shape):
        self.dense.build(input_shape)
        self.latent_dim = int(input_shape[-1])
        self.log_std = self.add_weight(
            shape=(self.latent_dim, self.dim),
            initializer=keras.initializers.Constant(self.log_std_init),
            name="log_std",
        )

    def call(self, features):
        mean = self.dense(features)
        z = tf.stop_gradient(tf.cast(features, mean.dtype))
        sigma_sq = tf.exp(2.0 * tf.cast(self.log_std, mean.dtype))
        variance = tf.matmul(tf.square(z), sigma_sq) + self.epsilon
        return [mean, 0.5 * tf.math.log(variance), z]

    def get_config(self):
        return {
            **super().get_config(),
            "dim": self.dim,
            "log_std_init": self.log_std_init,
            "gain": self.gain,
            "epsilon": self.epsilon,
        }


class StateDependentGaussian(DiagGaussian):
    """gSDE over a float `Box`; params `[mean (B, d), log_std (B, d), features (B, k)]`.

    The env receives the sample clipped to the bounds, as with `DiagGaussian`.

    Options:
        log_std_init: initial `log sigma_ij`. Defaults to `0.0`.
        sde_sample_freq: steps between new exploration matrices within a rollout; `<= 0`
            draws one per env per rollout. Defaults to `-1` (SB3's default).
    """

    name = "gsde"

    def __init__(self, space, **options):
        super().__init__(space, **options)
        self.sample_freq = int(options.get("sde_sample_freq", -1))
        self.head = None

    def make_head(self, **kwargs):
        kwargs.setdefault("log_std_init", float(self.options.get("log_std_init", 0.0)))
        self.head = StateDependentGaussianHead(self.dim, **kwargs)
        return self.head

    def distribution(self, params):
        return super().distribution(params[:2])

    @property
    def noise_shape(self) -> tuple:
        if self.head is None or self.head.latent_dim is None:
            raise ValueError("The gSDE noise shape is known once the policy head is built.")
        return (self.head.latent_dim, self.dim)

    def rollout_noise(self, rng, n_steps):
        """`(n_steps, k, d)`: one exploration matrix per block of `sample_freq` steps."""
        block = self.sample_freq if self.sample_freq > 0 else n_steps
        draws = self.noise(rng, (-(-n_steps // block),))
        return np.repeat(draws, block, axis=0)[:n_steps]

    def sample(self, params, noise):
        mean, _, z = params
        sigma = tf.exp(tf.cast(self.head.log_std, mean.dtype))
        return mean + tf.einsum("bk,bkd->bd", z, noise * sigma)
