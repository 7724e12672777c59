"""Reward scaling by the running std of the discounted return (as SB3's VecNormalize)."""

import numpy as np


class RewardScaler:
    """Divides rewards by the std of the discounted return, clipped to [-10, 10].

    The discounted return `ret_t = gamma * ret_{t-1} + r_t` is tracked per env across
    rollouts; a reset step (the one after each episode end) zeroes it. Its statistics
    live in `normalizer` (a `RunningNormalization` layer of the agent, so they are
    saved with it).

    Args:
        normalizer: `RunningNormalization(center=False)` built for shape `()`.
        gamma: the discount factor.
        n_envs: number of envs of the rollouts.
    """

    def __init__(self, normalizer, gamma: float, n_envs: int):
        self.normalizer = normalizer
        self.gamma = float(gamma)
        self.returns = np.zeros(n_envs)

    def scale(self, rollout) -> np.ndarray:
        """The rollout's rewards divided by the updated return std (float32)."""
        rewards = rollout.rewards
        # Only the recurrence loops; masks and decays are computed for all steps at once.
        decay = np.where(rollout.valid, self.gamma, 0.0)
        valid_rewards = np.where(rollout.valid, rewards.astype(np.float64), 0.0)
        ret = self.returns
        discounted = np.empty_like(valid_rewards)
        for t in range(rewards.shape[0]):
            ret = decay[t] * ret + valid_rewards[t]
            discounted[t] = ret
        self.returns = np.where(rollout.terminated[-1] | rollout.truncated[-1], 0.0, ret)
        self.normalizer.update(discounted[rollout.valid])
        std = float(self.normalizer.std.numpy())
        return np.clip(rewards / std, -10.0, 10.0).astype(np.float32)
