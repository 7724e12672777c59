"""The spaces of real problems end to end: Dict observations, MultiBinary and (2, 2)-Box
actions, action masks (Taxi-v4, a MultiDiscrete toy), Atari frames stored as uint8."""

import json
import os
import subprocess
import sys

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout import InProcessSampler


class DictEnv(gym.Env):
    """Reward 1 when the action equals the parity of the Discrete leaf; a Box leaf of noise."""

    observation_space = gym.spaces.Dict(
        {"pos": gym.spaces.Box(-1, 1, (2,), np.float32), "phase": gym.spaces.Discrete(3)}
    )
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def _obs(self):
        self.phase = int(self.np_random.integers(3))
        return {"pos": self.np_random.uniform(-1, 1, 2).astype(np.float32), "phase": self.phase}

    def step(self, action):
        reward = float(action == self.phase % 2)
        self.t += 1
        return self._obs(), reward, False, self.t >= 20, {}


def named_inputs_model():
    pos = keras.Input((2,), name="pos")
    phase = keras.Input((3,), name="phase")  # the Discrete leaf arrives one-hot
    x = keras.layers.Concatenate()([pos, phase])
    x = keras.layers.Dense(32, activation="tanh")(x)
    return keras.Model({"pos": pos, "phase": phase}, x)


CHILD = r"""
import json, sys
import numpy as np, tensorflow as tf
assert "keras_trust" not in sys.modules
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
specs = serve.structured_input_signature[1]
args = json.loads(sys.argv[2])
out = serve(**{k: tf.constant(np.asarray(v), dtype=specs[k].dtype) for k, v in args.items()})
print(json.dumps(next(iter(out.values())).numpy().tolist()))
assert "keras_trust" not in sys.modules
"""


def run_saved_model(path, inputs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), json.dumps(inputs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return np.array(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("model", ["default", "named_inputs"])
def test_dict_observations_learn_save_load_and_export(model, tmp_path):
    policy = named_inputs_model() if model == "named_inputs" else None
    agent = kt.PPO(policy=policy, n_envs=2, n_steps=64, batch_size=32, normalize_observations=True)
    agent.compile(optimizer=keras.optimizers.Adam(3e-3))
    agent.fit(DictEnv, 2 * 64 * 12, verbose=0, seed=0)
    result = agent.evaluate(DictEnv, episodes=5, seed=1)
    assert result["mean_return"] >= 18.0  # 20 is perfect, chance is 10
    obs = {"pos": np.zeros((3, 2), np.float32), "phase": np.array([0, 1, 2])}
    np.testing.assert_array_equal(agent.predict(obs), [0, 1, 0])
    agent.save(tmp_path / "a.keras")
    loaded = kt.load_agent(tmp_path / "a.keras")
    np.testing.assert_array_equal(loaded.predict(obs), agent.predict(obs))
    agent.export(tmp_path / "policy")
    served = run_saved_model(
        tmp_path / "policy",
        {"observation_pos": obs["pos"].tolist(), "observation_phase": [0, 1, 2]},
    )
    np.testing.assert_array_equal(served, agent.predict(obs))


class BitsEnv(gym.Env):
    """MultiBinary((2, 2)) actions; reward = bits equal to a fixed target, 10 steps."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.MultiBinary([2, 2])
    target = np.array([[1, 0], [0, 1]], np.int8)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert action.shape == (2, 2) and action.dtype == np.int8, (action.shape, action.dtype)
        self.t += 1
        return (
            np.zeros(3, np.float32),
            float((action == self.target).sum()),
            False,
            self.t >= 10,
            {},
        )


class MatrixEnv(gym.Env):
    """Box((2, 2)) actions; reward = -squared distance to a fixed target matrix."""

    observation_space = gym.spaces.Box(-1, 1, (3,), np.float32)
    action_space = gym.spaces.Box(-1, 1, (2, 2), np.float32)
    target = np.array([[0.5, -0.5], [0.2, 0.0]], np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(3, np.float32), {}

    def step(self, action):
        assert action.shape == (2, 2), action.shape
        self.t += 1
        cost = float(((action - self.target) ** 2).sum())
        return np.zeros(3, np.float32), -cost, False, self.t >= 10, {}


@pytest.mark.parametrize("cls", [kt.PPO, kt.TRPO])
def test_multibinary_and_matrix_box_actions_are_learned(cls, tmp_path):
    bits = cls(n_envs=2, n_steps=64, batch_size=32)
    bits.fit(BitsEnv, 2 * 64 * 15, verbose=0, seed=0)
    assert bits.evaluate(BitsEnv, episodes=2)["mean_return"] == 40.0  # every bit right
    action = bits.predict(np.zeros(3, np.float32))
    assert action.shape == (2, 2) and action.dtype == np.int8
    matrix = cls(n_envs=2, n_steps=64, batch_size=32)
    matrix.fit(MatrixEnv, 2 * 64 * 15, verbose=0, seed=0)
    # A random policy (std 1) scores about -45; the target itself 0.
    assert matrix.evaluate(MatrixEnv, episodes=2)["mean_return"] > -5.0
    matrix.export(tmp_path / "policy")
    served = run_saved_model(tmp_path / "policy", {"observation": [[0.0, 0.0, 0.0]]})
    assert served.shape == (1, 2, 2)
    np.testing.assert_allclose(served[0], matrix.predict(np.zeros(3, np.float32)), rtol=1e-6)


class LegalOnly(gym.Wrapper):
    """Counts actions that the last mask the env gave did not allow."""

    def __init__(self, env, source="info"):
        super().__init__(env)
        self.source, self.illegal, self.steps, self.mask = source, 0, 0, None

    def _remember(self, info):
        self.mask = info["action_mask"] if self.source == "info" else self.env.action_masks()

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._remember(info)
        return obs, info

    def step(self, action):
        if np.ndim(action) == 0:
            self.illegal += not self.mask[int(action)]
        else:
            offsets = np.concatenate([[0], np.cumsum(self.env.action_space.nvec)[:-1]])
            self.illegal += not self.mask[offsets + np.asarray(action)].all()
        self.steps += 1
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._remember(info)
        return obs, reward, terminated, truncated, info


AGENTS = {
    "ppo": lambda: kt.PPO(n_envs=2, n_steps=128, batch_size=64),
    "ppo_kl": lambda: kt.PPO(
        n_envs=2, n_steps=128, batch_size=64, clip_ratio=None, kl_penalty=kt.layers.KLPenalty()
    ),
    "trpo": lambda: kt.TRPO(n_envs=2, n_steps=128, batch_size=64),
    "npg": lambda: kt.TRPO(n_envs=2, n_steps=128, batch_size=64),
}


@pytest.mark.parametrize("name", list(AGENTS))
def test_taxi_masks_are_never_violated_in_fit_and_evaluate(name, tmp_path):
    agent = AGENTS[name]()
    if name == "npg":
        agent.compile(optimizer=kt.optimizers.NaturalGradient(max_kl=0.01))
    envs = []

    def make():
        envs.append(LegalOnly(gym.make("Taxi-v4")))
        return envs[-1]

    agent.fit(make, 2 * 128 * 3, verbose=0, seed=0)
    assert agent.masked
    # Every env.step of the fit (reset steps of NEXT_STEP autoreset call reset instead).
    assert sum(e.steps for e in envs) > 2 * 128 * 3 - 20
    assert sum(e.illegal for e in envs) == 0
    env = LegalOnly(gym.make("Taxi-v4"))
    agent.evaluate(env, episodes=2, seed=0)
    assert env.steps > 0 and env.illegal == 0
    # predict with a user's mask, and the SavedModel's mask input.
    only_north = np.array([0, 1, 0, 0, 0, 0], bool)
    assert int(agent.predict(0, action_mask=only_north)) == 1
    with pytest.raises(ValueError, match="allows no action"):
        agent.predict(0, action_mask=np.zeros(6, bool))
    if name == "ppo":
        agent.export(tmp_path / "policy")
        served = run_saved_model(
            tmp_path / "policy",
            {"observation": [0.0, 0.0], "action_mask": [only_north.tolist(), [1, 0, 0, 0, 0, 0]]},
        )
        np.testing.assert_array_equal(served, [1, 0])


class MultiMaskEnv(gym.Env):
    """MultiDiscrete([3, 2]) with sb3-contrib's `action_masks()`; allowed sets change."""

    observation_space = gym.spaces.Box(0, 1, (2,), np.float32)
    action_space = gym.spaces.MultiDiscrete([3, 2])

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2, np.float32), {}

    def action_masks(self):
        first = [self.t % 3 != 0, True, self.t % 2 == 0]
        second = [self.t % 2 == 1, self.t % 2 == 0]
        return np.array(first + second, bool)

    def step(self, action):
        self.t += 1
        return np.full(2, self.t % 2, np.float32), 1.0, False, self.t >= 15, {}


def test_multidiscrete_masks_from_the_action_masks_method():
    envs = []

    def make():
        envs.append(LegalOnly(MultiMaskEnv(), source="method"))
        return envs[-1]

    for cls in (kt.PPO, kt.TRPO):
        agent = cls(n_envs=2, n_steps=64, batch_size=32)
        agent.fit(make, 2 * 64 * 2, verbose=0, seed=0)
        assert agent.masked
    assert sum(e.steps for e in envs) > 400 and sum(e.illegal for e in envs) == 0


class NoChoiceEnv(MultiMaskEnv):
    action_space = gym.spaces.Discrete(2)

    def action_masks(self):
        return np.array([self.t < 3, False])


def test_an_all_false_mask_row_is_a_value_error():
    with pytest.raises(ValueError, match="no allowed action"):
        kt.PPO(n_steps=16, batch_size=16).fit(NoChoiceEnv, 32, verbose=0)


def test_masks_can_be_ignored():
    agent = kt.PPO(n_steps=64, batch_size=64, use_action_masks=False)
    agent.fit("Taxi-v4", 64, verbose=0, seed=0)
    assert not agent.masked


def atari_env():
    import ale_py

    gym.register_envs(ale_py)
    env = gym.make("ALE/Pong-v5", frameskip=1)
    env = gym.wrappers.AtariPreprocessing(env, frame_skip=4)
    return gym.wrappers.FrameStackObservation(env, 4)


def test_atari_frames_are_stored_as_uint8_and_the_agent_fits_saves_loads_exports(tmp_path):
    agent = kt.PPO(n_envs=2, n_steps=32, batch_size=32, epochs=1)
    agent.fit(atari_env, 2 * 32 * 2, verbose=0, seed=0)
    # The default torso is the Nature CNN (84x84 frames, channels first -> last).
    assert any(isinstance(layer, keras.layers.Conv2D) for layer in agent.policy_torso.layers)
    sampler = InProcessSampler()
    sampler.start(atari_env, 2, seed=0)
    try:
        rollout = sampler.collect(agent, 32, 0)
    finally:
        sampler.close()
    assert rollout.observations.dtype == np.uint8
    assert rollout.observations.nbytes == 32 * 2 * 4 * 84 * 84  # float32 would be 4x
    agent.save(tmp_path / "pong.keras")
    loaded = kt.load_agent(tmp_path / "pong.keras")
    frames = rollout.observations[:3, 0]
    np.testing.assert_array_equal(loaded.predict(frames), agent.predict(frames))
    agent.export(tmp_path / "policy")
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "policy")).signatures["serving_default"]
    assert served.structured_input_signature[1]["observation"].dtype == tf.uint8
    out = next(iter(served(observation=tf.constant(frames)).values())).numpy()
    np.testing.assert_array_equal(out, agent.predict(frames))
