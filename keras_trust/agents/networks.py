"""Assembling an agent's networks for its spaces: torsos, heads, normalizers, checks.

The torsos are the user's Keras models (or the default torso for the observation space:
MLP, CNN, or per-leaf encoders); the agent adds the action distribution's head and a
scalar value head. `check_torso` makes sure, before any training, that a user's model
accepts the observations (a nest for Dict/Tuple spaces) and returns a feature batch.
"""

from typing import NamedTuple

import keras
import numpy as np

from keras_trust import distributions
from keras_trust.layers.normalization import RunningNormalization
from keras_trust.networks import default_torso
from keras_trust.observations import ObservationFormat, leaf_shape, normalizable


def value_head() -> keras.layers.Layer:
    """The critic's scalar head (orthogonal init, gain 1, as in the PPO paper's code)."""
    return keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Orthogonal(gain=1.0), name="value_head"
    )


def check_torso(name: str, torso, x, space) -> None:
    """Raises `ValueError` unless `torso(x)` works and returns a `(batch, features)` tensor."""
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), x)
    try:
        features = torso(x)
    except Exception as exc:
        raise ValueError(
            f"The {name} model does not accept observations of this env: it was called on "
            f"a batch of shape {shapes} (observation space {space}) and raised "
            f"{type(exc).__name__}: {exc}"
        ) from exc
    if not hasattr(features, "shape") or len(features.shape) != 2:
        raise ValueError(
            f"The {name} model must map an observation batch to a feature batch of shape "
            f"(batch, features); for input {shapes} it returned "
            f"{getattr(features, 'shape', type(features).__name__)}."
        )


class Networks(NamedTuple):
    """The layers of an agent, built for its spaces."""

    policy_torso: keras.layers.Layer
    value_torso: keras.layers.Layer
    policy_head: keras.layers.Layer
    value_head: keras.layers.Layer
    obs_normalizer: RunningNormalization | None
    leaf_normalizers: dict | None
    reward_normalizer: RunningNormalization | None


def build_networks(
    policy,
    value,
    hidden_sizes,
    normalize_observations,
    normalize_rewards,
    obs_format,
    dist,
    activation="tanh",
) -> Networks:
    """Torsos (the user's models, or defaults), heads and normalizers for the spaces.

    Observation normalization covers the non-image float `Box` leaves: one
    `obs_normalizer` for a flat `Box` space, else `leaf_normalizers` keyed `leaf_<i>`
    by the leaf's index in `tf.nest` order.
    """
    obs_normalizer = leaf_normalizers = reward_normalizer = None
    if normalize_observations:
        eligible = [i for i, s in enumerate(obs_format.leaves) if normalizable(s)]
        if not eligible:
            raise ValueError(
                "normalize_observations=True needs a float Box observation (or Dict/Tuple "
                f"leaf) that is not an image. Received: {obs_format.space}"
            )
        if not obs_format.nested:
            obs_normalizer = RunningNormalization(name="obs_normalizer")
            obs_normalizer.build((None, *obs_format.space.shape))
        else:
            leaf_normalizers = {}
            for i in eligible:
                layer = RunningNormalization(name=f"obs_normalizer_leaf_{i}")
                layer.build((None, *leaf_shape(obs_format.leaves[i])))
                leaf_normalizers[f"leaf_{i}"] = layer
    if normalize_rewards:
        reward_normalizer = RunningNormalization(center=False, name="reward_normalizer")
        reward_normalizer.build((None,))
    return Networks(
        policy or default_torso(obs_format, hidden_sizes, name="policy_mlp", activation=activation),
        value or default_torso(obs_format, hidden_sizes, name="value_mlp", activation=activation),
        dist.make_head(),
        value_head(),
        obs_normalizer,
        leaf_normalizers,
        reward_normalizer,
    )


def leaf_normalizer_list(obs_format, obs_normalizer, leaf_normalizers) -> list:
    """One normalizer (or None) per observation leaf."""
    if not obs_format.nested:
        return [obs_normalizer]
    leaf_normalizers = leaf_normalizers or {}
    return [leaf_normalizers.get(f"leaf_{i}") for i in range(len(obs_format.leaves))]


def update_normalizers(obs_format, normalizers, observations) -> None:
    """Folds a batch of stored observations into each leaf's running statistics."""
    for norm, x in zip(normalizers, obs_format.flatten(observations)):
        if norm is not None:
            norm.update(np.asarray(x))


def build_agent(agent, observation_space, action_space, masked) -> None:
    """Sets an agent's spaces, distribution and layers for its env, and checks its models.

    The layers become the agent's attributes (`policy_torso`, `policy_head`, ...), so
    Keras tracks them and `.keras` files hold them.
    """
    obs_format = ObservationFormat(observation_space)  # ValueError naming the space
    dist = distributions.for_space(
        action_space,
        agent.action_distribution_name,
        log_std_init=agent.log_std_init,
        sde_sample_freq=agent.sde_sample_freq,
    )
    if masked and dist.mask_size is None:
        raise ValueError(
            f"The env provides action masks, but {action_space} actions cannot be masked "
            "(masks apply to Discrete and MultiDiscrete actions)."
        )
    agent.observation_space, agent.action_space = observation_space, action_space
    agent.observation_format, agent.action_distribution = obs_format, dist
    agent.masked = bool(masked)
    built = build_networks(
        agent.policy_model,
        agent.value_model,
        agent.hidden_sizes,
        agent.normalize_observations,
        agent.normalize_rewards,
        obs_format,
        dist,
        activation=agent.activation,
    )
    agent.policy_torso, agent.value_torso, agent.policy_head, agent.value_head = built[:4]
    agent.obs_normalizer, agent.leaf_normalizers, agent.reward_normalizer = built[4:]
    x = obs_format.preprocess(obs_format.zeros(2), agent.normalizers)
    check_torso("policy", agent.policy_torso, x, observation_space)
    check_torso("value", agent.value_torso, x, observation_space)
    agent.policy_head(agent.policy_torso(x))
    agent.value_head(agent.value_torso(x))
