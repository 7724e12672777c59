"""Bad inputs at the edges (issue #19): `predict`, `evaluate`, `export` and `load_agent`
given wrong shapes, dtypes, NaN, wrong Dict keys, wrong masks, bad arguments, truncated
or foreign `.keras` files. Each must raise a `ValueError` (`FileNotFoundError` for a
missing file) whose message names the problem, never an error from deep inside
TensorFlow, Keras, zipfile or NumPy (`InvalidArgumentError`, `KeyError`, `IndexError`,
`AttributeError`, `BadZipFile`, ...).

Three small real agents are trained once for the module: PPO on CartPole-v1, TRPO on
Pendulum-v1 and PPO on a toy env with a Dict observation space.
"""

import io
import os
import zipfile

import gymnasium as gym
import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import keras_trust as kt

SETTINGS = settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)


class DictEnv(gym.Env):
    """A Dict observation (a Box leaf and a Discrete leaf), Discrete(2) actions."""

    observation_space = gym.spaces.Dict(
        {"pos": gym.spaces.Box(-1, 1, (2,), np.float32), "phase": gym.spaces.Discrete(3)}
    )
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        return {
            "pos": self.np_random.uniform(-1, 1, 2).astype(np.float32),
            "phase": int(self.np_random.integers(3)),
        }

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, False, self.t >= 5, {}


class BoxActionCartPole(gym.Wrapper):
    """CartPole's observations with a Box action space: the agent's actions do not fit."""

    def __init__(self):
        super().__init__(gym.make("CartPole-v1"))
        self.action_space = gym.spaces.Box(-1, 1, (1,), np.float32)

    def step(self, action):
        return self.env.step(int(np.asarray(action).reshape(-1)[0] > 0))


@pytest.fixture(scope="module")
def agents():
    cartpole = kt.PPO(n_steps=64, batch_size=32, epochs=1)
    cartpole.fit("CartPole-v1", 64, verbose=0, seed=0)
    pendulum = kt.TRPO(n_steps=64, batch_size=64, value_epochs=1)
    pendulum.fit("Pendulum-v1", 64, verbose=0, seed=0)
    dict_agent = kt.PPO(n_steps=64, batch_size=32, epochs=1)
    dict_agent.fit(DictEnv, 64, verbose=0, seed=0)
    return {"cartpole": cartpole, "pendulum": pendulum, "dict": dict_agent}


@pytest.fixture(scope="module")
def saved(agents, tmp_path_factory):
    """The directory holding `agent.keras`, a real file of the CartPole agent."""
    directory = tmp_path_factory.mktemp("saved")
    agents["cartpole"].save(directory / "agent.keras")
    return directory


def flat_agent_and_shape(agents, name):
    agent = agents[name]
    return agent, tuple(agent.observation_space.shape)


def valid_flat_shape(shape, leaf):
    return shape == leaf or (len(shape) == len(leaf) + 1 and shape[0] >= 1 and shape[1:] == leaf)


def assert_clear_value_error(fn, *words):
    """`fn()` raises exactly a ValueError (not a subclass from deep inside a library) whose
    message contains each of `words` (case-insensitive)."""
    with pytest.raises(ValueError) as info:
        fn()
    message = str(info.value).lower()
    for word in words:
        assert word.lower() in message, message
    # Exactly ValueError: no subclass from a library (json's JSONDecodeError, ...) passes.
    assert type(info.value) is ValueError, type(info.value)
    return info.value


# --------------------------------------------------------------------------- predict
shapes = st.lists(st.integers(0, 5), min_size=0, max_size=4).map(tuple)


@SETTINGS
@given(name=st.sampled_from(["cartpole", "pendulum"]), shape=shapes, data=st.data())
def test_predict_wrong_shapes(agents, name, shape, data):
    agent, leaf = flat_agent_and_shape(agents, name)
    if valid_flat_shape(shape, leaf):
        shape = (*shape, 1)  # one extra trailing dimension
    obs = np.zeros(shape, np.float32)
    method = data.draw(st.sampled_from(["predict", "predict_value"]))
    assert_clear_value_error(lambda: getattr(agent, method)(obs), "shape")


@SETTINGS
@given(name=st.sampled_from(["cartpole", "pendulum"]), batch=st.integers(1, 3), data=st.data())
def test_predict_wrong_dtypes(agents, name, batch, data):
    agent, leaf = flat_agent_and_shape(agents, name)
    n = int(np.prod(leaf))
    kind = data.draw(st.sampled_from(["str", "numeric_str", "object", "complex", "bytes", "dict"]))
    if kind == "str":
        obs = np.full((batch, n), "abc")
    elif kind == "numeric_str":
        obs = np.full((batch, n), "1.5")
    elif kind == "object":
        obs = np.empty((batch, n), object)
        obs[:] = data.draw(st.sampled_from([None, "x", 1.0, object()]))
    elif kind == "complex":
        obs = np.full((batch, n), 1 + 2j)
    elif kind == "bytes":
        obs = np.full((batch, n), b"\x00")
    else:
        obs = {"obs": np.zeros((batch, n), np.float32)}
    word = "dict" if kind == "dict" else "dtype"
    assert_clear_value_error(lambda: agent.predict(obs), word)


@SETTINGS
@given(
    name=st.sampled_from(["cartpole", "pendulum", "dict"]),
    batch=st.integers(1, 4),
    bad=st.sampled_from([np.nan, np.inf, -np.inf, 1e300]),
    data=st.data(),
)
def test_predict_non_finite(agents, name, batch, bad, data):
    agent = agents[name]
    if name == "dict":
        obs = {"pos": np.zeros((batch, 2), np.float32), "phase": np.zeros(batch, np.int64)}
        leaf = data.draw(st.sampled_from(["pos", "phase"]))
        obs[leaf] = obs[leaf].astype(np.float64)
        target = obs[leaf]
    else:
        leaf = None
        obs = target = np.zeros((batch, *agent.observation_space.shape), np.float64)
    index = data.draw(st.integers(0, target.size - 1))
    target.reshape(-1)[index] = bad
    error = assert_clear_value_error(lambda: agent.predict(obs), "non-finite")
    if leaf is not None:
        assert repr(leaf) in str(error) or leaf in str(error)


@SETTINGS
@given(data=st.data())
def test_predict_wrong_dict_keys(agents, data):
    agent = agents["dict"]
    good = {"pos": np.zeros((2, 2), np.float32), "phase": np.zeros(2, np.int64)}
    kind = data.draw(st.sampled_from(["missing", "extra", "renamed", "array", "list", "nested"]))
    if kind == "missing":
        dropped = data.draw(st.sampled_from(list(good)))
        obs = {k: v for k, v in good.items() if k != dropped}
    elif kind == "extra":
        obs = {**good, data.draw(st.sampled_from(["vel", "x", "0"])): np.zeros((2, 1))}
    elif kind == "renamed":
        obs = {"pos": good["pos"], "Phase": good["phase"]}
    elif kind == "array":
        obs = np.zeros((2, 5), np.float32)
    elif kind == "list":
        obs = [good["pos"], good["phase"]]
    else:
        obs = {"pos": {"x": good["pos"]}, "phase": good["phase"]}
    assert_clear_value_error(lambda: agent.predict(obs), "observation")


@SETTINGS
@given(
    pos_shape=shapes,
    phase_shape=shapes,
)
def test_predict_dict_leaf_shapes(agents, pos_shape, phase_shape):
    agent = agents["dict"]
    single = pos_shape == (2,) and phase_shape == ()
    batched = (
        len(pos_shape) == 2
        and pos_shape[1:] == (2,)
        and len(phase_shape) == 1
        and pos_shape[0] == phase_shape[0] >= 1
    )
    if single or batched:
        pos_shape = (*pos_shape, 1)
    obs = {"pos": np.zeros(pos_shape, np.float32), "phase": np.zeros(phase_shape, np.int64)}
    assert_clear_value_error(lambda: agent.predict(obs), "shape")


@SETTINGS
@given(batch=st.integers(1, 3), mask_shape=shapes, data=st.data())
def test_predict_wrong_action_mask(agents, batch, mask_shape, data):
    agent = agents["cartpole"]
    obs = np.zeros((batch, 4), np.float32)
    kind = data.draw(st.sampled_from(["shape", "dtype", "all_false", "continuous"]))
    if kind == "shape":
        if mask_shape in ((2,), (batch, 2)):
            mask_shape = (*mask_shape, 1)
        mask, words = np.ones(mask_shape, bool), ["action_mask", "shape"]
    elif kind == "dtype":
        mask = data.draw(
            st.sampled_from(
                [np.full((batch, 2), "yes"), np.full(2, None), np.full(2, 1j), np.full(2, np.nan)]
            )
        )
        words = ["action_mask", "dtype"]
    elif kind == "all_false":
        mask, words = np.zeros((batch, 2), bool), ["action_mask", "allows no action"]
    else:
        agent, obs = agents["pendulum"], np.zeros((batch, 3), np.float32)
        mask, words = np.ones((batch, 2), bool), ["action_mask"]
    assert_clear_value_error(lambda: agent.predict(obs, action_mask=mask), *words)


def test_predict_examples(agents):
    """A few hand-picked cases, and the valid forms still working."""
    cartpole = agents["cartpole"]
    assert np.shape(cartpole.predict(np.zeros(4, np.float32))) == ()
    assert np.shape(cartpole.predict(np.zeros((3, 4)))) == (3,)
    assert np.shape(cartpole.predict([0.0, 0.1, 0.2, 0.3])) == ()
    assert np.shape(agents["pendulum"].predict(np.zeros((2, 3), np.int64))) == (2, 1)
    dict_agent = agents["dict"]
    assert np.shape(dict_agent.predict({"pos": [0.1, 0.2], "phase": 1})) == ()
    assert np.shape(dict_agent.predict({"pos": np.zeros((2, 2)), "phase": [0, 2]})) == (2,)
    assert_clear_value_error(lambda: cartpole.predict(np.zeros((0, 4))), "empty")
    assert_clear_value_error(lambda: cartpole.predict([[0.0, 1.0], [1.0]]), "observation")
    assert_clear_value_error(lambda: cartpole.predict(None), "observation")
    error = assert_clear_value_error(
        lambda: dict_agent.predict({"pos": [np.nan, 0.0], "phase": 1}), "non-finite"
    )
    assert "pos" in str(error)
    error = assert_clear_value_error(lambda: dict_agent.predict({"pos": [0.0, 0.0]}), "phase")


# -------------------------------------------------------------------------- evaluate
@SETTINGS
@given(
    episodes=st.one_of(
        st.integers(-5, 0),
        st.floats(allow_nan=True),
        st.just(True),
        st.text(max_size=3),
        st.none(),
        st.just([1]),
    )
)
def test_evaluate_bad_episodes(agents, episodes):
    assert_clear_value_error(
        lambda: agents["cartpole"].evaluate("CartPole-v1", episodes), "episodes"
    )


@pytest.mark.parametrize(
    "env",
    [
        None,
        3,
        object(),
        np.zeros(4),
        "NoSuchEnv-v0",
        lambda: 3,
        # A vector env is evaluated over, but only in NEXT_STEP autoreset mode.
        gym.vector.SyncVectorEnv(
            [lambda: gym.make("CartPole-v1")], autoreset_mode=gym.vector.AutoresetMode.SAME_STEP
        ),
    ],
)
def test_evaluate_non_env(agents, env):
    assert_clear_value_error(lambda: agents["cartpole"].evaluate(env, 1))


@pytest.mark.parametrize(
    "name, env, words",
    [
        ("cartpole", "Pendulum-v1", ["observation space"]),
        ("cartpole", BoxActionCartPole, ["action space"]),
        ("pendulum", "CartPole-v1", ["observation space"]),
        ("dict", "CartPole-v1", ["observation space"]),
        ("cartpole", DictEnv, ["observation space"]),
        ("cartpole", "Acrobot-v1", ["observation space"]),
    ],
)
def test_evaluate_env_with_other_spaces(agents, name, env, words):
    assert_clear_value_error(lambda: agents[name].evaluate(env, 1), *words)


# ---------------------------------------------------------------------------- export
@SETTINGS
@given(
    fmt=st.one_of(
        st.text(max_size=8).filter(
            lambda s: (
                s.lower() not in ("saved_model", "tf_saved_model", "savedmodel")
                and s.lower() not in ("tflite", "tf_lite", "onnx")
            )
        ),
        st.none(),
        st.integers(),
        st.just(["saved_model"]),
    )
)
def test_export_bad_format(agents, tmp_path_factory, fmt):
    path = tmp_path_factory.mktemp("export") / "policy"
    assert_clear_value_error(lambda: agents["cartpole"].export(path, format=fmt), "format")
    assert not path.exists()


def test_export_bad_paths(agents, tmp_path):
    agent = agents["cartpole"]
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a directory")
    cases = [
        (None, "saved_model", "path"),
        (3, "saved_model", "path"),
        ("", "saved_model", "path"),
        (a_file, "saved_model", "file"),
        (a_file / "policy", "saved_model", "not a directory"),
        (tmp_path, "tflite", "directory"),
        (a_file / "policy.tflite", "tflite", "not a directory"),
        ("", "tflite", "path"),
    ]
    for path, fmt, word in cases:
        assert_clear_value_error(lambda p=path, f=fmt: agent.export(p, format=f), word)
    assert a_file.read_text() == "not a directory"
    assert_clear_value_error(
        lambda: agents["dict"].export(tmp_path / "d.tflite", format="tflite"), "savedmodel"
    )


# ------------------------------------------------------------------------ load_agent
@SETTINGS
@given(fraction=st.floats(0.0, 1.0, exclude_max=True))
def test_load_truncated_file(saved, fraction):
    directory = saved
    data = (directory / "agent.keras").read_bytes()
    path = directory / f"truncated-{int(fraction * 1e9)}.keras"
    path.write_bytes(data[: int(fraction * len(data))])
    try:
        assert_clear_value_error(lambda: kt.load_agent(path), path.name)
    finally:
        path.unlink()


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_load_random_bytes(saved, data):
    path = saved / "random.keras"
    path.write_bytes(data)
    assert_clear_value_error(lambda: kt.load_agent(path), "random.keras")


@SETTINGS
@given(
    members=st.dictionaries(
        st.sampled_from(["config.json", "metadata.json", "model.weights.h5", "foo.txt", "a/b"]),
        st.binary(max_size=200),
        max_size=3,
    )
)
def test_load_zip_that_is_not_keras(saved, members):
    path = saved / "foreign.keras"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    path.write_bytes(buffer.getvalue())
    assert_clear_value_error(lambda: kt.load_agent(path), "foreign.keras")


def test_load_other_files(saved, tmp_path):
    directory = saved
    data = (directory / "agent.keras").read_bytes()
    assert isinstance(kt.load_agent(directory / "agent.keras"), kt.PPO)  # the real one loads

    plain = tmp_path / "plain.keras"
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(plain)
    assert_clear_value_error(lambda: kt.load_agent(plain), "plain.keras", "not a keras_trust agent")

    # The real file's entries with a config that names an unknown class.
    tampered = tmp_path / "tampered.keras"
    with zipfile.ZipFile(directory / "agent.keras") as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            content = src.read(item.filename)
            if item.filename == "config.json":
                content = content.replace(b'"PPO"', b'"NoSuchAgent"').replace(
                    b'"keras_trust>PPO"', b'"keras_trust>NoSuchAgent"'
                )
            dst.writestr(item, content)
    assert_clear_value_error(lambda: kt.load_agent(tampered), "tampered.keras")

    wrong_suffix = tmp_path / "agent.h5"
    wrong_suffix.write_bytes(data)
    assert_clear_value_error(lambda: kt.load_agent(wrong_suffix), "agent.h5")
    assert_clear_value_error(lambda: kt.load_agent(tmp_path), str(tmp_path.name))

    with pytest.raises(FileNotFoundError, match="missing.keras"):
        kt.load_agent(tmp_path / "missing.keras")
    assert_clear_value_error(lambda: kt.load_agent(None), "path")
    assert not os.path.exists(tmp_path / "missing.keras")
