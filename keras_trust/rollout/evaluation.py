"""Evaluation: whole episodes with a policy, and the statistics of their returns."""

import numpy as np

from keras_trust.rollout.envs import single_env


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
    return {
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)),
        "returns": returns,
        "lengths": lengths,
    }
