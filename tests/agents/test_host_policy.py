"""The NumPy rollout policy (`agents/host_policy.py`) against the compiled `act` and float64.

For each network and space it supports, every step's action, env action, log-probability
and value must equal (a) the XLA-compiled `act` of the same noise row, to float32
rounding (Categorical actions exactly), and (b) an independent float64 computation from
the layers' weights: the MLP by hand, Gumbel-max and log-softmax, the Gaussian density,
the clip to the bounds. Where it does not apply, the rollout must fall back to the graph.
"""

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.agents.acting import CompiledPolicy
from keras_trust.agents.host_policy import HostPlan, HostRollout


class SpaceEnv(gym.Env):
    """An env with the given spaces whose steps return samples of its observation space."""

    def __init__(self, observation_space, action_space):
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.observation_space.seed(seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        assert self.action_space.contains(np.asarray(action, self.action_space.dtype))
        return self.observation_space.sample(), 1.0, False, False, {}


BOX = gym.spaces.Box(-2.0, 2.0, (3,), np.float32)
CASES = {
    "categorical": (BOX, gym.spaces.Discrete(4), {}),
    "categorical_start_sigmoid": (
        BOX,
        gym.spaces.Discrete(3, start=-1),
        {"activation": "sigmoid"},
    ),
    "gaussian_normalized": (
        BOX,
        gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
        {"normalize_observations": True},
    ),
    "gaussian_relu_unbounded": (
        BOX,
        gym.spaces.Box(-np.inf, np.inf, (2,), np.float32),
        {"activation": "relu", "hidden_sizes": (8, 5)},
    ),
    "nd_box": (
        gym.spaces.Box(-1.0, 1.0, (2, 3), np.float32),
        gym.spaces.Box(-0.5, 0.5, (2, 2), np.float32),
        {"log_std_init": -0.5},
    ),
    "gsde": (
        BOX,
        gym.spaces.Box(-1.0, 1.0, (2,), np.float32),
        {"action_distribution": "gsde", "sde_sample_freq": 2},
    ),
    "discrete_obs": (gym.spaces.Discrete(5, start=2), gym.spaces.Discrete(3), {}),
    "multibinary_obs": (gym.spaces.MultiBinary(4), gym.spaces.Box(-1, 1, (1,), np.float32), {}),
}


def prepared(observation_space, action_space, n_envs=3, **kwargs):
    kwargs.setdefault("hidden_sizes", (6, 4))
    agent = kt.PPO(n_envs=n_envs, n_steps=8, batch_size=8, **kwargs)
    agent.prepare(observation_space, action_space, seed=0)
    # Random weights everywhere (a fresh head's near-zero init would hide mistakes).
    rng = np.random.default_rng(1)
    for v in agent.trainable_weights:
        v.assign(rng.normal(0, 0.7, v.shape).astype(np.float32))
    if agent.obs_normalizer is not None:
        agent.obs_normalizer.update(rng.normal(0.5, 2.0, (64, *observation_space.shape)))
    return agent


def float64_step(agent, obs, noise):
    """Action, env action, log-prob and value of one step, from the weights in float64."""
    space, dist = agent.observation_space, agent.action_distribution
    x = np.asarray(obs, np.float64)
    if isinstance(space, gym.spaces.Discrete):
        x = np.eye(space.n)[x.astype(int) - space.start]
    x = x.reshape(len(x), -1)
    if agent.obs_normalizer is not None:
        n = agent.obs_normalizer
        x = np.clip((x - n.mean.numpy()) / np.sqrt(n.var.numpy() + n.epsilon), -10, 10)

    def mlp(torso, head, x):
        act = {
            "tanh": np.tanh,
            "relu": lambda h: np.maximum(h, 0),
            "sigmoid": lambda h: 1 / (1 + np.exp(-h)),
        }[agent.activation]
        for layer in torso.layers:
            if isinstance(layer, keras.layers.Dense):
                x = act(x @ layer.kernel.numpy() + layer.bias.numpy())
        return x @ head.kernel.numpy() + head.bias.numpy(), x

    out, features = mlp(agent.policy_torso, agent.policy_head.dense, x)
    value = mlp(agent.value_torso, agent.value_head, x)[0][:, 0]
    if isinstance(agent.action_space, gym.spaces.Discrete):
        action = np.argmax(out + noise, -1)
        shifted = out - out.max(-1, keepdims=True)
        logp = (shifted - np.log(np.exp(shifted).sum(-1, keepdims=True)))[np.arange(len(x)), action]
        return action, action + agent.action_space.start, logp, value
    std = np.exp(agent.policy_head.log_std.numpy().astype(np.float64))
    if dist.name == "gsde":  # a = mean + z @ (eps * sigma), std^2 = z^2 @ sigma^2 + 1e-6
        action = out + np.einsum("bk,bkd->bd", features, noise * std)
        std = np.sqrt(features**2 @ std**2 + 1e-6)
        noise = (action - out) / std
    else:
        action = out + std * noise
    logp = (-0.5 * noise**2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    low, high = dist.space.low.reshape(-1), dist.space.high.reshape(-1)
    env_action = np.clip(action, low, high) if np.isfinite(low).all() else action
    return action, env_action.reshape(len(x), *dist.space.shape), logp, value


@pytest.mark.parametrize("case", sorted(CASES))
def test_host_rollout_equals_the_compiled_act_and_a_float64_computation(case):
    observation_space, action_space, kwargs = CASES[case]
    agent = prepared(observation_space, action_space, **dict(kwargs))
    observation_space.seed(0)
    obs = np.stack(
        [np.stack([observation_space.sample() for _ in range(3)]) for _ in range(5)]
    ).astype(np.float32)
    noise = agent.acting.sampling_noise(0, 5, np.arange(3), 0)
    host = agent.acting.rollout(noise)
    assert isinstance(host, HostRollout)
    agent.acting.start_rollout(noise)
    for t in range(5):
        mine, graph = host.act(obs[t]), agent.acting.act(obs[t])
        reference = float64_step(agent, obs[t], noise[t])
        for name, m, g, r in zip(("action", "env_action", "logp", "value"), mine, graph, reference):
            assert m.dtype == g.dtype and m.shape == g.shape, name
            if m.dtype.kind in "iu":
                np.testing.assert_array_equal(m, g, err_msg=name)
                np.testing.assert_array_equal(m, r, err_msg=name)
            else:
                np.testing.assert_allclose(m, g, rtol=1e-5, atol=1e-5, err_msg=name)
                np.testing.assert_allclose(m, r, rtol=1e-5, atol=1e-5, err_msg=name)
    np.testing.assert_allclose(host.value(obs[0]), agent.acting.value(obs[0]), rtol=1e-5, atol=1e-6)


def test_a_rollout_reads_the_weights_of_its_start():
    """Weights are copied when a rollout starts: a later change shows in the next one."""
    agent = prepared(BOX, gym.spaces.Discrete(2))
    obs = np.ones((3, 3), np.float32)
    noise = agent.acting.sampling_noise(0, 2, np.arange(3), 0)
    first = agent.acting.rollout(noise)
    before = first.value(obs)
    agent.value_head.bias.assign(agent.value_head.bias.numpy() + 5.0)
    np.testing.assert_array_equal(first.value(obs), before)
    np.testing.assert_allclose(agent.acting.rollout(noise).value(obs), before + 5.0, rtol=1e-6)


def test_fit_collects_with_numpy_and_the_same_actions_as_the_graph():
    """A fit steps its rollouts with the NumPy policy (the compiled act is never traced),
    and a Categorical agent's rollout is the same trajectory with `use_host=False`."""
    rollouts = {}
    for use_host in (True, False):
        agent = kt.PPO(n_envs=2, n_steps=64, batch_size=64, hidden_sizes=(8,))
        agent.fit("CartPole-v1", 128, verbose=0, seed=3)
        agent.acting.use_host = use_host
        sampler = kt.rollout.InProcessSampler()
        sampler.start("CartPole-v1", 2, seed=5)
        rollouts[use_host] = sampler.collect(agent, 64, iteration=0)
        sampler.close()
        if use_host:
            assert "act" not in agent.acting._fns  # fit never built the compiled act
    a, b = rollouts[True], rollouts[False]
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.observations, b.observations)
    np.testing.assert_allclose(a.log_probs, b.log_probs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-5, atol=1e-6)


def functional_torso():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(4, activation="tanh")(inputs))


FALLBACKS = {
    "functional model": (BOX, gym.spaces.Discrete(2), lambda: {"policy": functional_torso()}),
    "squashed gaussian": (
        BOX,
        gym.spaces.Box(-1, 1, (2,), np.float32),
        lambda: {"action_distribution": "squashed_gaussian"},
    ),
    "bernoulli actions": (BOX, gym.spaces.MultiBinary(3), dict),
    "multidiscrete actions": (BOX, gym.spaces.MultiDiscrete([2, 3]), dict),
    "image": (gym.spaces.Box(0, 255, (36, 36, 3), np.uint8), gym.spaces.Discrete(2), dict),
    "dict": (gym.spaces.Dict({"a": BOX}), gym.spaces.Discrete(2), dict),
    "recurrent": (
        BOX,
        gym.spaces.Discrete(2),
        lambda: {"policy": kt.networks.RecurrentTorso(keras.layers.GRUCell(4))},
    ),
    "elu activation": (BOX, gym.spaces.Discrete(2), lambda: {"activation": "elu"}),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_other_networks_and_spaces_keep_the_compiled_act(case):
    observation_space, action_space, kwargs = FALLBACKS[case]
    agent = kt.PPO(n_envs=1, n_steps=8, batch_size=8, **kwargs())
    agent.prepare(observation_space, action_space, seed=0)
    assert HostPlan.for_agent(agent) is None
    noise = agent.acting.sampling_noise(0, 2, np.arange(1), 0)
    assert isinstance(agent.acting.rollout(noise), CompiledPolicy)


def test_masked_envs_keep_the_compiled_act():
    agent = kt.PPO(n_envs=1, n_steps=8, batch_size=8)
    agent.fit("Taxi-v4", 8, verbose=0, seed=0)
    assert agent.masked and HostPlan.for_agent(agent) is None
