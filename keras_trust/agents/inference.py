"""Serving a trained agent: `predict`, `predict_value` and `evaluate`, for any space.

`Serving` is the part of `Agent` that uses a trained policy (its base class beside
`keras.Model`); the functions below it do the work: the batch handling (a single
observation gets a batch axis), action masks and a recurrent policy's state.
"""

import gymnasium as gym
import numpy as np

from keras_trust.agents.recurrent_acting import RecurrentEpisodes
from keras_trust.agents.validation import require_built, require_positive_int
from keras_trust.rollout import masks
from keras_trust.rollout.envs import make_vector_env, single_env
from keras_trust.rollout.evaluation import MAX_EVAL_ENVS, run_episodes, run_vectorized_episodes
from keras_trust.spaces import is_image


class Serving:
    """`predict`, `predict_value` and `evaluate` of an `Agent` (a mixin before
    `keras.Model`, whose methods of these names it replaces)."""

    def predict(
        self, obs, deterministic=True, seed=None, action_mask=None, state=None, episode_start=None
    ):
        """Actions for an observation batch (a single observation works too).

        Args:
            obs: observation or batch of observations (a dict/tuple for Dict/Tuple spaces).
            deterministic: the distribution's mode if True, else a sample.
            seed: seed of the sampling noise when `deterministic=False`.
            action_mask: bool `(B, mask_size)` or `(mask_size,)` of allowed actions
                (Discrete/MultiDiscrete); masked actions are never returned.
            state: a recurrent agent's policy state (`initial_state(B)` when None).
            episode_start: bool `(B,)`: rows whose state is reset first. Default all False.

        Returns:
            The actions; for a recurrent agent `(actions, new_state)`.
        """
        require_built(self)
        return predict(self, obs, deterministic, seed, action_mask, state, episode_start)

    def predict_value(self, obs):
        """The critic's estimate, in the env's reward units (undoing reward scaling)."""
        require_built(self)
        return predict_value(self, obs)

    def evaluate(self, env, episodes=10, deterministic=True, seed=None, n_envs=None):
        """Runs whole episodes and reports their returns.

        The episodes run side by side over a vector env, one batched policy call per
        vector step: an env runs several episodes only when `episodes > n_envs`.

        Args:
            env: a gymnasium id, a zero-argument callable returning an Env, a
                `gymnasium.vector.VectorEnv` (NEXT_STEP autoreset; used as is), or an Env
                instance (stepped alone).
            episodes: number of episodes. Defaults to `10`.
            deterministic: act by the distribution's mode. Defaults to `True`.
            seed: seed of the first resets and of sampling. With `n_envs=1`, episode `k`
                starts from `reset(seed=seed + k)`; over `n` envs, env `i` starts from
                `reset(seed=seed + i)` and its later episodes from seeds derived from
                that and their number (`rollout.env_state.episode_seed`). So with
                `episodes <= n_envs` both give the same episodes.
            n_envs: envs stepped together. Defaults to `min(episodes, 16)` for an id or a
                callable (`rollout.evaluation.MAX_EVAL_ENVS`), the vector env's `num_envs`, or
                1 for an Env instance.

        Returns:
            A dict with `mean_return`, `std_return`, `mean_length`, `returns`, `lengths`.
        """
        require_built(self)
        require_positive_int("episodes", episodes)
        if n_envs is not None:
            require_positive_int("n_envs", n_envs)
        return evaluate(self, env, episodes, deterministic, seed, n_envs)


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


def evaluate(agent, env, episodes, deterministic, seed, n_envs=None) -> dict:
    """Whole episodes with the agent's policy: the env's masks applied, a recurrent
    policy's state carried through each episode and reset at its start.

    Over a vector env (one batched `predict` per vector step,
    `rollout.evaluation.run_vectorized_episodes`) unless `n_envs == 1` or `env` is a
    single `Env` instance, which is stepped alone.

    Raises:
        ValueError: `env` is not an env (id, Env, callable, VectorEnv), or its observation
            or action space differs from the agent's (in kind, shape, or number of actions).
    """
    single = n_envs == 1 or (isinstance(env, gym.Env) and n_envs is None)
    if not single:
        if n_envs is None:
            n_envs = env.num_envs if isinstance(env, gym.vector.VectorEnv) else None
        n_envs = n_envs or min(int(episodes), MAX_EVAL_ENVS)
        envs, owned = make_vector_env(env, int(n_envs))
        try:
            check_env_spaces(agent, envs.single_observation_space, envs.single_action_space)
            return run_vectorized_episodes(
                agent.predict,
                envs,
                episodes,
                deterministic=deterministic,
                seed=seed,
                mask_size=agent.action_distribution.mask_size if agent.masked else None,
                initial_state=agent.initial_state if agent.recurrent else None,
            )
        finally:
            if owned:
                envs.close()
    env, owned = single_env(env)
    try:
        check_env_spaces(agent, env.observation_space, env.action_space)
        run = masks.run_masked_episodes if agent.masked else run_episodes
        if not agent.recurrent:
            return run(agent.predict, env, episodes, deterministic, seed)
        tracked = RecurrentEpisodes(env, agent)
        return run(tracked.act, tracked, episodes, deterministic, seed)
    finally:
        if owned:
            env.close()


def check_env_spaces(agent, observation_space, action_space) -> None:
    """ValueError unless an env's spaces fit the agent's (bounds may differ)."""
    for what, ours, theirs in (
        ("observation", agent.observation_space, observation_space),
        ("action", agent.action_space, action_space),
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
