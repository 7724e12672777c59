"""`agent.evaluate` over a vector env: the same episodes as one env at a time, fewer calls."""

import gymnasium as gym
import numpy as np
import pytest

from keras_trust.rollout.env_state import episode_seed


def _episode(agent, seed):
    """One deterministic episode on a plain env, stepped here (the reference)."""
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=seed)
    total, length, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(agent.predict(obs)))
        total, length, done = total + reward, length + 1, terminated or truncated
    return total, length


def test_vectorized_episodes_equal_those_stepped_one_by_one(cartpole_ppo):
    calls = []
    predict = cartpole_ppo.predict

    def counting(obs, **kwargs):
        calls.append(len(obs))
        return predict(obs, **kwargs)

    cartpole_ppo.predict = counting
    try:
        result = cartpole_ppo.evaluate("CartPole-v1", episodes=6, seed=10, n_envs=3)
    finally:
        del cartpole_ppo.predict
    # Env i runs its episodes 0 and 1: reset(seed=10 + i), then its derived seed.
    expected = [_episode(cartpole_ppo, episode_seed(10 + i, e)) for i in range(3) for e in range(2)]
    assert result["returns"] == [r for r, _ in expected]
    assert result["lengths"] == [n for _, n in expected]
    # One batched call per vector step: as many steps as the longest env needed, plus
    # one autoreset step between an env's two episodes.
    per_env = [expected[2 * i][1] + 1 + expected[2 * i + 1][1] for i in range(3)]
    assert calls == [3] * max(per_env)


def test_default_is_vectorized_and_matches_n_envs_1_for_one_episode_per_env(cartpole_ppo):
    alone = cartpole_ppo.evaluate("CartPole-v1", episodes=4, seed=3, n_envs=1)
    together = cartpole_ppo.evaluate("CartPole-v1", episodes=4, seed=3)
    assert together["returns"] == alone["returns"]
    assert np.isclose(together["mean_return"], np.mean(alone["returns"]))


def test_a_vector_env_and_an_env_instance(cartpole_ppo):
    vec = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 2)
    result = cartpole_ppo.evaluate(vec, episodes=2, seed=5)
    assert result["returns"] == [_episode(cartpole_ppo, 5)[0], _episode(cartpole_ppo, 6)[0]]
    vec.close()
    single = cartpole_ppo.evaluate(gym.make("CartPole-v1"), episodes=2, seed=5)  # stepped alone
    assert single["returns"] == result["returns"]
    with pytest.raises(ValueError, match="n_envs"):
        cartpole_ppo.evaluate("CartPole-v1", episodes=2, n_envs=0)
