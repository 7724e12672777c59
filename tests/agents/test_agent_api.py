"""The agent loop through its public API: fit/evaluate/predict/save/load/export/callbacks.

Numbers are checked against what the envs' definitions imply (constant rewards, known
episode lengths, recorded observations) or against numpy, never against the agent's
own output, except for round trips (save/load, export), which compare a copy with its
original.
"""

import csv
import glob
import os
import subprocess
import sys
import textwrap

import gymnasium as gym
import keras
import numpy as np
import pytest

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


# ------------------------------------------------------------------- fixtures


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


# --------------------------------------------------- truncation bootstrapping


@pytest.mark.parametrize("algo", ["trpo", "ppo_normalized_rewards"])
def test_value_of_time_limited_constant_reward_is_discounted_infinite_sum(algo):
    # r = 1 forever, cut only by a 10-step time limit, gamma = 0.9: the true value of
    # every state is sum_k 0.9^k = 1 / (1 - 0.9) = 10. A learner that wrongly treats the
    # time limit as a terminal state would instead learn the mean over t = 0..9 of
    # (1 - 0.9^(10 - t)) / 0.1, which is about 4.1.
    gamma, horizon = 0.9, 10
    wrong = np.mean([(1 - gamma ** (horizon - t)) / (1 - gamma) for t in range(horizon)])
    assert wrong < 5.0
    if algo == "trpo":
        agent = kt.TRPO(
            n_steps=64,
            batch_size=32,
            value_epochs=10,
            gamma=gamma,
            gae_lambda=1.0,
            hidden_sizes=(16,),
        )
        agent.compile(value_optimizer=keras.optimizers.Adam(1e-2))
    else:
        agent = small_ppo(epochs=10, gamma=gamma, gae_lambda=1.0, normalize_rewards=True)
        agent.compile(optimizer=keras.optimizers.Adam(3e-3))
    agent.fit(lambda: constant_env(horizon), 640, verbose=0, seed=0)
    value = agent.predict_value(np.zeros(1, np.float32))
    assert value == pytest.approx(1 / (1 - gamma), rel=0.05)


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


# ----------------------------------------------------------------- callbacks


@pytest.mark.parametrize("variant", ["ppo_clip", "ppo_kl", "trpo"])
def test_stock_keras_callbacks_receive_the_logs(variant, tmp_path):
    if variant == "trpo":
        agent = kt.TRPO(n_steps=16, batch_size=16, value_epochs=2, hidden_sizes=(8,))
        extra = {"backtracks", "accepted"}
    elif variant == "ppo_kl":
        agent = small_ppo(
            n_steps=16, batch_size=16, clip_ratio=None, kl_penalty=kt.layers.KLPenalty()
        )
        extra = {"beta"}
    else:
        agent = small_ppo(n_steps=16, batch_size=16)
        extra = {"clip_fraction"}
    recorder = LogRecorder()
    csv_path = tmp_path / "metrics.csv"
    history = agent.fit(
        lambda: constant_env(10),
        3 * 16,
        verbose=0,
        seed=0,
        callbacks=[
            keras.callbacks.CSVLogger(str(csv_path)),
            keras.callbacks.TerminateOnNaN(),
            keras.callbacks.ModelCheckpoint(str(tmp_path / "stock.keras")),
            recorder,
        ],
    )
    assert isinstance(history, keras.callbacks.History)
    assert history.epoch == [0, 1, 2]
    logs = history.history
    assert REQUIRED_LOGS | extra <= set(logs)
    others = {"clip_fraction", "beta", "backtracks", "accepted"} - extra
    assert not (others & set(logs)), others & set(logs)
    # Every episode of the env lasts 10 steps and returns 10.
    assert logs["episode_return"] == [10.0, 10.0, 10.0]
    assert logs["episode_length"] == [10.0, 10.0, 10.0]
    assert logs["timesteps"] == [16.0, 32.0, 48.0]
    assert all(f > 0 for f in logs["fps"])
    assert all(0.0 <= e <= np.log(2) + 1e-6 for e in logs["entropy"])
    assert all(k >= -1e-6 for k in logs["kl"])
    # The custom callback saw the same numbers, once per epoch.
    assert recorder.epochs == [0, 1, 2]
    for i, seen in enumerate(recorder.logs):
        for key in REQUIRED_LOGS | extra:
            assert seen[key] == logs[key][i]
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    assert REQUIRED_LOGS | extra <= set(rows[0])
    assert [float(r["episode_return"]) for r in rows] == [10.0, 10.0, 10.0]
    assert [float(r["policy_loss"]) for r in rows] == pytest.approx(logs["policy_loss"])
    # Keras' own ModelCheckpoint saved a file that loads as the same agent.
    saved = kt.load_agent(tmp_path / "stock.keras")
    assert type(saved) is type(agent)
    assert saved.num_timesteps == 48
    assert same_weights(saved, agent)
    if variant == "trpo":
        assert all(b == int(b) and 0 <= b <= 10 for b in logs["backtracks"])
        assert all(a in (0.0, 1.0) for a in logs["accepted"])
        # An accepted trust-region step satisfies the KL constraint (max_kl = 0.01).
        assert all(k <= 0.01 + 1e-6 for k, a in zip(logs["kl"], logs["accepted"]) if a)
    if variant == "ppo_kl":
        # The adaptive rule applied to the measured KL, from beta = 1, target 0.01.
        beta = 1.0
        for kl, logged in zip(logs["kl"], logs["beta"]):
            if kl < 0.01 / 1.5:
                beta /= 2
            elif kl > 0.01 * 1.5:
                beta *= 2
            assert logged == pytest.approx(beta)


def test_tensorboard_callback_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard is not installed")
    agent = small_ppo(n_steps=16, batch_size=16)
    log_dir = tmp_path / "tb"
    agent.fit(
        lambda: constant_env(10),
        32,
        verbose=0,
        seed=0,
        callbacks=[keras.callbacks.TensorBoard(str(log_dir), write_graph=False)],
    )
    assert glob.glob(str(log_dir / "**" / "events.out.tfevents*"), recursive=True)


def test_early_stopping_on_episode_return_stops_fit(capsys):
    agent = small_ppo(n_steps=16, batch_size=16)
    stop = keras.callbacks.EarlyStopping(monitor="episode_return", mode="max", patience=0)
    history = agent.fit(lambda: constant_env(10), 5 * 16, verbose=2, seed=0, callbacks=[stop])
    # The return is 10 every epoch: no improvement after the first, so it stops after 2.
    assert history.epoch == [0, 1]
    assert agent.num_timesteps == 2 * 16
    # verbose=2 prints one line per epoch.
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch")]
    assert len(lines) == 2 and "episode_return=10" in lines[0]


def test_terminate_on_nan_stops_on_a_nan_loss():
    # A callback that turns the loss into NaN: TerminateOnNaN must read our logs' "loss".
    class PoisonLoss(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            logs["loss"] = float("nan")

    agent = small_ppo(n_steps=16, batch_size=16)
    history = agent.fit(
        lambda: constant_env(10),
        4 * 16,
        verbose=0,
        seed=0,
        callbacks=[PoisonLoss(), keras.callbacks.TerminateOnNaN()],
    )
    assert history.epoch == [0]
    assert agent.num_timesteps == 16


# ------------------------------------------------------ evaluate and predict


def test_evaluate_statistics_agree_with_returns(cartpole_ppo):
    result = cartpole_ppo.evaluate("CartPole-v1", episodes=4, seed=0)
    returns, lengths = np.array(result["returns"]), np.array(result["lengths"])
    assert len(returns) == len(lengths) == 4
    np.testing.assert_array_equal(returns, lengths)  # CartPole pays 1 per step
    assert result["mean_return"] == pytest.approx(np.mean(returns))
    assert result["std_return"] == pytest.approx(np.std(returns))
    assert result["mean_length"] == pytest.approx(np.mean(lengths))
    again = cartpole_ppo.evaluate("CartPole-v1", episodes=4, seed=0)
    assert again["returns"] == result["returns"]
    sampled = cartpole_ppo.evaluate("CartPole-v1", episodes=2, deterministic=False, seed=5)
    assert sampled == cartpole_ppo.evaluate("CartPole-v1", episodes=2, deterministic=False, seed=5)
    # A 5-step time limit that an untrained pole never reaches the end of: 5 each time.
    short = cartpole_ppo.evaluate(
        lambda: gym.wrappers.TimeLimit(gym.make("CartPole-v1"), max_episode_steps=5),
        episodes=3,
        seed=0,
    )
    assert short["returns"] == [5.0, 5.0, 5.0]
    assert short["mean_return"] == 5.0 and short["std_return"] == 0.0
    assert short["mean_length"] == 5.0


def test_predict_single_and_batch(cartpole_ppo, pendulum_ppo):
    obs = cartpole_observations(6)
    batch = cartpole_ppo.predict(obs)
    assert batch.shape == (6,)
    assert set(batch.tolist()) <= {0, 1}
    for i in range(6):
        single = cartpole_ppo.predict(obs[i])
        assert np.ndim(single) == 0 and single == batch[i]
    values = cartpole_ppo.predict_value(obs)
    assert values.shape == (6,)
    assert np.ndim(cartpole_ppo.predict_value(obs[0])) == 0
    for wrong in (np.zeros(3), np.zeros((2, 5)), np.zeros((2, 2, 4))):
        with pytest.raises(ValueError, match="shape"):
            cartpole_ppo.predict(wrong)
        with pytest.raises(ValueError, match="shape"):
            cartpole_ppo.predict_value(wrong)
    pendulum = pendulum_ppo[0]
    pobs = np.zeros((5, 3), np.float32)
    assert pendulum.predict(pobs).shape == (5, 1)
    assert pendulum.predict(pobs[0]).shape == (1,)
    sampled = pendulum.predict(pobs, deterministic=False, seed=0)
    assert sampled.shape == (5, 1) and np.all(np.abs(sampled) <= 2.0)
    np.testing.assert_array_equal(sampled, pendulum.predict(pobs, deterministic=False, seed=0))


# ------------------------------------------------------------ optimizers


def test_npg_takes_the_full_natural_step(tmp_path):
    agent = kt.TRPO(n_steps=64, batch_size=32, value_epochs=2, hidden_sizes=(16,))
    agent.compile(optimizer=kt.optimizers.NaturalGradient(max_kl=0.01))
    history = agent.fit("CartPole-v1", 128, verbose=0, seed=0).history
    assert history["backtracks"] == [0.0, 0.0]
    # The step is scaled so the quadratic model's KL is max_kl; for such a small step
    # the measured KL is close to it.
    assert history["kl"] == pytest.approx([0.01, 0.01], rel=0.3)
    agent.save(tmp_path / "npg.keras")
    loaded = kt.load_agent(tmp_path / "npg.keras")
    assert type(loaded.optimizer) is kt.optimizers.NaturalGradient
    assert loaded.optimizer.get_config()["max_kl"] == pytest.approx(0.01)
    obs = cartpole_observations()
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))


def test_wrong_optimizer_kinds_raise():
    with pytest.raises(ValueError, match="TRPO"):
        kt.PPO().compile(optimizer=kt.optimizers.TrustRegion(max_kl=0.01))
    with pytest.raises(ValueError, match="TrustRegion or NaturalGradient"):
        kt.TRPO().compile(optimizer=keras.optimizers.Adam())


def test_fit_steps_a_caller_owned_env_instance_and_leaves_it_open():
    env = Recorder(constant_env(10))
    agent = small_ppo(n_steps=16, batch_size=16)
    agent.fit(env, 32, verbose=0, seed=0)
    # 32 vector steps with 10-step episodes: rows 10 and 21 are reset steps (a reset
    # instead of a step), so the env stepped 30 times and was reset 1 + 2 times.
    assert len(env.rewards) == 30
    assert len(env.observations) == 30 + 3
    assert agent.num_timesteps == 32
    env.reset()  # still usable: fit did not close the caller's env
    env.close()


# ----------------------------------------------------------- action spaces


def test_multidiscrete_actions_with_ppo():
    envs = []

    def make():
        envs.append(MultiDiscreteEnv(start=[1, -1]))
        return envs[-1]

    agent = small_ppo(n_steps=32, batch_size=16)
    history = agent.fit(make, 256, verbose=0, seed=0).history
    assert all(np.isfinite(history[k]).all() for k in ("policy_loss", "value_loss", "kl"))
    space = envs[0].action_space
    received = np.array(envs[0].received)
    assert len(received) > 200 and all(space.contains(a) for a in received)
    # Every choice of each sub-action was tried.
    assert set(received[:, 0].tolist()) == {1, 2, 3}
    assert set(received[:, 1].tolist()) == {-1, 0}
    # Episodes are 8 steps; the return is the sum of the first sub-actions.
    assert history["episode_length"][-1] == 8.0
    assert 8.0 <= history["episode_return"][-1] <= 24.0
    actions = agent.predict(np.zeros((4, 2), np.float32))
    assert actions.shape == (4, 2) and all(space.contains(a) for a in actions)


def test_multidiscrete_start_survives_save_load(tmp_path):
    agent = small_ppo(n_steps=16, batch_size=16, epochs=1)
    agent.fit(lambda: MultiDiscreteEnv(start=[1, -1]), 16, verbose=0, seed=0)
    agent.save(tmp_path / "a.keras")
    loaded = kt.load_agent(tmp_path / "a.keras")
    obs = np.random.default_rng(0).uniform(-1, 1, (8, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    loaded.fit(lambda: MultiDiscreteEnv(start=[1, -1]), 16, verbose=0)
    assert loaded.num_timesteps == 32


# ---------------------------------------------------------- user models


def functional_torso(n_inputs, name):
    x = keras.Input((n_inputs,))
    h = keras.layers.Dense(16, activation="tanh", name=f"{name}_dense")(x)
    return keras.Model(x, h, name=name)


def test_user_functional_models_train_save_and_load(tmp_path):
    policy, value = functional_torso(4, "my_policy"), functional_torso(4, "my_value")
    before = [np.array(w) for w in policy.weights + value.weights]
    agent = small_ppo(policy=policy, value=value, n_steps=32, batch_size=16)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    after = [np.array(w) for w in policy.weights + value.weights]
    # The user's own layers were trained.
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))
    agent.save(tmp_path / "a.keras")
    loaded = kt.load_agent(tmp_path / "a.keras")  # safe mode
    assert loaded.policy_torso.name == "my_policy"
    obs = cartpole_observations()
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    np.testing.assert_array_equal(loaded.predict_value(obs), agent.predict_value(obs))


def test_user_model_that_does_not_fit_the_env_raises_before_training():
    steps = []

    class Counting(gym.Wrapper):
        def step(self, action):
            steps.append(action)
            return self.env.step(action)

    agent = small_ppo(policy=functional_torso(5, "five"), n_steps=32, batch_size=16)
    with pytest.raises(ValueError, match="policy model"):
        agent.fit(lambda: Counting(gym.make("CartPole-v1")), 64, verbose=0, seed=0)
    assert steps == []
    assert agent.num_timesteps == 0


# ---------------------------------------------------------------- seeding


def test_fit_with_the_same_seed_is_reproducible():
    def run(seed):
        agent = small_ppo(n_envs=2, n_steps=16, batch_size=16)
        history = agent.fit("CartPole-v1", 64, verbose=0, seed=seed).history
        return agent, history

    a, ha = run(3)
    b, hb = run(3)
    c, _ = run(4)
    assert same_weights(a, b)
    for key in REQUIRED_LOGS - {"fps"}:
        np.testing.assert_array_equal(ha[key], hb[key])
    differing = [
        not np.array_equal(np.array(x), np.array(y))
        for x, y in zip(a.trainable_weights, c.trainable_weights)
    ]
    assert any(differing)


# ------------------------------------------------------------- checkpoints


def test_agent_checkpoint_saves_every_second_epoch_without_leftovers(tmp_path):
    path = tmp_path / "agent.keras"
    seen = []

    class Exists(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(path.exists())

    agent = small_ppo(n_steps=16, batch_size=16)
    callbacks = [
        kt.callbacks.AgentCheckpoint(path, save_freq=2),
        kt.callbacks.AgentCheckpoint(tmp_path / "agent-{epoch}.keras", save_freq=2),
        Exists(),
    ]
    agent.fit("CartPole-v1", 3 * 16, verbose=0, seed=0, callbacks=callbacks)
    assert seen == [False, True, True]
    # Only the files themselves: no temporary files left behind.
    assert sorted(os.listdir(tmp_path)) == ["agent-2.keras", "agent.keras"]
    loaded = kt.load_agent(path)
    # Saved at the end of the second epoch, not the third.
    assert loaded.num_timesteps == 2 * 16
    assert agent.num_timesteps == 3 * 16
    obs = cartpole_observations()
    assert kt.load_agent(tmp_path / "agent-2.keras").num_timesteps == 32
    assert loaded.predict(obs).shape == (len(obs),)


def test_activation_builds_relu_mlps_that_survive_save_load(tmp_path):
    """`activation="relu"` (rl-zoo's MuJoCo PPO networks): the default torsos compute
    relu(W2 relu(W1 x + b1) + b2), checked against NumPy with the layers' own weights,
    and a saved agent loads with the same activation and outputs."""
    agent = small_ppo(hidden_sizes=(8, 8), activation="relu")
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    obs = cartpole_observations()
    for torso in (agent.policy_torso, agent.value_torso):
        (w1, b1), (w2, b2) = [
            [np.array(v) for v in layer.weights] for layer in torso.layers if layer.weights
        ]
        expected = np.maximum(np.maximum(obs @ w1 + b1, 0) @ w2 + b2, 0)
        np.testing.assert_allclose(np.array(torso(obs)), expected, rtol=1e-5, atol=1e-6)
    # tanh would give negative features; relu features are >= 0 and some are exactly 0.
    features = np.array(agent.policy_torso(obs))
    assert (features >= 0).all() and (features == 0).any()
    path = tmp_path / "relu.keras"
    agent.save(path)
    loaded = kt.load_agent(path)
    assert loaded.activation == "relu" and loaded.get_config()["activation"] == "relu"
    np.testing.assert_array_equal(
        np.array(loaded.policy_torso(obs)), np.array(agent.policy_torso(obs))
    )
