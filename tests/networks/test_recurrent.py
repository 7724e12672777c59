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


def test_unroll_equals_the_cell_called_step_by_step_with_resets():
    rng = np.random.default_rng(0)
    torso = kt.networks.RecurrentTorso(keras.layers.GRUCell(3))
    x = tf.constant(rng.normal(size=(6, 2, 4)), tf.float32)
    starts = np.array([[1, 0], [0, 0], [0, 1], [1, 0], [0, 0], [0, 0]], bool)
    init = [tf.constant(rng.normal(size=(2, 3)), tf.float32)]
    for static in (False, True):
        got = torso.unroll(x, tf.constant(starts), init, static=static).numpy()
        h = init[0].numpy()
        for t in range(6):
            h = np.where(starts[t][:, None], 0.0, h)
            out, new = torso.cell(torso.flatten(x[t]), [tf.constant(h)])
            np.testing.assert_allclose(got[t], out.numpy(), rtol=1e-5, atol=1e-6)
            h = new[0].numpy()


class EndsAt(gym.Env):
    """Episodes of a fixed length per env copy (set by the seed): ends at different steps."""

    observation_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        if seed is not None:
            self.length = 3 + seed % 4
        self.t = 0
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(2, np.float32), 1.0, self.t >= self.length, False, {}


def test_each_envs_state_is_reset_exactly_at_its_episode_start():
    torso = kt.networks.RecurrentTorso(CountingCell())
    agent = kt.PPO(policy=torso, n_envs=3, n_steps=10, batch_size=10)
    sampler = InProcessSampler()
    agent.prepare(*sampler.start(EndsAt, 3, seed=0), seed=0)
    try:
        for iteration in range(3):  # states carry over between rollouts
            rollout = sampler.collect(agent, 10, iteration)
            done = rollout.terminated | rollout.truncated
            starts = ~rollout.valid
            # Independent count: steps since the last start, carried from the rollout's
            # initial state.
            count = rollout.initial_states[0][0][:, 0].copy()
            expected = np.empty((10, 3))
            for t in range(10):
                count = np.where(starts[t], 0.0, count) + 1.0
                expected[t] = count
            batch = {
                "obs": tf.constant(rollout.observations),
                "weights": tf.constant(rollout.valid, tf.float32),
                "starts": tf.constant(starts),
                "policy_state": [tf.constant(s) for s in rollout.initial_states[0]],
            }
            x = recurrence.sequence_features(agent, torso, batch, "policy_state")
            np.testing.assert_allclose(x.numpy().reshape(10, 3), expected)
            # Resets happen right after each episode end, and nowhere else.
            np.testing.assert_array_equal(starts[1:], done[:-1])
            # The runner's carried state is the count after the last step.
            np.testing.assert_allclose(sampler.runner.rnn_state[0][0][:, 0], expected[-1])
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


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_save_load_and_the_savedmodel_step_replay_an_episode(cell, tmp_path):
    make = {"lstm": keras.layers.LSTMCell, "gru": keras.layers.GRUCell}[cell]
    agent = kt.PPO(
        policy=kt.networks.RecurrentTorso(make(8)),
        value=kt.networks.RecurrentTorso(make(8)),
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
