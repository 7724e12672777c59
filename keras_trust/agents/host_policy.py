"""The rollout's per-step policy in NumPy, for the networks NumPy can run exactly.

A rollout calls the policy once per vector step on a batch of `n_envs` observations.
For the default MLPs (or any `keras.Sequential` of `Flatten` and `Dense` layers) with a
diagonal-Gaussian (also gSDE's) or Categorical head, that call is a few small matrix products, and
TensorFlow's fixed cost per call (argument conversion, dispatch, the executor's threads)
is several times the arithmetic; on a loaded machine the thread hand-offs make it far
worse. `HostPlan` copies the weights to NumPy once per rollout (they only change in the
update) and computes the same sample, log-probability and value as the compiled `act`
(`agents/acting.py`), from the same noise rows, with float32 arithmetic. It differs from
the graph by float rounding only (float32, a few ulp: different summation order and
`tanh`); `tests/agents/test_host_policy.py` checks it against the graph and against an
independent float64 computation.

Everything else (a user's functional or subclassed model, images, Dict/Tuple
observations, masks, recurrent torsos, squashed or Bernoulli actions, mixed precision)
keeps the compiled call: `HostPlan.for_agent` returns None for it. `predict`,
`predict_value`, `evaluate` and `export` always use the graph, with the current weights.
"""

import gymnasium as gym
import keras
import numpy as np

from keras_trust.distributions.base import discrete_offset
from keras_trust.distributions.categorical import Categorical
from keras_trust.distributions.diag_gaussian import DiagGaussian
from keras_trust.distributions.state_dependent_gaussian import StateDependentGaussian

_HALF_LOG_2PI = np.float32(0.5 * np.log(2.0 * np.pi))


def _relu(h):
    return np.maximum(h, 0.0, out=h)


def _tanh(h):
    return np.tanh(h, out=h)


def _sigmoid(h):
    return np.reciprocal(1.0 + np.exp(-h), out=h)


# Keras activation name -> in-place NumPy version (None: linear).
ACTIVATIONS = {"tanh": _tanh, "relu": _relu, "sigmoid": _sigmoid, "linear": None}


def _activation_name(activation):
    try:
        return keras.activations.serialize(activation)
    except (ValueError, TypeError):
        return None


def dense_layers(torso, space):
    """`[(dense, activation_fn)]` of a Sequential of Flatten/Dense layers, else None.

    An observation of rank > 1 must meet a `Flatten` first (a `Dense` on it would act
    on its last axis only, which the NumPy rollout does not reproduce).
    """
    if not isinstance(torso, keras.Sequential) or not torso.layers:
        return None
    if len(space.shape) > 1 and type(torso.layers[0]) is not keras.layers.Flatten:
        return None
    layers = []
    for layer in torso.layers:
        if type(layer) is keras.layers.Flatten:
            continue
        if type(layer) is not keras.layers.Dense or layer.compute_dtype != "float32":
            return None
        name = _activation_name(layer.activation)
        if name not in ACTIVATIONS:
            return None
        layers.append((layer, ACTIVATIONS[name]))
    return layers


def _weights(dense):
    kernel = np.asarray(dense.kernel.numpy(), np.float32)
    bias = None if dense.bias is None else np.asarray(dense.bias.numpy(), np.float32)
    return kernel, bias


class HostPlan:
    """Which layers and statistics a NumPy rollout reads; `rollout(noise)` snapshots them."""

    def __init__(self, agent, policy_layers, value_layers):
        self.agent = agent
        self.policy_layers = policy_layers
        self.value_layers = value_layers
        self.space = agent.observation_format.leaves[0]
        self.distribution = agent.action_distribution

    @classmethod
    def for_agent(cls, agent):
        """The plan for `agent`'s networks, or None where the compiled call must be used."""
        fmt, dist = agent.observation_format, agent.action_distribution
        if agent.recurrent or agent.masked or fmt is None or fmt.nested:
            return None
        space = fmt.leaves[0]
        if isinstance(space, gym.spaces.Box):
            if len(space.shape) >= 3 and space.dtype == np.uint8:
                return None  # an image: the CNN stays in the graph
        elif not isinstance(space, gym.spaces.Discrete | gym.spaces.MultiBinary):
            return None
        if type(dist) not in (DiagGaussian, StateDependentGaussian, Categorical):
            return None
        policy_layers = dense_layers(agent.policy_torso, space)
        value_layers = dense_layers(agent.value_torso, space)
        heads = (getattr(agent.policy_head, "dense", None), agent.value_head)
        if policy_layers is None or value_layers is None:
            return None
        if not all(type(h) is keras.layers.Dense for h in heads):
            return None
        if agent.policy_head.compute_dtype != "float32":
            return None
        return cls(agent, policy_layers, value_layers)

    def rollout(self, noise):
        """A `HostRollout` with the current weights, stepping through `noise` row by row."""
        return HostRollout(self, noise)


class HostRollout:
    """`act(obs)` and `value(obs)` of one rollout, as `CompiledPolicy` has them."""

    def __init__(self, plan, noise):
        agent, dist = plan.agent, plan.distribution
        self.space = plan.space
        self.noise = np.asarray(noise, np.float32)
        self.t = 0
        self.policy = [(*_weights(layer), fn) for layer, fn in plan.policy_layers]
        self.value_net = [(*_weights(layer), fn) for layer, fn in plan.value_layers]
        self.value_net.append((*_weights(agent.value_head), None))
        self.head = _weights(agent.policy_head.dense)
        self.norm = None
        if agent.obs_normalizer is not None:
            layer = agent.obs_normalizer
            std = np.sqrt(layer.var.numpy() + layer.epsilon).astype(np.float32)
            mean = layer.mean.numpy().astype(np.float32) if layer.center else None
            self.norm = (mean, std, layer.clip)
        self.gaussian = isinstance(dist, DiagGaussian)
        self.gsde = isinstance(dist, StateDependentGaussian)
        self.env_dtype = dist.env_dtype
        self.action_shape = tuple(dist.space.shape)
        if self.gaussian:
            log_std = np.asarray(agent.policy_head.log_std.numpy(), np.float32)
            self.std = np.exp(log_std)  # (d,), or gSDE's (features, d) sigma matrix
            if not self.gsde:
                self.log_norm = np.float32(log_std.sum() + len(log_std) * _HALF_LOG_2PI)
            self.epsilon = np.float32(getattr(agent.policy_head, "epsilon", 0.0))
            self.half_log_2pi_d = np.float32(dist.dim * _HALF_LOG_2PI)
            low = dist.space.low.reshape(-1).astype(np.float32)
            high = dist.space.high.reshape(-1).astype(np.float32)
            bounded = np.all(np.isfinite(low)) and np.all(np.isfinite(high))
            self.bounds = (low, high) if bounded else None
        else:
            offset = discrete_offset(dist.space)
            self.offset = None if offset is None else offset.astype(np.int64)

    def _features(self, obs):
        space, x = self.space, np.asarray(obs)
        if isinstance(space, gym.spaces.Discrete):
            index = x.astype(np.int64).reshape(-1) - int(space.start)
            return np.eye(int(space.n), dtype=np.float32)[index]
        x = x.astype(np.float32, copy=False).reshape(len(x), -1)
        if self.norm is not None:
            mean, std, clip = self.norm
            x = (x - mean if mean is not None else x) / std
            if clip is not None:
                np.clip(x, -clip, clip, out=x)
        return x

    @staticmethod
    def _mlp(layers, x):
        for kernel, bias, fn in layers:
            x = x @ kernel
            if bias is not None:
                x += bias
            if fn is not None:
                fn(x)
        return x

    def act(self, obs, mask=None):
        """`(actions, env_actions, log_probs, values)` of one step, as NumPy arrays."""
        x = self._features(obs)
        features = self._mlp(self.policy, x)
        out = features @ self.head[0] + self.head[1]
        noise = self.noise[self.t]
        self.t += 1
        if self.gsde:  # mean + z @ (eps * sigma); std^2 = z^2 @ sigma^2 + epsilon
            action = out + np.einsum("bk,bkd->bd", features, noise * self.std)
            std = np.sqrt(np.square(features) @ np.square(self.std) + self.epsilon)
            z = (action - out) / std
            logp = -0.5 * np.einsum("ij,ij->i", z, z) - np.log(std).sum(-1) - self.half_log_2pi_d
        elif self.gaussian:
            action = out + self.std * noise
            z = (action - out) / self.std
            logp = -0.5 * np.einsum("ij,ij->i", z, z) - self.log_norm
        if self.gaussian:
            env_action = action
            if self.bounds is not None:
                env_action = np.clip(action, *self.bounds)
            env_action = env_action.reshape(len(action), *self.action_shape)
        else:
            action = np.argmax(out + noise, axis=-1).astype(np.int64)
            top = out.max(axis=-1, keepdims=True)
            lse = top[:, 0] + np.log(np.exp(out - top).sum(axis=-1))
            logp = out[np.arange(len(out)), action] - lse
            env_action = action if self.offset is None else action + self.offset
        env_action = env_action.astype(self.env_dtype, copy=False)
        return action, env_action, logp.astype(np.float32, copy=False), self._value(x)

    def _value(self, x):
        return self._mlp(self.value_net, x)[:, 0]

    def value(self, obs):
        """Critic values `(B,)` of an observation batch (model units)."""
        return self._value(self._features(obs))
