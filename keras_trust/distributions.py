"""Action distributions: gymnasium space -> Keras head layer + TFP distribution builder.

Heads are Keras layers that output *parameter tensors* (a list), never distribution
objects. `make_distribution(kind, params)` builds the matching TFP distribution, whose
closed-form KL comes from `tfp.distributions.kl_divergence`.

| action space    | kind                  | params                                  |
|-----------------|-----------------------|-----------------------------------------|
| `Discrete(n)`   | `"categorical"`       | `[logits (B, n)]`                       |
| `MultiDiscrete` | `"multi_categorical"` | `[logits (B, k, max_n)]`, padding -1e9  |
| `Box` (1-D)     | `"diag_gaussian"`     | `[mean (B, d), log_std (B, d)]`         |
"""

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from keras_trust._graph import straight_line

tfd = tfp.distributions

KINDS = ("categorical", "multi_categorical", "diag_gaussian")
# Logit given to the padded (impossible) categories of MultiDiscrete sub-actions: exp()
# underflows to exactly 0, while log-softmax stays finite so KL and entropy stay finite.
_PAD_LOGIT = -1e9


def _orthogonal(gain):
    return keras.initializers.Orthogonal(gain=gain)


def distribution_kind(space) -> str:
    """The distribution kind used for a gymnasium action space.

    Raises:
        ValueError: for spaces other than Discrete, MultiDiscrete and 1-D Box.
    """
    if isinstance(space, gym.spaces.Discrete):
        return "categorical"
    if isinstance(space, gym.spaces.MultiDiscrete):
        if len(space.nvec.shape) != 1:
            raise ValueError(
                f"Unsupported action space {space}: MultiDiscrete must be 1-D. "
                f"Received nvec shape {space.nvec.shape}."
            )
        return "multi_categorical"
    if isinstance(space, gym.spaces.Box):
        if len(space.shape) != 1:
            raise ValueError(
                f"Unsupported action space {space}: Box actions must be 1-D. "
                f"Received shape {space.shape}."
            )
        if not np.issubdtype(space.dtype, np.floating):
            raise ValueError(f"Unsupported action space {space}: Box actions must be float.")
        return "diag_gaussian"
    raise ValueError(
        f"Unsupported action space {type(space).__name__} ({space}): keras_trust supports "
        "Discrete, MultiDiscrete and 1-D Box action spaces."
    )


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
            self.n, kernel_initializer=_orthogonal(self.gain), dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        return [self.dense(features)]

    def get_config(self):
        return {**super().get_config(), "n": self.n, "gain": self.gain}


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
            sum(self.nvec), kernel_initializer=_orthogonal(self.gain), dtype=self.dtype_policy
        )

    def build(self, input_shape):
        self.dense.build(input_shape)

    def call(self, features):
        flat = self.dense(features)
        width = max(self.nvec)
        parts = tf.split(flat, self.nvec, axis=-1)
        padded = [
            tf.pad(p, [[0, 0], [0, width - n]], constant_values=_PAD_LOGIT)
            for p, n in zip(parts, self.nvec)
        ]
        return [tf.stack(padded, axis=1)]

    def get_config(self):
        return {**super().get_config(), "nvec": self.nvec, "gain": self.gain}


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
            self.dim, kernel_initializer=_orthogonal(self.gain), dtype=self.dtype_policy
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


def head_for_space(space, **kwargs) -> keras.layers.Layer:
    """The distribution head layer for a gymnasium action space.

    Example:
    >>> type(head_for_space(gym.spaces.Discrete(2))).__name__
    'CategoricalHead'
    """
    kind = distribution_kind(space)
    if kind == "categorical":
        return CategoricalHead(int(space.n), **kwargs)
    if kind == "multi_categorical":
        return MultiCategoricalHead(space.nvec.tolist(), **kwargs)
    return DiagGaussianHead(int(space.shape[0]), **kwargs)


def infer_kind(params) -> str:
    """Guesses the kind from the parameter list: 2 tensors -> Gaussian, rank 3 -> multi."""
    params = list(params)
    if len(params) == 2:
        return "diag_gaussian"
    if len(params) == 1:
        return "multi_categorical" if params[0].shape.rank == 3 else "categorical"
    raise ValueError(f"Cannot infer a distribution from {len(params)} parameter tensors.")


@straight_line
def make_distribution(kind: str, params) -> tfd.Distribution:
    """Builds the TFP distribution of `kind` from its parameter tensors.

    The event is one action per batch row: `log_prob` and `entropy` have shape `(B,)`.

    Example:
    >>> d = make_distribution("categorical", [tf.zeros([1, 4])])
    >>> round(float(d.entropy()[0]), 4)  # log(4)
    1.3863
    """
    params = list(params)
    if kind == "categorical":
        return tfd.Categorical(logits=params[0])
    if kind == "multi_categorical":
        return tfd.Independent(tfd.Categorical(logits=params[0]), reinterpreted_batch_ndims=1)
    if kind == "diag_gaussian":
        mean, log_std = params
        return tfd.Independent(
            tfd.Normal(loc=mean, scale=tf.exp(log_std)), reinterpreted_batch_ndims=1
        )
    raise ValueError(f"Unknown distribution kind {kind!r}; expected one of {KINDS}.")


@straight_line
def kl_divergence(kind: str, p_params, q_params) -> tf.Tensor:
    """Closed-form KL(P || Q) per batch row, P and Q given by their parameters."""
    return tfd.kl_divergence(make_distribution(kind, p_params), make_distribution(kind, q_params))


@straight_line
def deterministic_action(kind: str, params) -> tf.Tensor:
    """The mode of the distribution with plain TF ops (no TFP ops, so exporters accept it)."""
    params = list(params)
    if kind == "categorical":
        return tf.argmax(params[0], axis=-1, output_type=tf.int64)
    if kind == "multi_categorical":
        return tf.argmax(params[0], axis=-1, output_type=tf.int64)
    if kind == "diag_gaussian":
        return params[0]
    raise ValueError(f"Unknown distribution kind {kind!r}; expected one of {KINDS}.")
