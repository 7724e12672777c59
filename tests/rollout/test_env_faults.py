"""Env faults stop `fit` with a clear error naming the env, before any update.

Wrong observation shapes or dtypes and non-numeric rewards are caught at the env that
produced them (`EnvOutputError`, a `ValueError`); an exception in `reset` or `step` is an
`EnvError` naming the env index; the weights are those from before.
"""

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout import EnvError, EnvOutputError


class Faulty(gym.Env):
    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Discrete(2)
    fault = None

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        if self.fault == "reset":
            raise RuntimeError("boom")
        return np.zeros(3, np.float32), {}

    def step(self, action):
        self.t += 1
        obs, reward = np.zeros(3, np.float32), 0.0
        if self.t == 5:
            if self.fault == "shape":
                obs = np.zeros(4, np.float32)
            elif self.fault == "dtype":
                obs = np.array(["a", "b", "c"])
            elif self.fault == "reward":
                reward = "x"
            elif self.fault == "step":
                raise KeyError("no such state")
        return obs, reward, False, self.t > 20, {}


def faulty(fault):
    return type(f"Faulty_{fault}", (Faulty,), {"fault": fault})


@pytest.mark.parametrize(
    "fault, error, message",
    [
        ("shape", EnvOutputError, r"Environment 1 .* expected shape \(3,\), got shape \(4,\)"),
        ("dtype", EnvOutputError, "Environment 1 .* expected numbers, got dtype <U1"),
        ("reward", EnvOutputError, "Environment 1 .* reward that is not a number.*'x'"),
        ("step", EnvError, r"Environment 1 raised KeyError in step\(\)"),
    ],
)
def test_step_faults_name_the_env_and_leave_the_weights(fault, error, message):
    agent = kt.PPO(n_envs=2, n_steps=16, batch_size=16)
    env_ids = iter(range(100))

    def make():
        return faulty(fault)() if next(env_ids) == 1 else Faulty()

    with pytest.raises(error, match=message):
        agent.fit(make, 64, verbose=0, seed=0)
    assert agent.num_timesteps == 0
    assert issubclass(EnvOutputError, ValueError)


def test_reset_fault_is_an_env_error():
    with pytest.raises(EnvError, match=r"Environment 0 raised RuntimeError in reset\(\): boom"):
        kt.PPO(n_steps=16, batch_size=16).fit(faulty("reset"), 32, verbose=0)


def test_dict_observation_with_a_wrong_leaf():
    class DictFaulty(Faulty):
        observation_space = gym.spaces.Dict(
            {"a": gym.spaces.Box(-1, 1, (2,), np.float32), "b": gym.spaces.Discrete(3)}
        )

        def reset(self, seed=None, options=None):
            super().reset(seed=seed)
            return {"a": np.zeros(2, np.float32), "b": 0}, {}

        def step(self, action):
            self.t += 1
            return {"a": np.zeros(5, np.float32), "b": 1}, 0.0, False, False, {}

    with pytest.raises(EnvOutputError, match=r"\['a'\]: shape \(2,\), got shape \(5,\)"):
        kt.PPO(n_steps=16, batch_size=16).fit(DictFaulty, 32, verbose=0)
