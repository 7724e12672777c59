"""The `Agent` base: one Keras-style loop (compile / fit / evaluate / predict / save / export).

`PPO` and `TRPO` only add their update. The agent is a `keras.Model`, so `agent.save`
writes a real `.keras` file (networks, normalization statistics, KL-penalty beta,
optimizer slots and counters) and `kt.load_agent` restores it in Keras safe mode.
"""

import math
import os
import tempfile
import time
from collections import deque

import gymnasium as gym
import keras
import numpy as np
import tensorflow as tf

from keras_trust import distributions as dists
from keras_trust._graph import flat_caller, straight_line
from keras_trust.layers.normalization import RunningNormalization
from keras_trust.optimizers.base import all_finite
from keras_trust.rollout.collector import InProcessSampler
from keras_trust.rollout.envs import action_offset, single_env
from keras_trust.rollout.gae import compute_gae
from keras_trust.spaces import check_observation_space, space_from_config, space_to_config

# Consecutive updates with a non-finite loss, gradient or KL after which `fit` gives up.
MAX_NONFINITE_UPDATES = 3


def mlp(hidden_sizes=(64, 64), activation="tanh", name=None) -> keras.Model:
    """The default torso: `Flatten` then `Dense` layers with orthogonal init (gain sqrt 2).

    Example:
    >>> mlp((32,))(np.zeros((2, 4))).shape
    TensorShape([2, 32])
    """
    layers = [keras.layers.Flatten()]
    for size in hidden_sizes:
        layers.append(
            keras.layers.Dense(
                int(size),
                activation=activation,
                kernel_initializer=keras.initializers.Orthogonal(gain=math.sqrt(2)),
            )
        )
    return keras.Sequential(layers, name=name)


@straight_line
def _unique(variables):
    seen, out = set(), []
    for v in variables:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _check(condition, message):
    if not condition:
        raise ValueError(message)


@straight_line
def weighted_mean(x, weights):
    """Mean of `x` over rows where `weights` is 1 (reset steps have weight 0)."""
    weights = tf.cast(weights, x.dtype)
    return tf.reduce_sum(x * weights) / tf.maximum(tf.reduce_sum(weights), 1.0)


@straight_line
def shuffled_indices(n, seed, salt, rows=None):
    """A permutation of `range(n)` determined by `seed` (int64 pair) and `salt`.

    With `rows`, a `(rows, n)` tensor of such permutations made by one sort (each
    traced op costs graph-building time; one per epoch added ~0.1 s per agent).
    """
    salt = tf.stack([tf.cast(salt, tf.int64), tf.constant(0, tf.int64)])
    shape = [n] if rows is None else [rows, n]
    return tf.argsort(tf.random.stateless_uniform(shape, seed=seed + salt), axis=-1)


@straight_line
def snapshot(variables):
    """Copies of the variables' current values (for an exact rollback)."""
    return [tf.identity(v) for v in variables]


@straight_line
def rollback(variables, saved, condition):
    """Restores `saved` values where `condition` holds; otherwise leaves the variables."""
    for v, s in zip(variables, saved):
        v.assign(tf.where(condition, s, v))


@straight_line
def normalize_advantages(adv, weights):
    """Zero-mean, unit-std advantages over the weighted rows."""
    mean = weighted_mean(adv, weights)
    std = tf.sqrt(weighted_mean(tf.square(adv - mean), weights))
    return (adv - mean) / (std + 1e-8)


class _NoiseFeed:
    """The sampling noise of the rollout in progress, held in the graph.

    `load` uploads a rollout's noise and rewinds; `next()` (inside the compiled act
    step) returns the current step's row and advances. A plain object, so that Keras
    and SavedModel tracking leave these buffers out of the agent's weights.
    """

    def __init__(self, shape):
        shape = tuple(shape)
        self.noise = tf.Variable(
            tf.zeros((1, 1, *shape)),
            shape=tf.TensorShape([None, None, *shape]),
            trainable=False,
            name="rollout_noise",
        )
        self.step = tf.Variable(0, trainable=False, name="rollout_step")

    def load(self, noise):
        self.noise.assign(noise)
        self.step.assign(0)

    @straight_line
    def next(self):
        row = tf.gather(self.noise, self.step)
        self.step.assign_add(1)
        return row


class Agent(keras.Model):
    """Base of the trust-region agents: environment loop, networks, saving and export.

    Subclasses provide `_default_optimizer()`, `_default_value_optimizer()`,
    `_check_optimizers()` and `_train(batch)` (one compiled update). Everything else,
    `fit`, `evaluate`, `predict`, `predict_value`, `save`, `export`, lives here.

    Args:
        policy: Keras model mapping an observation batch to a feature batch; the agent
            adds the distribution head. `None` gives an MLP (`hidden_sizes`, tanh).
        value: the same for the critic (a scalar head is added).
        n_envs: copies of the environment stepped together. Defaults to `1`.
        n_steps: steps per env per rollout (one rollout + update = one epoch).
        batch_size: minibatch size of the updates.
        gamma: discount factor in [0, 1]. Defaults to `0.99`.
        gae_lambda: GAE lambda in [0, 1]. Defaults to `0.95`.
        normalize_observations: keep running observation statistics in the model.
        normalize_rewards: scale rewards by the running std of the discounted return.
        normalize_advantage: standardize advantages. Defaults to `True`.
        hidden_sizes: layer sizes of the default MLPs. Defaults to `(64, 64)`.
        log_std_init: initial log-std of Gaussian policies. Defaults to `0.0`.
    """

    def __init__(
        self,
        policy=None,
        value=None,
        n_envs=1,
        n_steps=2048,
        batch_size=64,
        gamma=0.99,
        gae_lambda=0.95,
        normalize_observations=False,
        normalize_rewards=False,
        normalize_advantage=True,
        hidden_sizes=(64, 64),
        log_std_init=0.0,
        **kwargs,
    ):
        kwargs.setdefault("name", type(self).__name__.lower())
        super().__init__(**kwargs)
        _check(
            isinstance(n_envs, int | np.integer) and n_envs >= 1,
            f"n_envs must be a positive integer. Received: n_envs={n_envs!r}",
        )
        _check(
            isinstance(n_steps, int | np.integer) and n_steps >= 1,
            f"n_steps must be a positive integer. Received: n_steps={n_steps!r}",
        )
        _check(
            isinstance(batch_size, int | np.integer) and batch_size >= 1,
            f"batch_size must be a positive integer. Received: batch_size={batch_size!r}",
        )
        _check(
            batch_size <= n_envs * n_steps,
            f"batch_size={batch_size} is larger than a rollout (n_envs * n_steps = "
            f"{n_envs} * {n_steps} = {n_envs * n_steps}).",
        )
        _check(0.0 <= gamma <= 1.0, f"gamma must be in [0, 1]. Received: gamma={gamma}")
        _check(
            0.0 <= gae_lambda <= 1.0,
            f"gae_lambda must be in [0, 1]. Received: gae_lambda={gae_lambda}",
        )
        for name, model in (("policy", policy), ("value", value)):
            _check(
                model is None or isinstance(model, keras.layers.Layer),
                f"{name} must be a Keras model (or None). Received: {type(model).__name__}",
            )
        _check(
            len(hidden_sizes) >= 1 and all(int(h) >= 1 for h in hidden_sizes),
            f"hidden_sizes must be positive integers. Received: {hidden_sizes}",
        )
        self.n_envs = int(n_envs)
        self.n_steps = int(n_steps)
        self.batch_size = int(batch_size)
        self.gamma = float(gamma)
        self.gae_lambda = float(gae_lambda)
        self.normalize_observations = bool(normalize_observations)
        self.normalize_rewards = bool(normalize_rewards)
        self.normalize_advantage = bool(normalize_advantage)
        self.hidden_sizes = tuple(int(h) for h in hidden_sizes)
        self.log_std_init = float(log_std_init)
        self._user_policy = policy
        self._user_value = value
        self.policy_torso = None
        self.value_torso = None
        self.policy_head = None
        self.value_head = None
        self.obs_normalizer = None
        self.reward_normalizer = None
        self.optimizer = None
        self.value_optimizer = None
        self.observation_space = None
        self.action_space = None
        zeros = keras.initializers.Zeros()
        self._timesteps = self.add_weight(
            shape=(), dtype="int64", initializer=zeros, trainable=False, name="num_timesteps"
        )
        self._epochs = self.add_weight(
            shape=(), dtype="int64", initializer=zeros, trainable=False, name="epochs"
        )
        self._seed = self.add_weight(
            shape=(), dtype="int64", initializer=zeros, trainable=False, name="seed"
        )
        self._fns = {}
        self._noise_feed = None
        self._return_tracker = None
        self.stop_training = False

    # ----------------------------------------------------------------- properties
    @property
    def num_timesteps(self) -> int:
        """Environment steps trained on so far (survives save/load)."""
        return int(self._timesteps.numpy())

    @property
    def distribution(self) -> str:
        return self.policy_head.distribution

    @property
    def policy_variables(self):
        return _unique(self.policy_torso.trainable_variables + self.policy_head.trainable_variables)

    @property
    def value_variables(self):
        return _unique(self.value_torso.trainable_variables + self.value_head.trainable_variables)

    # ------------------------------------------------------------------- building
    def _build_networks(self, observation_space, action_space):
        """Creates heads and normalizers for the spaces and checks user models fit them."""
        check_observation_space(observation_space)
        dists.distribution_kind(action_space)  # ValueError naming unsupported spaces
        if self.normalize_observations and not isinstance(observation_space, gym.spaces.Box):
            raise ValueError(
                "normalize_observations=True needs a Box observation space. "
                f"Received: {observation_space}"
            )
        self.observation_space = observation_space
        self.action_space = action_space
        self.policy_torso = self._user_policy or mlp(self.hidden_sizes, name="policy_mlp")
        self.value_torso = self._user_value or mlp(self.hidden_sizes, name="value_mlp")
        head_kwargs = {}
        if isinstance(action_space, gym.spaces.Box):
            head_kwargs["log_std_init"] = self.log_std_init
        self.policy_head = dists.head_for_space(action_space, **head_kwargs)
        self.value_head = keras.layers.Dense(
            1, kernel_initializer=keras.initializers.Orthogonal(gain=1.0), name="value_head"
        )
        if self.normalize_observations:
            self.obs_normalizer = RunningNormalization(name="obs_normalizer")
            self.obs_normalizer.build((None, *observation_space.shape))
        if self.normalize_rewards:
            self.reward_normalizer = RunningNormalization(center=False, name="reward_normalizer")
            self.reward_normalizer.build((None,))
        dummy = np.zeros((2, *self._obs_shape), dtype=np.float32)
        x = self._preprocess(dummy)
        for name, torso in (("policy", self.policy_torso), ("value", self.value_torso)):
            try:
                features = torso(x)
            except Exception as exc:
                raise ValueError(
                    f"The {name} model does not accept observations of this env: it was "
                    f"called on a batch of shape {tuple(x.shape)} (observation space "
                    f"{observation_space}) and raised {type(exc).__name__}: {exc}"
                ) from exc
            if len(features.shape) != 2:
                raise ValueError(
                    f"The {name} model must map an observation batch to a feature batch of "
                    f"shape (batch, features); for input {tuple(x.shape)} it returned "
                    f"shape {tuple(features.shape)}."
                )
        self.policy_head(self.policy_torso(x))
        self.value_head(self.value_torso(x))
        self._build_extra()
        self.built = True
        self._fns = {}

    def _build_extra(self):
        """Hook for subclasses (e.g. the KL penalty)."""

    @property
    def _obs_shape(self):
        space = self.observation_space
        if isinstance(space, gym.spaces.Discrete):
            return ()
        if isinstance(space, gym.spaces.MultiBinary):
            return (int(space.n),)
        return tuple(space.shape)

    @straight_line
    def _preprocess(self, obs):
        """Raw observation batch -> float network input (one-hot, normalization)."""
        x = tf.convert_to_tensor(obs)
        if isinstance(self.observation_space, gym.spaces.Discrete):
            index = tf.cast(x, tf.int32) - int(self.observation_space.start)
            return tf.one_hot(index, int(self.observation_space.n))
        x = tf.cast(x, tf.float32)
        if self.obs_normalizer is not None:
            x = self.obs_normalizer(x)
        return x

    @straight_line
    def policy_params(self, obs):
        """Distribution parameters (list of tensors) for an observation batch."""
        return self.policy_head(self.policy_torso(self._preprocess(obs)))

    @straight_line
    def value_estimate(self, obs):
        """Critic output for an observation batch, in model units (scaled rewards)."""
        return self.value_head(self.value_torso(self._preprocess(obs)))[:, 0]

    def call(self, obs):
        """The deterministic action batch (what `export` serves)."""
        return self._deterministic_action(obs)

    @straight_line
    def _deterministic_action(self, obs):
        """The env action of the mode: Box clipped to its bounds, discrete `start` added."""
        action = dists.deterministic_action(self.distribution, self.policy_params(obs))
        if isinstance(self.action_space, gym.spaces.Box):
            low, high = self.action_space.low, self.action_space.high
            if np.all(np.isfinite(low)) and np.all(np.isfinite(high)):
                action = tf.clip_by_value(action, low.astype(np.float32), high.astype(np.float32))
        offset = action_offset(self.action_space)
        if offset is not None:
            action = action + tf.constant(offset, dtype=action.dtype)
        return action

    # ------------------------------------------------------------------ compiling
    def compile(self, optimizer=None, value_optimizer=None, jit_compile="auto"):
        """Sets the optimizers. Optional: `fit` uses the defaults if never called.

        Args:
            optimizer: the policy optimizer (for PPO, of policy and critic together).
            value_optimizer: the critic optimizer, for agents with a separate critic step.
            jit_compile: XLA-compile the per-step act and value functions and PPO's
                minibatch step (the update's loop stays a plain graph). `"auto"`
                (default) does so unless a layer of the networks sets
                `supports_jit = False`.
        """
        _check(
            jit_compile in (True, False, "auto"),
            f"jit_compile must be True, False or 'auto'. Received: jit_compile={jit_compile!r}",
        )
        if jit_compile == "auto":
            jit_compile = all(layer.supports_jit for layer in self._flatten_layers())
        self.jit_compile = jit_compile
        self.optimizer = (
            keras.optimizers.get(optimizer) if optimizer is not None else self._default_optimizer()
        )
        self.value_optimizer = (
            keras.optimizers.get(value_optimizer)
            if value_optimizer is not None
            else self._default_value_optimizer()
        )
        self._check_optimizers()
        self.compiled = True
        self._fns = {}
        if self.built:
            self._build_optimizers()

    def _build_optimizers(self):
        self.optimizer.build(self._optimizer_variables())
        if self.value_optimizer is not None:
            self.value_optimizer.build(self.value_variables)

    def _optimizer_variables(self):
        return self.policy_variables

    def _default_optimizer(self):
        raise NotImplementedError

    def _default_value_optimizer(self):
        return None

    def _check_optimizers(self):
        pass

    # ------------------------------------------------------------ acting (compiled)
    def _noise_spec(self):
        kind = self.distribution
        if kind == "categorical":
            return (int(self.action_space.n),)
        if kind == "multi_categorical":
            return (len(self.action_space.nvec), int(max(self.action_space.nvec)))
        return (int(self.action_space.shape[0]),)

    def sampling_noise(self, n_steps, env_ids, iteration):
        """Noise that makes the sampled actions of one rollout: `(n_steps, n_envs, ...)`.

        Each env has its own stream seeded by `(seed, env id, iteration)`, so a rollout
        is the same whichever process or worker steps which env, and resumes exactly.
        """
        seed = int(self._seed.numpy())
        shape = self._noise_spec()
        gaussian = self.distribution == "diag_gaussian"
        noise = np.empty((n_steps, len(env_ids), *shape), dtype=np.float32)
        for j, env_id in enumerate(env_ids):
            rng = np.random.default_rng([seed, int(env_id), int(iteration)])
            size = (n_steps, *shape)
            noise[:, j] = rng.standard_normal(size) if gaussian else rng.gumbel(size=size)
        return noise

    def start_rollout(self, noise):
        """Uploads a rollout's sampling noise `(n_steps, n_envs, ...)` for `act` to read.

        The noise goes to the graph once per rollout, so each step's compiled call
        takes only the observations (every argument of a call costs Python time).
        """
        if self._noise_feed is None:
            self._noise_feed = _NoiseFeed(self._noise_spec())
        self._noise_feed.load(noise)

    @straight_line
    def _sample(self, params, noise):
        """Sample from noise: Gumbel-max for categoricals, mean + std * eps for Gaussians."""
        if self.distribution == "diag_gaussian":
            mean, log_std = params
            return mean + tf.exp(log_std) * noise
        return tf.argmax(params[0] + noise, axis=-1, output_type=tf.int64)

    def _function(self, name):
        """The compiled function `name` ("act", "value", "predict", "sample", "train").

        The inference ones are concrete functions called through `flat_caller` (tensors
        in, a list of tensors out): a polymorphic `tf.function` spends ~130 us of Python
        per call on dispatch, a concrete one ~60 us, its graph called directly ~25 us.
        The rollout's ones (`act`, `value`) are also XLA-compiled (`compile(jit_compile=
        ...)`), which fuses the small networks into a few kernels; together that makes
        the per-env-step call about 7x cheaper (`benchmarks/bench_act.py`: 309 -> 43 us
        per call); `value` shares `act`'s XLA numerics, so the bootstrap value matches
        the per-step ones. The update ("train") is a plain `tf.function` (XLA's CPU
        while-loops with gathers made it slower); PPO XLA-compiles only its minibatch
        step inside it (`_nested_function`).
        """
        fn = self._fns.get(name)
        if fn is None:
            obs_spec = tf.TensorSpec((None, *self._obs_shape), tf.float32)
            noise_spec = tf.TensorSpec((None, *self._noise_spec()), tf.float32)
            # (body, signature, XLA?): `predict` and `sample` stay un-fused so that they
            # give bit for bit what the exported SavedModel gives.
            inference = {
                "act": (self._act, [obs_spec], self.jit_compile),
                "value": (self.value_estimate, [obs_spec], self.jit_compile),
                "predict": (self._deterministic_action, [obs_spec], False),
                "sample": (self._sample_action, [obs_spec, noise_spec], False),
            }
            if name in inference:
                body, signature, jit = inference[name]
                fn = flat_caller(
                    tf.function(
                        body, input_signature=signature, jit_compile=jit
                    ).get_concrete_function()
                )
            else:
                fn = tf.function(self._train)
            self._fns[name] = fn
        return fn

    def _nested_function(self, name, body):
        """A `tf.function` of `body` for use inside the update, XLA-compiled if `jit_compile`."""
        fn = self._fns.get(name)
        if fn is None:
            fn = self._fns[name] = tf.function(body, jit_compile=self.jit_compile)
        return fn

    @straight_line
    def _act(self, obs):
        """Sampled actions, their log-probabilities and the value estimates of a batch.

        The noise is the next step's row of what `start_rollout` uploaded.
        """
        params = self.policy_params(obs)
        action = self._sample(params, self._noise_feed.next())
        logp = dists.make_distribution(self.distribution, params).log_prob(action)
        return action, logp, self.value_estimate(obs)

    @straight_line
    def _sample_action(self, obs, noise):
        return self._sample(self.policy_params(obs), noise)

    def act(self, obs):
        """One compiled call: `(actions, log_probs, values)` as numpy for an observation batch.

        Samples with the next step of the noise given to `start_rollout`.
        """
        action, logp, value = self._function("act")(tf.constant(obs, tf.float32))
        return action.numpy(), logp.numpy(), value.numpy()

    def value_of(self, obs):
        return self._function("value")(tf.constant(obs, dtype=tf.float32))[0].numpy()

    def env_action(self, action):
        """What the env receives: Box actions clipped to bounds, discrete ones offset."""
        return self.env_action_fn()(action)

    def env_action_fn(self):
        """`env_action` specialized to the action space once (the rollout calls it per step)."""
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            low, high = space.low, space.high
            return lambda action: np.clip(action, low, high)
        offset = action_offset(space)
        if offset is None:
            return lambda action: action
        return lambda action: action + offset

    # ------------------------------------------------------------------- training
    def _ensure_ready(self, observation_space, action_space, seed):
        if not self.built:
            if seed is not None:
                keras.utils.set_random_seed(int(seed))
            self._build_networks(observation_space, action_space)
        else:
            for name, mine, theirs in (
                ("observation", self.observation_space, observation_space),
                ("action", self.action_space, action_space),
            ):
                if mine != theirs:
                    raise ValueError(
                        f"This agent was built for the {name} space {mine}, but the env has "
                        f"{theirs}."
                    )
        if self.optimizer is None:
            self.compile()
        self._build_optimizers()

    def fit(self, env, total_timesteps, callbacks=None, verbose=1, seed=None, sampler=None):
        """Trains the agent on `env` for `total_timesteps` more environment steps.

        One epoch is one rollout of `n_envs * n_steps` steps and one update. Stock Keras
        callbacks receive the per-epoch logs (`episode_return`, `policy_loss`, `kl`...).

        Args:
            env: a registered gymnasium id, a `gymnasium.Env`, a zero-argument callable
                returning one, or a `gymnasium.vector.VectorEnv`.
            total_timesteps: environment steps to train for (rounded up to whole epochs).
            callbacks: list of `keras.callbacks.Callback`.
            verbose: 0 silent, 1 progress bar, 2 one line per epoch. Defaults to `1`.
            seed: makes the run reproducible: network init (if not yet built), env
                resets, sampling and minibatch order. Defaults to `None`.
            sampler: where rollouts come from; `None` collects in-process.

        Returns:
            A `keras.callbacks.History`.
        """
        _check(
            isinstance(total_timesteps, int | np.integer) and total_timesteps >= 1,
            f"total_timesteps must be a positive integer. Received: {total_timesteps!r}",
        )
        _check(verbose in (0, 1, 2), f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")
        sampler = sampler or InProcessSampler()
        if seed is not None:
            self._seed.assign(int(seed))
        elif not self.built:
            self._seed.assign(int(np.random.SeedSequence().entropy % (2**62)))
        try:
            spaces = sampler.start(env, self.n_envs, seed)
            self._ensure_ready(*spaces, seed)
            return self._fit_loop(sampler, int(total_timesteps), callbacks, verbose)
        finally:
            sampler.close()

    def _fit_loop(self, sampler, total_timesteps, callbacks, verbose):
        steps_per_epoch = self.n_envs * self.n_steps
        n_epochs = -(-total_timesteps // steps_per_epoch)
        first_epoch = int(self._epochs.numpy())
        callbacks = keras.callbacks.CallbackList(
            callbacks, add_history=True, model=self, verbose=verbose, epochs=n_epochs
        )
        progbar = (
            keras.utils.Progbar(n_epochs * steps_per_epoch, verbose=verbose == 1, unit_name="step")
            if verbose == 1
            else None
        )
        self.stop_training = False
        self._return_tracker = np.zeros(self.n_envs)
        episodes = deque(maxlen=100)
        nonfinite_in_a_row = 0
        callbacks.on_train_begin()
        for i in range(n_epochs):
            if self.stop_training:
                break
            epoch = first_epoch + i
            callbacks.on_epoch_begin(epoch)
            start = time.perf_counter()
            rollout = sampler.collect(self, self.n_steps, epoch)
            rollout_time = time.perf_counter() - start
            episodes.extend(zip(rollout.episode_returns, rollout.episode_lengths))
            batch, explained_variance = self._prepare_batch(rollout)
            callbacks.on_train_batch_begin(0)
            start = time.perf_counter()
            logs = {k: float(v) for k, v in self._function("train")(**batch).items()}
            update_time = time.perf_counter() - start
            self._after_update(rollout)
            self._timesteps.assign_add(rollout.num_steps)
            self._epochs.assign_add(1)
            nonfinite_in_a_row = nonfinite_in_a_row + 1 if logs["nonfinite"] else 0
            returns = [r for r, _ in episodes]
            logs.update(
                episode_return=float(np.mean(returns)) if returns else float("nan"),
                episode_length=float(np.mean([n for _, n in episodes]))
                if returns
                else float("nan"),
                episodes=float(len(rollout.episode_returns)),
                explained_variance=explained_variance,
                fps=rollout.num_steps / (rollout_time + update_time),
                rollout_time=rollout_time,
                update_time=update_time,
                timesteps=float(self.num_timesteps),
            )
            logs.update(sampler.logs())
            callbacks.on_train_batch_end(0, logs)
            callbacks.on_epoch_end(epoch, logs)
            if progbar is not None:
                shown = ("episode_return", "policy_loss", "value_loss", "kl", "fps")
                progbar.update((i + 1) * steps_per_epoch, [(k, logs[k]) for k in shown])
            elif verbose == 2:
                print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
            if nonfinite_in_a_row >= MAX_NONFINITE_UPDATES:
                raise FloatingPointError(
                    f"{nonfinite_in_a_row} updates in a row met a non-finite loss, gradient or "
                    "KL and were rolled back; the weights are those from before them. Lower the "
                    "learning rate or check the environment's scale."
                )
        callbacks.on_train_end()
        return self.history

    def _scale_rewards(self, rollout):
        """Divides rewards by the running std of the discounted return (if enabled)."""
        rewards = rollout.rewards
        if self.reward_normalizer is None:
            return rewards
        # ret_t = gamma * ret_{t-1} + r_t on valid steps; a reset step (the one after each
        # episode end, in this rollout or the last) zeroes it. Only the recurrence loops.
        decay = np.where(rollout.valid, self.gamma, 0.0)
        valid_rewards = np.where(rollout.valid, rewards.astype(np.float64), 0.0)
        ret = self._return_tracker
        discounted = np.empty_like(valid_rewards)
        for t in range(rewards.shape[0]):
            ret = decay[t] * ret + valid_rewards[t]
            discounted[t] = ret
        self._return_tracker = np.where(rollout.terminated[-1] | rollout.truncated[-1], 0.0, ret)
        self.reward_normalizer.update(discounted[rollout.valid])
        std = float(self.reward_normalizer.std.numpy())
        return np.clip(rewards / std, -10.0, 10.0).astype(np.float32)

    def _prepare_batch(self, rollout):
        """Rollout -> flat tensors for the compiled update, plus explained variance."""
        rewards = self._scale_rewards(rollout)
        advantages, returns = compute_gae(
            rewards,
            rollout.values,
            rollout.terminated,
            rollout.truncated,
            rollout.valid,
            self.gamma,
            self.gae_lambda,
        )
        valid = rollout.valid
        values = rollout.values[:-1]
        var_returns = np.var(returns[valid]) if valid.any() else 0.0
        explained = (
            float(1.0 - np.var(returns[valid] - values[valid]) / var_returns)
            if var_returns > 0
            else float("nan")
        )
        n = rollout.rewards.size

        def flat(x, dtype=None):
            x = x.reshape(n, *x.shape[2:])
            return tf.convert_to_tensor(x if dtype is None else x.astype(dtype))

        batch = {
            "obs": flat(rollout.observations),
            "actions": flat(rollout.actions),
            "log_probs": flat(rollout.log_probs),
            "advantages": flat(advantages),
            "returns": flat(returns),
            "weights": flat(valid, np.float32),
            "seed": tf.constant(
                [int(self._seed.numpy()) % (2**31), int(self._epochs.numpy())], dtype=tf.int64
            ),
        }
        return batch, explained

    def _after_update(self, rollout):
        """Folds the rollout's raw observations into the running statistics."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(rollout.observations[rollout.valid])

    def _train(self, obs, actions, log_probs, advantages, returns, weights, seed):
        raise NotImplementedError

    @straight_line
    def _value_epochs(self, obs, returns, weights, seed, epochs, optimizer, variables):
        """Minibatch regression of the critic on `returns`, as one compiled loop.

        `epochs` passes of shuffled minibatches, written as one `tf.while_loop` over
        `epochs * n_batches` steps. A non-finite loss or gradient rolls the critic and its
        optimizer back to where they were before the loop; returns `(mean loss, whether
        that happened)`.
        """
        n = tf.shape(obs)[0]
        n_batches = n // self.batch_size
        saved = snapshot(variables + optimizer.variables)
        perms = shuffled_indices(n, seed, 1000, rows=epochs)

        def body(k, total, bad):
            start = (k % n_batches) * self.batch_size
            idx = tf.slice(perms[k // n_batches], [start], [self.batch_size])
            mb_obs, mb_ret, mb_w = (tf.gather(t, idx) for t in (obs, returns, weights))
            with tf.GradientTape() as tape:
                loss = weighted_mean(tf.square(mb_ret - self.value_estimate(mb_obs)), mb_w)
            grads = tape.gradient(loss, variables)
            ok = all_finite(loss, *grads)
            grads = [tf.where(ok, g, tf.zeros_like(g)) for g in grads]
            optimizer.apply(grads, variables)
            return k + 1, total + loss, bad | ~ok

        steps, total, bad = tf.while_loop(
            lambda k, total, bad: k < epochs * n_batches,
            body,
            (tf.constant(0), tf.constant(0.0), tf.constant(False)),
        )
        rollback(variables + optimizer.variables, saved, bad)
        return total / tf.maximum(tf.cast(steps, tf.float32), 1.0), bad

    # ----------------------------------------------------------------- inference
    def _check_built(self):
        if not self.built:
            raise ValueError("The agent has not been built yet: call fit(env, ...) first.")

    def _batch(self, obs):
        obs = np.asarray(obs, dtype=np.float32)
        single = obs.shape == self._obs_shape
        if single:
            obs = obs[None]
        if obs.shape[1:] != self._obs_shape:
            raise ValueError(
                f"Expected observations of shape {self._obs_shape} (or a batch of them). "
                f"Received shape {obs.shape}."
            )
        return obs, single

    def predict(self, obs, deterministic=True, seed=None):
        """Actions for an observation batch (a single observation works too).

        Args:
            obs: observation or batch of observations.
            deterministic: the distribution's mode if True, else a sample.
            seed: seed of the sampling noise when `deterministic=False`.
        """
        self._check_built()
        batch, single = self._batch(obs)
        if deterministic:
            actions = self._function("predict")(tf.constant(batch))[0].numpy()
        else:
            rng = np.random.default_rng(seed)
            shape = (len(batch), *self._noise_spec())
            if self.distribution == "diag_gaussian":
                noise = rng.standard_normal(shape)
            else:
                noise = rng.gumbel(size=shape)
            sample = self._function("sample")(tf.constant(batch), tf.constant(noise, tf.float32))
            sample = sample[0].numpy()
            actions = self.env_action(sample)
        return actions[0] if single else actions

    def predict_value(self, obs):
        """The critic's estimate, in the env's reward units (undoing reward scaling)."""
        self._check_built()
        batch, single = self._batch(obs)
        values = self.value_of(batch)
        if self.reward_normalizer is not None:
            values = values * float(self.reward_normalizer.std.numpy())
        return values[0] if single else values

    def evaluate(self, env, episodes=10, deterministic=True, seed=None):
        """Runs whole episodes and reports their returns.

        Args:
            env: a gymnasium id, an Env or a zero-argument callable returning one.
            episodes: number of episodes. Defaults to `10`.
            deterministic: act by the distribution's mode. Defaults to `True`.
            seed: seed of the first reset (episode k uses `seed + k`) and of sampling.

        Returns:
            A dict with `mean_return`, `std_return`, `mean_length`, `returns`, `lengths`.
        """
        self._check_built()
        _check(
            isinstance(episodes, int | np.integer) and episodes >= 1,
            f"episodes must be a positive integer. Received: {episodes!r}",
        )
        env, owned = single_env(env)
        returns, lengths = [], []
        try:
            for k in range(episodes):
                obs, _ = env.reset(seed=None if seed is None else int(seed) + k)
                done, total, length = False, 0.0, 0
                while not done:
                    sample_seed = None if seed is None else [int(seed), k, length]
                    action = self.predict(obs, deterministic=deterministic, seed=sample_seed)
                    obs, reward, terminated, truncated, _ = env.step(action)
                    total += float(reward)
                    length += 1
                    done = terminated or truncated
                returns.append(total)
                lengths.append(length)
        finally:
            if owned:
                env.close()
        return {
            "mean_return": float(np.mean(returns)),
            "std_return": float(np.std(returns)),
            "mean_length": float(np.mean(lengths)),
            "returns": returns,
            "lengths": lengths,
        }

    # ---------------------------------------------------------- saving / export
    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the agent to a `.keras` file, atomically (temporary file + rename).

        A crash mid-write leaves any previous file at `filepath` intact and loadable.
        """
        self._check_built()
        filepath = os.fspath(filepath)
        if not filepath.endswith(".keras"):
            raise ValueError(f"The file name must end in '.keras'. Received: {filepath!r}")
        if os.path.exists(filepath) and not overwrite:
            raise FileExistsError(filepath)
        directory = os.path.dirname(os.path.abspath(filepath))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".keras", dir=directory)
        os.close(fd)
        try:
            super().save(tmp, overwrite=True, **kwargs)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, filepath)
            _fsync_directory(directory)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def export(self, filepath, format="tf_saved_model", verbose=False, **kwargs):
        """Exports the deterministic policy; it runs without keras_trust.

        Args:
            filepath: a directory for SavedModel, a file for TFLite and ONNX.
            format: `"tf_saved_model"` (default; `serving_default` maps a float32
                observation batch to the action batch, plus a `value` endpoint),
                `"tflite"` or `"onnx"` (the `export` extra).
        """
        self._check_built()
        from keras_trust.export import export

        export(self, filepath, format=format)

    def get_build_config(self):
        if not self.built or self.observation_space is None:
            return None
        return {
            "observation_space": space_to_config(self.observation_space),
            "action_space": space_to_config(self.action_space),
        }

    def build_from_config(self, config):
        self._build_networks(
            space_from_config(config["observation_space"]),
            space_from_config(config["action_space"]),
        )

    def get_compile_config(self):
        if self.optimizer is None:
            return None
        return {
            "optimizer": keras.optimizers.serialize(self.optimizer),
            "value_optimizer": (
                None
                if self.value_optimizer is None
                else keras.optimizers.serialize(self.value_optimizer)
            ),
            "jit_compile": bool(self.jit_compile),
        }

    def compile_from_config(self, config):
        self.compile(
            optimizer=keras.optimizers.deserialize(config["optimizer"]),
            value_optimizer=(
                None
                if config["value_optimizer"] is None
                else keras.optimizers.deserialize(config["value_optimizer"])
            ),
            jit_compile=config.get("jit_compile", "auto"),
        )

    def get_config(self):
        config = {
            "name": self.name,
            "policy": None
            if self._user_policy is None
            else keras.saving.serialize_keras_object(self._user_policy),
            "value": None
            if self._user_value is None
            else keras.saving.serialize_keras_object(self._user_value),
            "n_envs": self.n_envs,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "normalize_observations": self.normalize_observations,
            "normalize_rewards": self.normalize_rewards,
            "normalize_advantage": self.normalize_advantage,
            "hidden_sizes": list(self.hidden_sizes),
            "log_std_init": self.log_std_init,
        }
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("policy", "value"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _fsync_directory(directory):
    """Makes a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_agent(filepath) -> Agent:
    """Loads an agent saved by `agent.save`, in Keras safe mode (no arbitrary code).

    The agent continues where it stopped: `fit` resumes the step counter, optimizer
    state, normalization statistics and KL-penalty beta.
    """
    model = keras.saving.load_model(os.fspath(filepath), safe_mode=True)
    if not isinstance(model, Agent):
        raise ValueError(f"{filepath} holds a {type(model).__name__}, not a keras_trust agent.")
    return model
