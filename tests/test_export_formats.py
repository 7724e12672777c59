"""Every export format serves the agent's deterministic action.

The reference is a NumPy forward pass written here from the layer weights (normalize,
tanh MLP, mean/logits head, clip or argmax), not the agent's own code. The weights and
normalization statistics are set so that the actions are spread out: some Box actions
hit the clip bounds, both CartPole actions occur, and normalization changes the answer.
"""

import sys

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust.export import export

# tf.lite.Interpreter still works in TF 2.21 but warns that LiteRT replaces it.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:tensorflow.lite.python.interpreter")


def _numpy_policy(agent, obs, normalize=True):
    """The deterministic action computed from the weights with NumPy."""
    x = np.asarray(obs, np.float64)
    if agent.obs_normalizer is not None and normalize:
        norm = agent.obs_normalizer
        mean, var = norm.mean.numpy(), norm.var.numpy()
        x = np.clip((x - mean) / np.sqrt(var + norm.epsilon), -norm.clip, norm.clip)
    for layer in agent.policy_torso.layers:
        if hasattr(layer, "kernel"):
            x = np.tanh(x @ layer.kernel.numpy() + layer.bias.numpy())
    dense = agent.policy_head.dense
    out = x @ dense.kernel.numpy() + dense.bias.numpy()
    space = agent.action_space
    if isinstance(space, gym.spaces.Box):
        return np.clip(out, space.low, space.high)
    return np.argmax(out, axis=-1) + int(space.start)


def _spread_out(agent, rng):
    """Larger head weights and non-trivial normalization statistics."""
    dense = agent.policy_head.dense
    dense.kernel.assign(rng.normal(0.0, 2.0, dense.kernel.shape).astype(np.float32))
    dense.bias.assign(rng.normal(0.0, 0.5, dense.bias.shape).astype(np.float32))
    if agent.obs_normalizer is not None:
        n = agent.obs_normalizer.mean.shape
        agent.obs_normalizer.mean.assign(rng.normal(0.0, 1.0, n))
        agent.obs_normalizer.var.assign(rng.uniform(0.2, 4.0, n))


@pytest.fixture(scope="module", params=["CartPole-v1", "Pendulum-v1"])
def case(request):
    env_id = request.param
    agent = kt.PPO(n_steps=64, batch_size=64, epochs=1, normalize_observations=True)
    agent.fit(env_id, 64, verbose=0, seed=0)
    rng = np.random.default_rng(1)
    _spread_out(agent, rng)
    obs = rng.normal(0.0, 2.0, (64, *agent.obs_shape)).astype(np.float32)
    expected = _numpy_policy(agent, obs)
    # The agent itself matches the independent computation ...
    np.testing.assert_allclose(agent.predict(obs), expected, rtol=1e-5, atol=1e-5)
    # ... and the case can tell a wrong pipeline apart: normalization matters, and the
    # actions are spread out (both discrete actions; Box actions inside and at the bounds).
    assert not np.allclose(_numpy_policy(agent, obs, normalize=False), expected, atol=1e-3)
    if isinstance(agent.action_space, gym.spaces.Box):
        at_bound = np.isclose(np.abs(expected), agent.action_space.high[0])
        assert at_bound.any() and (~at_bound).any()
    else:
        assert set(np.unique(expected)) == {0, 1}
    return agent, obs, expected


def _check(actions, expected, agent):
    actions = np.asarray(actions)
    assert actions.shape == expected.shape
    if isinstance(agent.action_space, gym.spaces.Box):
        np.testing.assert_allclose(actions, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(actions, expected)


def test_saved_model(case, tmp_path):
    agent, obs, expected = case
    export(agent, tmp_path / "policy", format="saved_model")
    loaded = tf.saved_model.load(str(tmp_path / "policy"))
    _check(loaded.serving_default(tf.constant(obs)).numpy(), expected, agent)


def test_tflite(case, tmp_path):
    agent, obs, expected = case
    path = tmp_path / "policy.tflite"
    export(agent, path, format="tflite")
    interpreter = tf.lite.Interpreter(model_path=str(path))
    runner = interpreter.get_signature_runner("serving_default")
    _check(runner(observation=obs)["action"], expected, agent)
    # A batch of one (the interpreter resizes the batch dimension).
    _check(runner(observation=obs[:1])["action"], expected[:1], agent)


def test_onnx(case, tmp_path):
    pytest.importorskip("tf2onnx", reason="ONNX export needs the `export` extra (tf2onnx)")
    ort = pytest.importorskip("onnxruntime", reason="running ONNX needs onnxruntime")
    agent, obs, expected = case
    path = tmp_path / "policy.onnx"
    export(agent, path, format="onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["observation"]
    (actions,) = session.run(["action"], {"observation": obs})
    _check(actions, expected, agent)


def test_onnx_without_tf2onnx_says_what_to_install(case, tmp_path, monkeypatch):
    agent, _, _ = case
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # makes `import tf2onnx` fail
    with pytest.raises(ImportError, match=r"pip install .*tf2onnx"):
        export(agent, tmp_path / "policy.onnx", format="onnx")
    assert not (tmp_path / "policy.onnx").exists()


def test_bad_format_and_unbuilt_agent(case, tmp_path):
    agent, _, _ = case
    with pytest.raises(ValueError, match="Unsupported export format 'pickle'"):
        export(agent, tmp_path / "x", format="pickle")
    with pytest.raises(ValueError, match="not been built"):
        export(kt.PPO(), tmp_path / "y", format="tflite")
