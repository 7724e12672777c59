"""Agents trained once per test module, shared by the agent API tests that only read
them (save/load, export, evaluate, predict)."""

import gymnasium as gym
import pytest
from agent_helpers import Recorder, small_ppo

import keras_trust as kt


@pytest.fixture(scope="module")
def cartpole_ppo():
    """PPO trained for two epochs on CartPole (2 x 2 passes x 2 minibatches = 8 steps)."""
    agent = small_ppo()
    agent.fit("CartPole-v1", 128, verbose=0, seed=0)
    return agent


@pytest.fixture(scope="module")
def pendulum_ppo():
    """PPO with observation and reward normalization and a KL penalty, on Pendulum.

    Returns the agent, its history and what the env emitted (Pendulum's episodes last
    200 steps, so the 128 training steps contain no episode end).
    """
    envs = []

    def make():
        envs.append(Recorder(gym.make("Pendulum-v1")))
        return envs[-1]

    agent = small_ppo(
        normalize_observations=True,
        normalize_rewards=True,
        kl_penalty=kt.layers.KLPenalty(target_kl=0.01, initial_beta=1.0),
    )
    history = agent.fit(make, 128, verbose=0, seed=1)
    assert len(envs) == 1
    return agent, history, envs[0]
