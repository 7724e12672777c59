"""Envs, callbacks and small builders shared by the agent API test modules
(`test_agent_api`, `test_agent_save_export`, `test_agent_callbacks`) and their fixtures
in `conftest.py`."""

import gymnasium as gym
import keras
import numpy as np

import keras_trust as kt

REQUIRED_LOGS = {
    "episode_return",
    "episode_length",
    "policy_loss",
    "value_loss",
    "entropy",
    "kl",
    "explained_variance",
    "fps",
}


class ConstantEnv(gym.Env):
    """Reward 1 every step, constant observation; only a time limit ends an episode."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), 1.0, False, False, {}


def constant_env(max_steps=10):
    return gym.wrappers.TimeLimit(ConstantEnv(), max_episode_steps=max_steps)


class MultiDiscreteEnv(gym.Env):
    """MultiDiscrete actions; reward = first sub-action; terminates after 8 steps."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def __init__(self, start=None):
        self.action_space = gym.spaces.MultiDiscrete([3, 2], start=start)
        self.received = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.received.append(np.array(action))
        self.t += 1
        obs = np.array([self.t / 8, -self.t / 8], np.float32)
        return obs, float(action[0]), self.t >= 8, False, {}


class Recorder(gym.Wrapper):
    """Keeps every observation and reward the wrapped env emits, and counts steps."""

    def __init__(self, env):
        super().__init__(env)
        self.observations, self.rewards = [], []

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.observations.append(np.array(obs))
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.observations.append(np.array(obs))
        self.rewards.append(float(reward))
        return obs, reward, terminated, truncated, info


class LogRecorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.logs = [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.logs.append(dict(logs))


def small_ppo(**kwargs):
    config = dict(n_steps=64, batch_size=32, epochs=2, hidden_sizes=(16,))
    config.update(kwargs)
    return kt.PPO(**config)


def same_weights(a, b):
    wa, wb = a.weights, b.weights
    assert len(wa) == len(wb)
    return all(np.array_equal(np.array(x), np.array(y)) for x, y in zip(wa, wb))


def cartpole_observations(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4)) * [1.0, 1.0, 0.1, 1.0]).astype(np.float32)
