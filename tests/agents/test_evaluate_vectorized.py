"""`agent.evaluate` over a vector env: the same episodes as one env at a time, fewer calls."""

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout.env_state import episode_seed


@pytest.fixture(scope="module")
def agent():
    agent = kt.PPO(n_steps=64, batch_size=64, epochs=1)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    return agent


def _episode(agent, seed):
    """One deterministic episode on a plain env, stepped here (the reference)."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(agent.predict(obs)))
        total, length, done = total + reward, length + 1, terminated or truncated
    return total, length


def test_vectorized_episodes_equal_those_stepped_one_by_one(agent):
    calls = []
    predict = agent.predict

    def counting(obs, **kwargs):
        calls.append(len(obs))
        return predict(obs, **kwargs)

    agent.predict = counting
    try:
        result = agent.evaluate("CartPole-v1", episodes=6, seed=10, n_envs=3)
    finally:
        del agent.predict
    # Env i runs its episodes 0 and 1: reset(seed=10 + i), then its derived seed.
    expected = [_episode(agent, episode_seed(10 + i, e)) for i in range(3) for e in range(2)]
    assert result["returns"] == [r for r, _ in expected]
    assert result["lengths"] == [n for _, n in expected]
    # One batched call per vector step: as many steps as the longest env needed, plus
    # one autoreset step between an env's two episodes.
    per_env = [expected[2 * i][1] + 1 + expected[2 * i + 1][1] for i in range(3)]
    assert calls == [3] * max(per_env)


def test_default_is_vectorized_and_matches_n_envs_1_for_one_episode_per_env(agent):
    alone = agent.evaluate("CartPole-v1", episodes=4, seed=3, n_envs=1)
    together = agent.evaluate("CartPole-v1", episodes=4, seed=3)
    assert together["returns"] == alone["returns"]
    assert np.isclose(together["mean_return"], np.mean(alone["returns"]))


def test_a_vector_env_and_an_env_instance(agent):
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    result = agent.evaluate(vec, episodes=2, seed=5)
    assert result["returns"] == [_episode(agent, 5)[0], _episode(agent, 6)[0]]
    vec.close()
    single = agent.evaluate(gym.make("CartPole-v1"), episodes=2, seed=5)  # stepped alone
    assert single["returns"] == result["returns"]
    with pytest.raises(ValueError, match="n_envs"):
        agent.evaluate("CartPole-v1", episodes=2, n_envs=0)
