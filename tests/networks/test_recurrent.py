"""`RecurrentTorso` and recurrent agents: state resets, Fisher products, exports.

Every check is against an independent computation: a counting cell whose state is the
number of steps since the last reset (so the right answer is read off the episode ends),
the cell called step by step in Python, and the Fisher matrix built explicitly from the
Jacobians of the unrolled network.
"""

import json
import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust.agents import recurrence
from keras_trust.ops import fisher_vector_product, flatten
from keras_trust.rollout import InProcessSampler


@keras.saving.register_keras_serializable(package="keras_trust_tests")
class CountingCell(keras.layers.Layer):
    """state <- state + 1; output = state: the steps since the last reset."""

    state_size = 1

    def call(self, inputs, states):
        new = states[0] + 1.0 + 0.0 * tf.reduce_sum(inputs, axis=-1, keepdims=True)
        return new, [new]


@pytest.mark.parametrize("cell", ["gru", "lstm", "lstm_decoder"])
def test_unroll_equals_the_cell_called_step_by_step_with_resets(cell):
    rng = np.random.default_rng(0)
    make = {"gru": keras.layers.GRUCell, "lstm": keras.layers.LSTMCell}[cell[:4].rstrip("_")]
    decoder = keras.layers.Dense(2, activation="relu") if cell == "lstm_decoder" else None
    torso = kt.networks.RecurrentTorso(make(3), decoder=decoder)
    x = tf.constant(rng.normal(size=(6, 2, 4)), tf.float32)
    starts = np.array([[1, 0], [0, 0], [0, 1], [1, 0], [0, 0], [0, 0]], bool)
    init = [tf.constant(rng.normal(size=(2, 3)), tf.float32) for _ in torso.state_sizes]
    for static in (False, True):
        got = torso.unroll(x, tf.constant(starts), init, static=static).numpy()
        states = [s.numpy() for s in init]  # LSTM: [h, c], both reset and both carried
        for t in range(6):
            states = [np.where(starts[t][:, None], 0.0, s) for s in states]
            out, new = torso.cell(torso.flatten(x[t]), [tf.constant(s) for s in states])
            if decoder is not None:
                out = decoder(out)
            np.testing.assert_allclose(got[t], out.numpy(), rtol=1e-5, atol=1e-6)
            states = [n.numpy() for n in (new if isinstance(new, list | tuple) else [new])]


class EndsAt(gym.Env):
    """Episodes of a fixed length per env copy (set by the seed): ends at different steps.

    The observation is `[t, noise]`: `t` the env's own step count in the episode (0 on
    the reset observation), so the right state of a counting cell is read off it.
    """

    observation_space = gym.spaces.Box(-10, 10, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.length = 3 + seed % 4
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return np.array([self.t, self.np_random.normal()], np.float32)

    def step(self, action):
        self.t += 1
        return self._obs(), 1.0, self.t >= self.length, False, {}


def test_each_envs_state_is_reset_exactly_at_its_episode_start():
    torso = kt.networks.RecurrentTorso(CountingCell())
    critic = kt.networks.RecurrentTorso(CountingCell())
    agent = kt.PPO(policy=torso, value=critic, n_envs=3, n_steps=10, batch_size=10)
    sampler = InProcessSampler()
    agent.prepare(*sampler.start(EndsAt, 3, seed=0), seed=0)
    try:
        for iteration in range(3):  # states carry over between rollouts
            rollout = sampler.collect(agent, 10, iteration)
            # Independent: the count at every step is the env's own step in the episode
            # plus one. On an episode's first observation (t = 0) it is 1, as in
            # `evaluate`; an autoreset step (its observation the ended episode's last)
            # continues that episode's count, and the next step starts from zero.
            expected = rollout.observations[..., 0] + 1.0
            batch = {
                "obs": tf.constant(rollout.observations),
                "weights": tf.constant(rollout.valid, tf.float32),
                "starts": tf.constant(~rollout.valid),
                "policy_state": [tf.constant(s) for s in rollout.initial_states[0]],
                "value_state": [tf.constant(s) for s in rollout.initial_states[1]],
            }
            x = recurrence.sequence_features(agent, torso, batch, "policy_state")
            np.testing.assert_allclose(x.numpy().reshape(10, 3), expected)
            assert (~rollout.valid).any() and (expected[~rollout.valid] > 1).all()
            # The rollout's critic ran the same states: its values are the value head of
            # the count, the bootstrap after the last step included (a truncated
            # episode's bootstrap is valued on that episode's state).
            counts = np.concatenate([expected, rollout.last_observations[None, :, 0] + 1.0])
            head = agent.value_head(tf.constant(counts.reshape(-1, 1), tf.float32))
            np.testing.assert_allclose(rollout.values, head.numpy().reshape(11, 3), rtol=1e-5)
            np.testing.assert_allclose(
                recurrence.batch_values(agent, batch).numpy().reshape(10, 3),
                rollout.values[:-1],
                rtol=1e-5,
            )
            # The runner's carried state: zero after an autoreset step, else the count.
            after = np.where(rollout.valid[-1], expected[-1], 0.0)
            np.testing.assert_allclose(sampler.runner.rnn_state[0][0][:, 0], after)
    finally:
        sampler.close()


def test_the_update_replays_the_rollouts_lstm_states():
    """Log-probs and values of an LSTM agent recomputed by the update's unroll (with the
    sequences' stored `[h, c]` initial states) equal the rollout's own, across rollouts
    and episode ends at different steps."""
    keras.utils.set_random_seed(0)
    lstm = lambda: kt.networks.RecurrentTorso(keras.layers.LSTMCell(5))  # noqa: E731
    agent = kt.PPO(policy=lstm(), value=lstm(), n_envs=3, n_steps=9, batch_size=9)
    sampler = InProcessSampler()
    agent.prepare(*sampler.start(EndsAt, 3, seed=0), seed=0)
    try:
        for iteration in range(3):
            rollout = sampler.collect(agent, 9, iteration)
            assert len(rollout.initial_states[0]) == 2  # h and c
            batch = {
                "obs": tf.constant(rollout.observations),
                "weights": tf.constant(rollout.valid, tf.float32),
                "starts": tf.constant(~rollout.valid),
                "policy_state": [tf.constant(s) for s in rollout.initial_states[0]],
                "value_state": [tf.constant(s) for s in rollout.initial_states[1]],
            }
            params = recurrence.batch_policy_params(agent, batch)
            actions = tf.reshape(tf.constant(rollout.actions), [-1])
            log_probs = agent.action_distribution.log_prob(params, actions).numpy()
            np.testing.assert_allclose(log_probs.reshape(9, 3), rollout.log_probs, atol=1e-5)
            values = recurrence.batch_values(agent, batch).numpy().reshape(9, 3)
            np.testing.assert_allclose(values, rollout.values[:-1], atol=1e-5)
    finally:
        sampler.close()


def categorical_fisher(logits_fn, variables, n):
    """F = J^T M J / n built explicitly: J the Jacobian of the logits, M = diag(p) - pp^T."""
    with tf.GradientTape() as tape:
        logits = logits_fn()
    jac = tape.jacobian(logits, variables)
    j = np.concatenate([np.reshape(g.numpy(), (*logits.shape, -1)) for g in jac], axis=-1)
    p = tf.nn.softmax(logits).numpy()
    fisher = np.zeros((j.shape[-1], j.shape[-1]))
    for r in range(logits.shape[0]):
        m = np.diag(p[r]) - np.outer(p[r], p[r])
        fisher += j[r].T @ m @ j[r]
    return fisher / n


@pytest.mark.parametrize("method", ["double_backprop", "forward_over_reverse"])
def test_fisher_vector_product_through_the_unrolled_network(method):
    keras.utils.set_random_seed(3)
    torso = kt.networks.RecurrentTorso(keras.layers.SimpleRNNCell(3))
    agent = kt.TRPO(policy=torso, n_envs=2, n_steps=4, batch_size=8)
    agent.build_for(gym.spaces.Box(-1, 1, (2,), np.float32), gym.spaces.Discrete(3))
    rng = np.random.default_rng(1)
    data = {
        "obs": tf.constant(rng.normal(size=(4, 2, 2)), tf.float32),
        "weights": tf.ones((4, 2)),
        "starts": tf.constant(np.array([[1, 1], [0, 0], [0, 1], [0, 0]], bool)),
        "policy_state": [tf.constant(rng.normal(size=(2, 3)), tf.float32)],
    }
    variables = agent.policy_variables
    static = method == "forward_over_reverse"
    old = [tf.stop_gradient(p) for p in recurrence.batch_policy_params(agent, data, static)]
    dist = agent.action_distribution

    def kl_fn():
        new = recurrence.batch_policy_params(agent, data, static)
        return tf.reduce_mean(dist.kl(old, new))

    fisher = categorical_fisher(
        lambda: recurrence.batch_policy_params(agent, data, True)[0], variables, 8
    )
    v = [tf.constant(rng.normal(size=w.shape), tf.float32) for w in variables]
    got = flatten(fisher_vector_product(kl_fn, variables, v, method=method)).numpy()
    np.testing.assert_allclose(got, fisher @ flatten(v).numpy(), rtol=2e-3, atol=1e-5)
    assert float(kl_fn()) == pytest.approx(0.0, abs=1e-7)


CHILD = r"""
import json, sys
import numpy as np, tensorflow as tf
step = tf.saved_model.load(sys.argv[1]).signatures["step"]
sizes = json.loads(sys.argv[2])
state = {f"state_{i}": tf.zeros((1, s)) for i, s in enumerate(sizes)}
actions = []
for obs in json.loads(sys.argv[3]):
    out = step(observation=tf.constant([obs], tf.float32), **state)
    actions.append(int(out["action"][0]))
    state = {k: out[k] for k in state}
assert "keras_trust" not in sys.modules
print(json.dumps(actions))
"""


@pytest.mark.parametrize("cell", ["lstm", "gru", "lstm_decoder"])
def test_save_load_and_the_savedmodel_step_replay_an_episode(cell, tmp_path):
    make = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}[cell[:4].rstrip("_")]

    def torso():
        if cell != "lstm_decoder":
            return kt.networks.RecurrentTorso(make(8))
        decoder = keras.Sequential([keras.layers.Dense(6, activation="relu")])
        return kt.networks.RecurrentTorso(make(8), decoder=decoder)

    agent = kt.PPO(
        policy=torso(),
        value=torso(),
        n_envs=2,
        n_steps=16,
        batch_size=32,
    )
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    env = gym.make("CartPole-v1")
    obs, _ = env.reset(seed=1)
    state, actions, seen = agent.initial_state(1), [], []
    for _ in range(40):
        action, state = agent.predict(obs, state=state)
        actions.append(int(action))
        seen.append(obs.tolist())
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            break
    agent.save(tmp_path / "a.keras")
    loaded = kt.load_agent(tmp_path / "a.keras")
    if cell == "lstm_decoder":  # the decoder came back, with its weights
        assert loaded.policy_torso.decoder is not None
        for w, v in zip(agent.policy_torso.decoder.weights, loaded.policy_torso.decoder.weights):
            np.testing.assert_array_equal(w.numpy(), v.numpy())
    state = loaded.initial_state(1)
    replay = []
    for o in seen:
        action, state = loaded.predict(np.array(o, np.float32), state=state)
        replay.append(int(action))
    assert replay == actions
    agent.export(tmp_path / "policy")
    sizes = agent.policy_torso.state_sizes
    env_vars = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(tmp_path / "policy"),
            json.dumps(sizes),
            json.dumps(seen),
        ],
        capture_output=True,
        text=True,
        env=env_vars,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == actions


def test_episode_start_resets_the_rows_given():
    agent = kt.PPO(policy=kt.networks.RecurrentTorso(CountingCell()), n_steps=8, batch_size=8)
    agent.fit(EndsAt, 8, verbose=0, seed=0)
    obs = np.zeros((2, 2), np.float32)
    _, state = agent.predict(obs, state=[np.array([[5.0], [7.0]], np.float32)])
    np.testing.assert_allclose(state[0], [[6.0], [8.0]])
    _, state = agent.predict(obs, state=state, episode_start=np.array([True, False]))
    np.testing.assert_allclose(state[0], [[1.0], [9.0]])
