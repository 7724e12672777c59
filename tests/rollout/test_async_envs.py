"""Parallel envs on one machine: gymnasium's AsyncVectorEnv (spawn) as the sampler's envs."""

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout import EnvError, InProcessSampler


class FailingCartPole(gym.Wrapper):
    """CartPole whose step raises after a few steps (picklable: defined at module level)."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.t = 0

    def step(self, action):
        self.t += 1
        if self.t == 3:
            raise RuntimeError("sensor unplugged")
        return self.env.step(action)


class HangingCartPole(gym.Wrapper):
    """CartPole whose copy reset with an odd seed hangs in its third step."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.t, self.odd = 0, False

    def reset(self, seed=None, **kwargs):
        if seed is not None:
            self.odd = seed % 2 == 1
        return self.env.reset(seed=seed, **kwargs)

    def step(self, action):
        self.t += 1
        if self.odd and self.t == 3:
            import time

            time.sleep(60)
        return self.env.step(action)


def test_a_hanging_async_env_is_named_after_the_timeout():
    agent = kt.PPO(n_envs=2, n_steps=16, batch_size=16)
    sampler = InProcessSampler("async", timeout=3.0)
    with pytest.raises(EnvError, match=r"Environment\(s\) \[1\] did not finish step\(\) within"):
        agent.fit(HangingCartPole, 32, verbose=0, seed=0, sampler=sampler)
    assert agent.num_timesteps == 0


def test_timeout_needs_async():
    with pytest.raises(ValueError, match="timeout needs vectorization='async'"):
        InProcessSampler("sync", timeout=1.0)


def test_async_envs_give_the_same_rollout_as_sync():
    agent = kt.PPO(n_envs=2, n_steps=16, batch_size=16)
    sync = InProcessSampler("sync")
    spaces = sync.start("CartPole-v1", 2, seed=5)
    agent.prepare(*spaces, seed=5)
    expected = sync.collect(agent, 16, iteration=0)
    sync.close()
    parallel = InProcessSampler("async")
    parallel.start("CartPole-v1", 2, seed=5)
    try:
        got = parallel.collect(agent, 16, iteration=0)
    finally:
        parallel.close()
    # Same seeds, same noise streams, same weights: the same transitions, each env in its
    # own process. (Values and log-probs come from the same compiled call in this process.)
    for name in ("observations", "actions", "rewards", "terminated", "truncated", "valid"):
        assert np.array_equal(getattr(expected, name), getattr(got, name)), name
    np.testing.assert_allclose(expected.log_probs, got.log_probs, atol=1e-6)


def test_fit_with_async_envs_counts_steps():
    agent = kt.PPO(n_envs=2, n_steps=32, batch_size=32, epochs=1)
    agent.fit("CartPole-v1", 128, verbose=0, seed=0, sampler=InProcessSampler("async"))
    assert agent.num_timesteps == 128


def test_async_env_error_names_the_env_index():
    agent = kt.PPO(n_envs=2, n_steps=16, batch_size=16)
    # Every env fails at its third step; whichever worker reports first is named.
    with pytest.raises(EnvError, match=r"Environment [01] raised RuntimeError in step\(\): sensor"):
        agent.fit(
            FailingCartPole,
            64,
            verbose=0,
            seed=0,
            sampler=InProcessSampler("async"),
        )
