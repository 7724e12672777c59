"""Assembling an agent's networks for its spaces: input preprocessing, torso checks, heads.

The torsos are the user's Keras models (or the default MLP); the agent adds the action
distribution's head and a scalar value head. These helpers turn a raw observation batch
into the network input and check, before any training, that a user's model accepts it
and returns a feature batch.
"""

from typing import NamedTuple

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from keras_trust.layers.normalization import RunningNormalization
from keras_trust.networks import mlp


def observation_shape(space) -> tuple:
    """Shape of one raw observation as the agent stores it (Discrete: a scalar index)."""
    if isinstance(space, gym.spaces.Discrete):
        return ()
    if isinstance(space, gym.spaces.MultiBinary):
        return (int(space.n),)
    return tuple(space.shape)


def preprocess(space, normalizer, obs) -> tf.Tensor:
    """Raw observation batch -> float network input (one-hot for Discrete, normalization)."""
    x = tf.convert_to_tensor(obs)
    if isinstance(space, gym.spaces.Discrete):
        index = tf.cast(x, tf.int32) - int(space.start)
        return tf.one_hot(index, int(space.n))
    x = tf.cast(x, tf.float32)
    if normalizer is not None:
        x = normalizer(x)
    return x


def value_head() -> keras.layers.Layer:
    """The critic's scalar head (orthogonal init, gain 1, as in the PPO paper's code)."""
    return keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Orthogonal(gain=1.0), name="value_head"
    )


def check_torso(name: str, torso, x, space) -> None:
    """Raises `ValueError` unless `torso(x)` works and returns a `(batch, features)` tensor."""
    try:
        features = torso(x)
    except Exception as exc:
        raise ValueError(
            f"The {name} model does not accept observations of this env: it was called on "
            f"a batch of shape {tuple(x.shape)} (observation space {space}) and raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if len(features.shape) != 2:
        raise ValueError(
            f"The {name} model must map an observation batch to a feature batch of shape "
            f"(batch, features); for input {tuple(x.shape)} it returned shape "
            f"{tuple(features.shape)}."
        )


class Networks(NamedTuple):
    """The layers of an agent, built for its spaces."""

    policy_torso: keras.layers.Layer
    value_torso: keras.layers.Layer
    policy_head: keras.layers.Layer
    value_head: keras.layers.Layer
    obs_normalizer: RunningNormalization | None
    reward_normalizer: RunningNormalization | None


def build_networks(
    policy, value, hidden_sizes, normalize_observations, normalize_rewards, space, distribution
) -> Networks:
    """Torsos (the user's models, or default MLPs), heads and normalizers for the spaces."""
    obs_normalizer = reward_normalizer = None
    if normalize_observations:
        obs_normalizer = RunningNormalization(name="obs_normalizer")
        obs_normalizer.build((None, *space.shape))
    if normalize_rewards:
        reward_normalizer = RunningNormalization(center=False, name="reward_normalizer")
        reward_normalizer.build((None,))
    return Networks(
        policy or mlp(hidden_sizes, name="policy_mlp"),
        value or mlp(hidden_sizes, name="value_mlp"),
        distribution.make_head(),
        value_head(),
        obs_normalizer,
        reward_normalizer,
    )


def observation_batch(obs, shape):
    """`(batch, single)`: a float32 batch of observations of `shape` (one is made a batch)."""
    obs = np.asarray(obs, dtype=np.float32)
    single = obs.shape == tuple(shape)
    if single:
        obs = obs[None]
    if obs.shape[1:] != tuple(shape):
        raise ValueError(
            f"Expected observations of shape {tuple(shape)} (or a batch of them). "
            f"Received shape {obs.shape}."
        )
    return obs, single
