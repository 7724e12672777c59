"""Evaluation: whole episodes with a policy, one env at a time or vectorized, and the
statistics of their returns."""

import gymnasium as gym
import numpy as np

from keras_trust.rollout.envs import make_vector_env, single_env
from keras_trust.rollout.masks import read_masks


def run_episodes(predict, env, episodes: int, deterministic: bool = True, seed=None) -> dict:
    """Runs `episodes` whole episodes of `env` with `predict(obs, deterministic, seed)`.

    Args:
        predict: the agent's `predict` (single observation in, action out).
        env: a gymnasium id, an Env or a zero-argument callable returning one.
        episodes: number of episodes.
        deterministic: act by the distribution's mode.
        seed: seed of the first reset (episode k uses `seed + k`) and of sampling.

    Returns:
        A dict with `mean_return`, `std_return`, `mean_length`, `returns`, `lengths`.
    """
    env, owned = single_env(env)
    returns, lengths = [], []
    try:
        for k in range(episodes):
            obs, _ = env.reset(seed=None if seed is None else int(seed) + k)
            done, total, length = False, 0.0, 0
            while not done:
                sample_seed = None if seed is None else [int(seed), k, length]
                action = predict(obs, deterministic=deterministic, seed=sample_seed)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                length += 1
                done = terminated or truncated
            returns.append(total)
            lengths.append(length)
    finally:
        if owned:
            env.close()
    return episode_statistics(returns, lengths)


# Copies of the env stepped together by `run_vectorized_episodes` when it builds them.
MAX_EVAL_ENVS = 16


def episode_quotas(episodes: int, n_envs: int) -> np.ndarray:
    """How many episodes each of `n_envs` envs runs so that together they run `episodes`.

    The first `episodes % n_envs` envs run one more than the others. Fixing the quotas
    before any step is what keeps vectorized evaluation unbiased: taking the first
    `episodes` episodes to *finish* would over-represent short episodes (early
    failures, in a task rewarded for staying alive).
    """
    quotas = np.full(n_envs, episodes // n_envs, dtype=np.int64)
    quotas[: episodes % n_envs] += 1
    return quotas


def run_vectorized_episodes(
    predict,
    env,
    episodes: int,
    n_envs=None,
    deterministic: bool = True,
    seed=None,
    mask_size: int | None = None,
    initial_state=None,
) -> dict:
    """Runs `episodes` whole episodes over a vector env, one batched `predict` per step.

    Env `i` runs exactly `episode_quotas(episodes, n_envs)[i]` episodes, in order, and
    any episode it finishes past its quota is ignored; an env that is done waits (it is
    still stepped, since a vector env steps all its envs, but nothing is recorded).
    With gymnasium's NEXT_STEP autoreset, the step after an episode ends only resets
    that env (its action is ignored and it pays 0), so that step is not counted.

    With `seed`, env `i` starts from `reset(seed=seed + i)`; for the envs keras_trust
    builds, its later episodes start from `rollout.env_state.episode_seed(seed + i, e)`
    (a user's vector env continues its own streams). With one episode per env the
    returns are those of `run_episodes(..., seed=seed)`, episode `k` on env `k`.

    Args:
        predict: the agent's `predict` (observation batch in, action batch out).
        env: a gymnasium id, an Env (then one env), a zero-argument callable returning
            one, or a `gymnasium.vector.VectorEnv` in NEXT_STEP autoreset mode (used as
            is, left open).
        episodes: number of episodes.
        n_envs: envs to step together. Defaults to `min(episodes, MAX_EVAL_ENVS)`, or
            the vector env's `num_envs`.
        deterministic: act by the distribution's mode. Defaults to `True`.
        seed: seed of the first resets and of sampling (`deterministic=False`).
        mask_size: for an agent that acts under action masks, the length of a mask row:
            each step's masks (`info["action_mask"]` or the envs' `action_masks()`,
            `rollout.masks.read_masks`) are passed to `predict` as `action_mask`.
            Defaults to `None` (no masks).
        initial_state: for a recurrent agent, its `initial_state` (batch size -> state):
            `predict` is then called with `state=` and `episode_start=` and returns
            `(actions, new_state)`; `episode_start` is true at the first step and on the
            first observation of each new episode (the one after an autoreset step).
            Defaults to `None` (a feed-forward policy).

    Returns:
        A dict with `mean_return`, `std_return`, `mean_length`, `returns`, `lengths`
        (env 0's episodes first, then env 1's, ...).
    """
    if not isinstance(episodes, int | np.integer) or episodes < 1:
        raise ValueError(f"episodes must be a positive integer. Received: episodes={episodes!r}")
    if isinstance(env, gym.vector.VectorEnv):
        n_envs = env.num_envs if n_envs is None else n_envs
    elif isinstance(env, gym.Env):
        n_envs = 1 if n_envs is None else n_envs
    elif n_envs is None:
        n_envs = min(int(episodes), MAX_EVAL_ENVS)
    envs, owned = make_vector_env(env, int(n_envs))
    quotas = episode_quotas(int(episodes), envs.num_envs)
    done_episodes = [[] for _ in range(envs.num_envs)]
    try:
        obs, info = envs.reset(seed=None if seed is None else int(seed))
        ep_return = np.zeros(envs.num_envs)
        ep_length = np.zeros(envs.num_envs, dtype=np.int64)
        resetting = np.zeros(envs.num_envs, dtype=bool)
        counts = np.zeros(envs.num_envs, dtype=np.int64)
        state = None if initial_state is None else initial_state(envs.num_envs)
        starts = np.ones(envs.num_envs, dtype=bool)
        step = 0
        while (counts < quotas).any():
            kwargs = {}
            if mask_size is not None:
                kwargs["action_mask"] = read_masks(envs, info, mask_size)
            sample_seed = None if seed is None else [int(seed), step]
            if state is None:
                actions = predict(obs, deterministic=deterministic, seed=sample_seed, **kwargs)
            else:
                actions, state = predict(
                    obs,
                    deterministic=deterministic,
                    seed=sample_seed,
                    state=state,
                    episode_start=starts,
                    **kwargs,
                )
            obs, rewards, terminated, truncated, info = envs.step(actions)
            starts = resetting.copy()  # an autoreset step returned a new episode's first obs
            step += 1
            live = ~resetting  # envs whose step was a real step, not an autoreset
            ep_return[live] += np.asarray(rewards, dtype=np.float64)[live]
            ep_length[live] += 1
            ended = live & (np.asarray(terminated) | np.asarray(truncated))
            for i in np.flatnonzero(ended & (counts < quotas)):
                done_episodes[i].append((float(ep_return[i]), int(ep_length[i])))
                counts[i] += 1
            ep_return[ended] = 0.0
            ep_length[ended] = 0
            resetting = ended
    finally:
        if owned:
            envs.close()
    returns = [r for episodes_of_env in done_episodes for r, _ in episodes_of_env]
    lengths = [n for episodes_of_env in done_episodes for _, n in episodes_of_env]
    return episode_statistics(returns, lengths)


def episode_statistics(returns, lengths) -> dict:
    """`mean_return`, `std_return`, `mean_length` and the lists, as `evaluate` returns them."""
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
        "lengths": lengths,
    }
