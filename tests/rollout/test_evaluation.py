"""Vectorized evaluation against hand-computed returns on a toy env.

The toy env plays a fixed list of episode lengths, one per reset. Its observation is the
number of steps left, `L, L-1, ..., 1`, and it pays `1 + action`; the test policy acts
`left % 2`, so an episode of length `L` returns `L + ceil(L / 2)`:
L = 1 -> 2, 2 -> 3, 3 -> 5, 4 -> 6, 5 -> 8.
"""

import gymnasium as gym
import numpy as np
import pytest

from keras_trust.rollout.evaluation import (
    episode_quotas,
    run_episodes,
    run_vectorized_episodes,
)

RETURN_OF_LENGTH = {1: 2.0, 2: 3.0, 3: 5.0, 4: 6.0, 5: 8.0}


class PlaylistEnv(gym.Env):
    """Episode k has length `lengths[k]` (cycling); pays 1 + action per step."""

    observation_space = gym.spaces.Box(0.0, 100.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, lengths, mask=False):
        self.lengths = list(lengths)
        self.episode = -1
        self.left = 0
        self.mask = mask

    def _info(self):
        return {"action_mask": np.array([True, self.left % 2 == 1])} if self.mask else {}

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.left = self.lengths[self.episode % len(self.lengths)]
        return np.array([self.left], np.float32), self._info()

    def step(self, action):
        reward = 1.0 + float(action)
        self.left -= 1
        return np.array([self.left], np.float32), reward, self.left == 0, False, self._info()


class Policy:
    """`left % 2` for every row; records each call's batch."""

    def __init__(self):
        self.calls = []

    def __call__(self, obs, deterministic=True, seed=None, **kwargs):
        obs = np.asarray(obs)
        self.calls.append((obs.copy(), kwargs))
        if obs.ndim == 1:
            return int(obs[0]) % 2
        return (obs[:, 0].astype(np.int64) % 2).astype(np.int64)


def _vector(*playlists, mask=False):
    return gym.vector.SyncVectorEnv([lambda p=p: PlaylistEnv(p, mask) for p in playlists])


def test_quotas_are_fixed_and_add_up():
    np.testing.assert_array_equal(episode_quotas(10, 4), [3, 3, 2, 2])
    np.testing.assert_array_equal(episode_quotas(3, 5), [1, 1, 1, 0, 0])
    assert episode_quotas(7, 3).sum() == 7


def test_each_env_contributes_its_quota_not_the_first_to_finish():
    # Env 0 finishes its 1-step episodes long before env 1's 5- and 4-step ones; taking
    # the first 4 episodes to end would give [2, 2, 2, 2]. Fixed quotas (2 each) give:
    envs = _vector([1], [5, 4, 3])
    policy = Policy()
    result = run_vectorized_episodes(policy, envs, episodes=4)
    assert result["returns"] == [2.0, 2.0, RETURN_OF_LENGTH[5], RETURN_OF_LENGTH[4]]
    assert result["lengths"] == [1, 1, 5, 4]
    assert result["mean_return"] == pytest.approx((2 + 2 + 8 + 6) / 4)
    assert result["std_return"] == pytest.approx(np.std([2, 2, 8, 6]))
    assert result["mean_length"] == pytest.approx(11 / 4)
    # One batched call per vector step: env 1 needs 5 + 1 (autoreset) + 4 steps.
    assert len(policy.calls) == 10
    assert all(obs.shape == (2, 1) for obs, _ in policy.calls)
    envs.close()


def test_autoreset_steps_are_not_counted():
    # Env 0 runs episodes of 2 then 3 steps: between them NEXT_STEP autoreset spends one
    # step that pays 0 and must not lengthen anything.
    envs = _vector([2, 3], [1, 1])
    result = run_vectorized_episodes(Policy(), envs, episodes=4)
    assert result["lengths"] == [2, 3, 1, 1]
    assert result["returns"] == [3.0, 5.0, 2.0, 2.0]
    envs.close()


def test_uneven_quota_and_envs_built_from_a_callable():
    # 5 episodes over 2 envs built from one callable: quotas [3, 2], each env replaying
    # lengths 3, 1, 2, ...
    result = run_vectorized_episodes(Policy(), lambda: PlaylistEnv([3, 1, 2]), episodes=5, n_envs=2)
    assert result["lengths"] == [3, 1, 2, 3, 1]
    assert result["returns"] == [5.0, 2.0, 3.0, 5.0, 2.0]


def test_one_episode_per_env_matches_run_episodes_with_the_same_seed():
    def lean(obs, deterministic=True, seed=None):  # push towards the pole's lean
        obs = np.asarray(obs)
        return (obs[..., 2] > 0).astype(np.int64)

    vectorized = run_vectorized_episodes(lean, "CartPole-v1", episodes=4, seed=11)
    sequential = run_episodes(lean, "CartPole-v1", episodes=4, seed=11)
    assert vectorized["returns"] == sequential["returns"]
    assert len(set(vectorized["returns"])) > 1  # the seeds do give different episodes


def test_action_masks_from_the_info_reach_predict():
    envs = _vector([2], [3], mask=True)
    policy = Policy()
    run_vectorized_episodes(policy, envs, episodes=2)
    assert "action_mask" not in policy.calls[0][1]  # only for an agent that uses masks
    policy = Policy()
    run_vectorized_episodes(policy, envs, episodes=2, mask_size=2)
    first_obs, kwargs = policy.calls[0]
    # left = 2 (even) forbids action 1; left = 3 (odd) allows it.
    np.testing.assert_array_equal(kwargs["action_mask"], [[True, False], [True, True]])
    envs.close()


def test_a_recurrent_policy_gets_its_state_back_and_episode_starts():
    calls = []

    def recurrent(obs, deterministic=True, seed=None, state=None, episode_start=None):
        # The state counts the steps since the episode start it was told about.
        (count,) = state
        count = np.where(episode_start, 0, count) + 1
        calls.append((np.asarray(obs)[:, 0].tolist(), episode_start.tolist(), count.tolist()))
        return (np.asarray(obs)[:, 0].astype(np.int64) % 2), [count]

    envs = _vector([2, 3])
    result = run_vectorized_episodes(
        recurrent, envs, episodes=2, initial_state=lambda n: [np.full(n, 99)]
    )
    assert result["returns"] == [RETURN_OF_LENGTH[2], RETURN_OF_LENGTH[3]]
    # obs 2, 1, then 0 (terminal; the autoreset step ignores the action), then 3, 2, 1.
    assert [c[0] for c in calls] == [[2], [1], [0], [3], [2], [1]]
    assert [c[1] for c in calls] == [[True], [False], [False], [True], [False], [False]]
    assert [c[2] for c in calls] == [[1], [2], [3], [1], [2], [3]]
    envs.close()


def test_rejects_zero_episodes():
    with pytest.raises(ValueError, match="episodes"):
        run_vectorized_episodes(Policy(), lambda: PlaylistEnv([1]), episodes=0)
