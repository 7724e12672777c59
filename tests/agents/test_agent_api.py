"""The agent loop through its public API: fit, evaluate, predict, optimizers, action spaces,
user models, seeding (save/load/export and callbacks have their own modules).

Numbers are checked against what the envs' definitions imply (constant rewards, known
episode lengths, recorded observations) or against numpy, never against the agent's
own output, except for round trips (save/load, export), which compare a copy with its
original.
"""

import gymnasium as gym
import keras
import numpy as np
import pytest
from agent_helpers import (
    REQUIRED_LOGS,
    MultiDiscreteEnv,
    Recorder,
    cartpole_observations,
    constant_env,
    same_weights,
    small_ppo,
)

import keras_trust as kt

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
