"""Shared test settings: quiet TensorFlow, and small helpers used across test modules."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def _random_episode_ends(rng, n_rows, n_envs, max_first=5, gaps=(2, 12)):
    """`(n_rows, n_envs)` episode ends as a NEXT_STEP vector env makes them: each env's
    first end at a random row below `max_first`, then ends `gaps` (low, high) rows apart,
    never two in a row (a reset row follows each end)."""
    done = np.zeros((n_rows, n_envs), bool)
    for j in range(n_envs):
        t = int(rng.integers(0, max_first))
        while t < n_rows:
            done[t, j] = True
            t += int(rng.integers(*gaps))
    return done


@pytest.fixture
def random_episode_ends():
    """The function `_random_episode_ends(rng, n_rows, n_envs, max_first, gaps)`."""
    return _random_episode_ends


@pytest.fixture(scope="module")
def cartpole_ppo():
    """A CartPole PPO agent after one short update (64 steps, seed 0): for tests of what an
    agent does with its policy (evaluate, video), where what it learned matters less than
    its being a real, built agent. keras_trust is imported inside, so that loading this
    conftest imports no TensorFlow."""
    import keras_trust as kt

    agent = kt.PPO(n_steps=64, batch_size=64, epochs=1)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    return agent
