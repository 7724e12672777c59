"""Generalized advantage estimation over masked, vectorized rollouts."""

import numpy as np


def compute_gae(rewards, values, terminated, truncated, valid, gamma=0.99, gae_lambda=0.95):
    """GAE(lambda) advantages and returns for a `(T, n_envs)` rollout.

    Handles gymnasium 1.x vector envs in NEXT_STEP autoreset mode exactly: the step
    after an episode ends is a reset step (`valid` False) whose advantage is 0, a
    terminated episode is not bootstrapped, and a truncated one is bootstrapped with the
    value of its final observation. That final observation is the observation of the
    reset step, so its value sits in `values[t + 1]` (Schulman et al., 2016,
    "High-Dimensional Continuous Control Using Generalized Advantage Estimation").

    Args:
        rewards: `(T, n_envs)` rewards.
        values: `(T + 1, n_envs)` values; `values[t]` is V(obs_t) and `values[T]` is the
            value of the observation after the last step.
        terminated: `(T, n_envs)` bools, the episode ended in a terminal state at step t.
        truncated: `(T, n_envs)` bools, the episode was cut off (time limit) at step t.
        valid: `(T, n_envs)` bools, False for reset steps (their action was ignored).
        gamma: discount factor. Defaults to `0.99`.
        gae_lambda: GAE lambda. Defaults to `0.95`.

    Returns:
        `(advantages, returns)`, each `(T, n_envs)` float32; `returns = advantages +
        values[:T]` (the critic's regression targets).

    Example:
    >>> adv, ret = compute_gae(np.ones((1, 1)), np.zeros((2, 1)), np.ones((1, 1), bool),
    ...                        np.zeros((1, 1), bool), np.ones((1, 1), bool))
    >>> float(adv[0, 0]), float(ret[0, 0])
    (1.0, 1.0)
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    terminated = np.asarray(terminated, dtype=bool)
    truncated = np.asarray(truncated, dtype=bool)
    valid = np.asarray(valid, dtype=bool)
    steps = rewards.shape[0]
    if values.shape[0] != steps + 1:
        raise ValueError(
            f"values must have T + 1 = {steps + 1} rows (the bootstrap value last). "
            f"Received values of shape {values.shape} for rewards of shape {rewards.shape}."
        )
    # A_t = valid_t * (delta_t + gamma * lambda * carry_t * A_{t+1}): everything but the
    # recurrence is computed for all steps at once, so the loop does two ops per step.
    bootstrap = np.where(terminated, 0.0, values[1:])
    delta = np.where(valid, rewards + gamma * bootstrap - values[:steps], 0.0)
    decay = np.where(valid & ~(terminated | truncated), gamma * gae_lambda, 0.0)
    advantages = np.zeros_like(rewards)
    running = np.zeros(rewards.shape[1:])
    for t in reversed(range(steps)):
        running = delta[t] + decay[t] * running
        advantages[t] = running
    returns = advantages + values[:steps]
    return advantages.astype(np.float32), returns.astype(np.float32)
