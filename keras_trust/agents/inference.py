"""Serving a trained agent: `predict`, `predict_value` and `evaluate`, for any space.

The batch handling (a single observation gets a batch axis), action masks and a
recurrent policy's state live here; `Agent`'s methods of the same names document the
arguments and call these.
"""

import gymnasium as gym
import numpy as np

from keras_trust.agents.recurrent_acting import RecurrentEpisodes
from keras_trust.rollout import masks
from keras_trust.rollout.envs import single_env
from keras_trust.rollout.evaluation import run_episodes
from keras_trust.spaces import is_image


def predict(agent, obs, deterministic, seed, action_mask, state, episode_start):
    """Actions (and, for a recurrent agent, the new state) for an observation batch."""
    batch, single = agent.observation_format.batch(obs)
    rows = len(agent.observation_format.flatten(batch)[0])
    mask = None
    if action_mask is not None or agent.masked:
        mask = masks.mask_batch(agent.action_distribution.mask_size, action_mask, rows)
    if not agent.recurrent:
        actions = agent.acting.predict(batch, deterministic, seed, mask)
        return actions[0] if single else actions
    state = agent.initial_state(rows) if state is None else state
    starts = np.zeros(rows, bool) if episode_start is None else episode_start
    starts = np.broadcast_to(np.asarray(starts, bool), (rows,))
    actions, state = agent.acting.predict_recurrent(batch, state, starts, deterministic, seed, mask)
    return (actions[0] if single else actions), state


def predict_value(agent, obs):
    """The critic's estimate in the env's reward units (reward scaling undone)."""
    batch, single = agent.observation_format.batch(obs)
    values = agent.acting.value(batch)
    if agent.reward_normalizer is not None:
        values = values * float(agent.reward_normalizer.std.numpy())
    return values[0] if single else values


def evaluate(agent, env, episodes, deterministic, seed) -> dict:
    """Whole episodes with the agent's policy: the env's masks applied, a recurrent
    policy's state carried through each episode and reset at its start.

    Raises:
        ValueError: `env` is not an env (id, Env, callable), or its observation or action
            space differs from the agent's (in kind, shape, or number of actions).
    """
    env, owned = single_env(env)
    try:
        check_env_spaces(agent, env)
        run = masks.run_masked_episodes if agent.masked else run_episodes
        if not agent.recurrent:
            return run(agent.predict, env, episodes, deterministic, seed)
        tracked = RecurrentEpisodes(env, agent)
        return run(tracked.act, tracked, episodes, deterministic, seed)
    finally:
        if owned:
            env.close()


def check_env_spaces(agent, env) -> None:
    """ValueError unless `env`'s spaces fit the agent's (bounds may differ)."""
    for what, ours, theirs in (
        ("observation", agent.observation_space, env.observation_space),
        ("action", agent.action_space, env.action_space),
    ):
        if not _same_kind(ours, theirs):
            raise ValueError(
                f"The env's {what} space {theirs} does not fit the agent, which was built "
                f"for the {what} space {ours}."
            )


def _same_kind(a, b) -> bool:
    """Same space class, shape and structure (Dict keys, Tuple length, Discrete n, nvec,
    image or not); the bounds of a Box may differ."""
    if type(a) is not type(b):
        return False
    if isinstance(a, gym.spaces.Dict):
        return set(a.spaces) == set(b.spaces) and all(
            _same_kind(s, b.spaces[k]) for k, s in a.spaces.items()
        )
    if isinstance(a, gym.spaces.Tuple):
        return len(a.spaces) == len(b.spaces) and all(map(_same_kind, a.spaces, b.spaces))
    if isinstance(a, gym.spaces.Discrete):
        return int(a.n) == int(b.n) and int(a.start) == int(b.start)
    if isinstance(a, gym.spaces.MultiDiscrete):
        return np.array_equal(a.nvec, b.nvec) and np.array_equal(a.start, b.start)
    if isinstance(a, gym.spaces.Box):
        return a.shape == b.shape and is_image(a) == is_image(b)
    return a.shape == b.shape
