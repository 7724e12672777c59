"""The compiled per-step call `act`: its samples, log-probabilities and values, checked in numpy.

`agent.acting.start_rollout(noise)` uploads a rollout's noise; each `act(obs)` must use the
next row.
Expected values are computed from the networks' parameters with numpy (log-softmax,
Gumbel-max, the Gaussian density), independently of the XLA-compiled graph.
"""

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt


def built(algo, env_id, n_envs=3, jit_compile="auto", **kwargs):
    agent = (kt.PPO if algo == "ppo" else kt.TRPO)(n_envs=n_envs, n_steps=8, batch_size=8, **kwargs)
    env = gym.make(env_id)
    agent.prepare(env.observation_space, env.action_space, seed=0)
    agent.compile(jit_compile=jit_compile)
    return agent, env


def log_softmax(x):
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def numpy_forward(torso, dense, x):
    """A default tanh-MLP torso and its Dense head, evaluated from the weights in NumPy."""
    x = np.asarray(x, np.float64)
    for layer in torso.layers:
        if hasattr(layer, "kernel"):
            x = np.tanh(x @ layer.kernel.numpy() + layer.bias.numpy())
    return x @ dense.kernel.numpy() + dense.bias.numpy()


def fed_rollout(agent, obs, noise):
    """Uploads `noise`, then yields `(t, act(obs[t]))` for each step of the rollout."""
    agent.acting.start_rollout(noise)
    for t in range(len(obs)):
        action, _, logp, value = agent.acting.act(obs[t])
        yield t, (action, logp, value)


@pytest.mark.parametrize("jit_compile", [True, False])
def test_categorical_act_is_gumbel_max_of_each_steps_noise_row(jit_compile):
    agent, _ = built("ppo", "CartPole-v1", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(4, 3, 4)).astype(np.float32)
    noise = rng.gumbel(size=(4, 3, 2)).astype(np.float32)
    for t, (action, logp, value) in fed_rollout(agent, obs, noise):
        logits = numpy_forward(agent.policy_torso, agent.policy_head.dense, obs[t])
        expected = np.argmax(logits + noise[t], axis=-1)
        np.testing.assert_array_equal(action, expected)
        np.testing.assert_allclose(logp, log_softmax(logits)[np.arange(3), expected], atol=1e-5)
        expected_value = numpy_forward(agent.value_torso, agent.value_head, obs[t])[:, 0]
        np.testing.assert_allclose(value, expected_value, rtol=1e-5, atol=1e-5)


def test_gaussian_act_is_mean_plus_std_times_noise_with_its_log_density():
    agent, _ = built("trpo", "Pendulum-v1", log_std_init=-0.5)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(2, 3, 3)).astype(np.float32)
    noise = rng.normal(size=(2, 3, 1)).astype(np.float32)
    std = np.exp(-0.5)  # log_std_init, untrained
    for t, (action, logp, _) in fed_rollout(agent, obs, noise):
        mean = numpy_forward(agent.policy_torso, agent.policy_head.dense, obs[t])
        np.testing.assert_allclose(action, mean + std * noise[t], atol=1e-5)
        density = -0.5 * ((action - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)
        np.testing.assert_allclose(logp, density.sum(-1), atol=1e-4)


def test_act_follows_weights_assigned_after_its_first_call():
    """The per-step call takes the variables' handles once; assignments must show through."""
    agent, _ = built("trpo", "Pendulum-v1", n_envs=2)
    rng = np.random.default_rng(2)
    obs = rng.normal(size=(2, 3)).astype(np.float32)
    list(fed_rollout(agent, obs[None], np.zeros((1, 2, 1), np.float32)))
    agent.set_weights([rng.normal(size=w.shape) for w in agent.get_weights()])
    # A rollout of another length reshapes the noise buffer too.
    noise = rng.normal(size=(3, 2, 1)).astype(np.float32)
    for t, (action, _, value) in fed_rollout(agent, np.stack([obs] * 3), noise):
        mean = numpy_forward(agent.policy_torso, agent.policy_head.dense, obs)
        std = np.exp(agent.policy_head.log_std.numpy())
        np.testing.assert_allclose(action, mean + std * noise[t], rtol=1e-4, atol=1e-4)
        expected_value = numpy_forward(agent.value_torso, agent.value_head, obs)[:, 0]
        np.testing.assert_allclose(value, expected_value, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(agent.acting.value(obs), expected_value, rtol=1e-4, atol=1e-4)


def test_start_rollout_rewinds_to_the_first_row():
    agent, _ = built("ppo", "CartPole-v1", n_envs=1)
    obs = np.zeros((1, 4), np.float32)
    logits = agent.policy_params(obs)[0].numpy()[0]
    # Row 0 forces action 0, row 1 forces action 1, whatever the logits.
    big = 100.0 + abs(logits).max()
    noise = np.array([[[big, -big]], [[-big, big]]], np.float32)
    agent.acting.start_rollout(noise)
    assert [int(agent.acting.act(obs)[0][0]) for _ in range(2)] == [0, 1]
    agent.acting.start_rollout(noise)
    assert int(agent.acting.act(obs)[0][0]) == 0


def test_jit_compile_must_be_bool_or_auto():
    agent, _ = built("ppo", "CartPole-v1")
    with pytest.raises(ValueError, match="jit_compile"):
        agent.compile(jit_compile="yes")


def test_jit_compile_choice_survives_save_and_load(tmp_path):
    agent = kt.PPO(n_steps=16, batch_size=16)
    agent.compile(jit_compile=False)
    agent.fit("CartPole-v1", 16, verbose=0, seed=0)
    agent.save(tmp_path / "a.keras")
    assert kt.load_agent(tmp_path / "a.keras").jit_compile is False


class NoJitLayer(keras.layers.Layer):
    """A layer that declares it cannot be XLA-compiled."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_jit = False

    def call(self, x):
        return x


def test_auto_skips_xla_when_a_layer_does_not_support_it():
    torso = keras.Sequential([NoJitLayer(), keras.layers.Dense(8, activation="tanh")])
    agent = kt.PPO(policy=torso, n_steps=8, batch_size=8)
    env = gym.make("CartPole-v1")
    agent.prepare(env.observation_space, env.action_space, seed=0)
    assert agent.jit_compile is False
    agent.compile(jit_compile="auto")
    assert agent.jit_compile is False
    plain = kt.PPO(n_steps=8, batch_size=8)
    plain.prepare(env.observation_space, env.action_space, seed=0)
    assert plain.jit_compile is True


def test_flat_caller_matches_the_public_call_and_falls_back():
    """The direct graph call (TensorFlow internals) and its public fallback agree, and an
    object without `inference_fn` is called through the public path."""
    import tensorflow as tf

    from keras_trust.agents.acting import flat_caller

    w = tf.Variable([[1.0, -2.0], [0.5, 3.0]])

    @tf.function(input_signature=[tf.TensorSpec((None, 2), tf.float32)])
    def f(x):
        return x @ w, tf.reduce_sum(x)

    concrete = f.get_concrete_function()
    x = tf.constant([[1.0, 2.0], [3.0, 4.0]])
    expected = [x.numpy() @ w.numpy(), x.numpy().sum()]
    for caller in (flat_caller(concrete), flat_caller(concrete, internal=False)):
        out = caller(x)
        assert len(out) == 2
        np.testing.assert_allclose(out[0].numpy(), expected[0])
        np.testing.assert_allclose(out[1].numpy(), expected[1])

    class PublicOnly:
        def __call__(self, *tensors):
            return concrete(*tensors)

    out = flat_caller(PublicOnly())(x)
    np.testing.assert_allclose(out[0].numpy(), expected[0])
    w.assign([[0.0, 1.0], [1.0, 0.0]])  # captured handles see assignments
    np.testing.assert_allclose(flat_caller(concrete)(x)[0].numpy(), x.numpy()[:, ::-1])
