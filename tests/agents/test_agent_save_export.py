"""Saving, loading and exporting agents: round trips compare a copy with its original;
normalizer statistics and reward scaling are recomputed in NumPy from what the env emitted."""

import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
from agent_helpers import cartpole_observations, same_weights

import keras_trust as kt

# ------------------------------------------------------------- save / load


def test_save_load_round_trip_cartpole(cartpole_ppo, tmp_path):
    agent = cartpole_ppo
    path = tmp_path / "a.keras"
    agent.save(path)
    assert os.listdir(tmp_path) == ["a.keras"]
    loaded = kt.load_agent(path)
    assert type(loaded) is kt.PPO
    obs = cartpole_observations()
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(loaded.predict_value(obs), agent.predict_value(obs))
    assert same_weights(loaded, agent)
    assert loaded.num_timesteps == agent.num_timesteps == 128
    # 2 epochs x 2 passes x (64 // 32) minibatches = 8 Adam steps.
    assert int(loaded.optimizer.iterations.numpy()) == 8
    # A resumed fit adds to the counters rather than restarting them.
    history = loaded.fit("CartPole-v1", 64, verbose=0)
    assert loaded.num_timesteps == 128 + 64
    assert int(loaded.optimizer.iterations.numpy()) == 8 + 4
    assert history.history["timesteps"] == [192.0]
    assert agent.num_timesteps == 128  # the original is untouched


def test_reward_scaling_divides_by_the_std_of_the_discounted_returns(random_episode_ends):
    """`normalize_rewards`: each rollout's rewards are divided by the std of all discounted
    returns seen so far (valid steps only, reset at episode ends, carried across rollouts),
    then clipped to +/-10; recomputed here step by step over three rollouts of 3 envs."""
    rng = np.random.default_rng(0)
    gamma, n_envs, n_steps = 0.9, 3, 23
    agent = kt.PPO(
        n_envs=n_envs, n_steps=n_steps, gamma=gamma, normalize_rewards=True, hidden_sizes=(4,)
    )
    agent.prepare(gym.spaces.Box(-1, 1, (1,), np.float32), gym.spaces.Discrete(2), 0)
    scaler = kt.rollout.RewardScaler(agent.reward_normalizer, gamma, n_envs)
    done = random_episode_ends(rng, 3 * n_steps, n_envs, max_first=5, gaps=(2, 12))
    valid = ~np.concatenate([np.zeros((1, n_envs), bool), done[:-1]])
    rewards = np.where(valid, rng.normal(0.0, 3.0, done.shape), 0.0).astype(np.float32)
    terminated = done & (rng.random(done.shape) < 0.5)
    seen, ret = [], np.zeros(n_envs)
    for k in range(3):
        rows = slice(k * n_steps, (k + 1) * n_steps)
        for t in range(rows.start, rows.stop):
            for j in range(n_envs):
                if valid[t, j]:
                    ret[j] = ret[j] * gamma + float(rewards[t, j])
                    seen.append(ret[j])
                if done[t, j]:
                    ret[j] = 0.0
        rollout = kt.rollout.Rollout(
            np.zeros((n_steps, n_envs, 1), np.float32),
            np.zeros((n_steps, n_envs), np.int64),
            np.zeros((n_steps, n_envs), np.float32),
            np.zeros((n_steps + 1, n_envs), np.float32),
            rewards[rows],
            terminated[rows],
            done[rows] & ~terminated[rows],
            valid[rows],
            [],
            [],
            np.zeros((n_envs, 1), np.float32),
        )
        scaled = scaler.scale(rollout)
        std = np.sqrt(np.var(seen) + 1e-8)
        assert float(agent.reward_normalizer.count.numpy()) == len(seen)
        np.testing.assert_allclose(
            scaled, np.clip(rewards[rows] / std, -10, 10), rtol=1e-6, atol=1e-7
        )


def test_normalizer_statistics_are_those_of_the_observed_data(pendulum_ppo):
    agent, _, env = pendulum_ppo
    # The two rollouts' observations are the first 128 the env emitted (reset + steps).
    observed = np.array(env.observations[:128], np.float64)
    norm = agent.obs_normalizer
    assert float(norm.count.numpy()) == 128
    np.testing.assert_allclose(norm.mean.numpy(), observed.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(norm.var.numpy(), observed.var(0), rtol=1e-5, atol=1e-6)
    # Reward scaling: running variance of the discounted return, gamma = 0.99.
    returns, ret = [], 0.0
    for r in env.rewards[:128]:
        ret = 0.99 * ret + r
        returns.append(ret)
    rnorm = agent.reward_normalizer
    assert float(rnorm.count.numpy()) == 128
    np.testing.assert_allclose(rnorm.var.numpy(), np.var(returns), rtol=1e-5)
    # predict_value reports reward units: the critic's output times that std.
    obs = np.array(env.observations[:4], np.float32)
    np.testing.assert_allclose(
        agent.predict_value(obs),
        agent.acting.value(obs) * np.sqrt(np.var(returns) + 1e-8),
        rtol=1e-5,
    )


def test_save_load_round_trip_normalized_kl_penalty_pendulum(pendulum_ppo, tmp_path):
    agent, history, _ = pendulum_ppo
    beta = float(agent.kl_penalty.beta.numpy())
    # Two updates from beta = 1, each halving, doubling or keeping it.
    assert beta in (0.25, 0.5, 1.0, 2.0, 4.0)
    assert history.history["beta"][-1] == beta
    path = tmp_path / "a.keras"
    agent.save(path)
    loaded = kt.load_agent(path)
    assert float(loaded.kl_penalty.beta.numpy()) == beta
    for name in ("obs_normalizer", "reward_normalizer"):
        for stat in ("mean", "var", "count"):
            mine = getattr(getattr(agent, name), stat).numpy()
            theirs = getattr(getattr(loaded, name), stat).numpy()
            np.testing.assert_array_equal(theirs, mine)
    obs = np.random.default_rng(0).uniform(-1.0, 1.0, (16, 3)).astype(np.float32) * [1, 1, 8]
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(loaded.predict_value(obs), agent.predict_value(obs))
    assert loaded.num_timesteps == 128
    count = float(loaded.obs_normalizer.count.numpy())
    loaded.fit("Pendulum-v1", 64, verbose=0)
    assert loaded.num_timesteps == 192
    assert float(loaded.obs_normalizer.count.numpy()) == count + 64


# -------------------------------------------------------------------- export


EXPORT_CHILD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    root = sys.argv[1]
    outputs = {}
    for name in sys.argv[2:]:
        model = tf.saved_model.load(f"{root}/{name}")
        result = model.signatures["serving_default"](
            tf.constant(np.load(f"{root}/{name}_obs.npy"))
        )
        assert len(result) == 1, sorted(result)
        outputs[name] = next(iter(result.values())).numpy()
    assert "keras_trust" not in sys.modules
    np.savez(f"{root}/outputs.npz", **outputs)
    """
)


def test_exported_saved_model_runs_without_keras_trust(cartpole_ppo, pendulum_ppo, tmp_path):
    agents = {"cartpole": (cartpole_ppo, cartpole_observations())}
    pendulum, _, env = pendulum_ppo
    pendulum_obs = np.concatenate(
        [
            np.array(env.observations[:8], np.float32),
            np.array([[1.0, 0.0, 8.0], [-1.0, 0.0, -8.0], [0.0, 1.0, 100.0]], np.float32),
        ]
    )
    agents["pendulum"] = (pendulum, pendulum_obs)
    for name, (agent, obs) in agents.items():
        agent.export(tmp_path / name)
        np.save(tmp_path / f"{name}_obs.npy", obs)
    env_vars = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.run(
        [sys.executable, "-c", EXPORT_CHILD, str(tmp_path), *agents],
        capture_output=True,
        text=True,
        env=env_vars,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = np.load(tmp_path / "outputs.npz")
    for name, (agent, obs) in agents.items():
        expected = agent.predict(obs, deterministic=True)
        assert outputs[name].shape == expected.shape
        np.testing.assert_array_equal(outputs[name], expected)
    # The Box policy's actions respect Pendulum's bounds.
    assert np.all(np.abs(outputs["pendulum"]) <= 2.0)


class OffsetDiscreteEnv(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = gym.spaces.Discrete(3, start=-1)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        assert self.action_space.contains(action), action
        self.t += 1
        return np.full(2, self.t / 8, np.float32), float(action), self.t >= 8, False, {}


def test_export_of_discrete_space_with_start_matches_predict(tmp_path):
    import tensorflow as tf

    agent = kt.PPO(n_steps=16, batch_size=16, epochs=1, hidden_sizes=(8,))
    agent.fit(OffsetDiscreteEnv, 16, verbose=0, seed=0)
    obs = np.random.default_rng(0).uniform(-1, 1, (32, 2)).astype(np.float32)
    expected = agent.predict(obs)
    assert all(OffsetDiscreteEnv.action_space.contains(int(a)) for a in expected)
    agent.export(tmp_path / "policy")
    served = tf.saved_model.load(str(tmp_path / "policy")).signatures["serving_default"]
    actions = next(iter(served(tf.constant(obs)).values())).numpy()
    np.testing.assert_array_equal(actions, expected)
