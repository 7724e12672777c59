"""The `Agent` base: one Keras-style loop (compile / fit / evaluate / predict / save / export).

`PPO` and `TRPO` only add their update. The agent is a `keras.Model`, so `agent.save`
writes a real `.keras` file (networks, normalization statistics, KL-penalty beta,
optimizer slots and counters) and `kt.load_agent` restores it in Keras safe mode.
The pieces live beside it: the networks' assembly (`networks.py`), the compiled
per-step policy (`acting.py`), saving (`saving.py`); the rollout side in `rollout/`.
"""

import keras
import tensorflow as tf

from keras_trust import distributions
from keras_trust.agents import inference, networks, recurrence, saving, training
from keras_trust.agents.acting import CompiledPolicy
from keras_trust.agents.host_policy import HostPlan
from keras_trust.agents.recurrent_acting import RecurrentCompiledPolicy
from keras_trust.agents.validation import (
    check_agent_arguments,
    require,
    require_int,
    require_positive_int,
)
from keras_trust.observations import leaf_shape
from keras_trust.ops.state import unique
from keras_trust.rollout.collector import InProcessSampler


class Agent(inference.Serving, saving.Persistence, keras.Model):
    """Base of the trust-region agents: environment loop, networks, saving and export.

    Subclasses provide `_default_optimizer()`, `_default_value_optimizer()`,
    `_check_optimizers()` and `_train(**batch)` (one update, traced once as a graph
    without AutoGraph). Everything else, `fit`, `evaluate`, `predict`,
    `predict_value`, `save`, `export`, lives here.

    Args:
        policy: Keras model mapping an observation batch to a feature batch; the agent
            adds the distribution head. `None` gives an MLP (`hidden_sizes`, `activation`).
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
        activation: the default MLPs' activation, a Keras activation name (rl-zoo's
            MuJoCo PPO settings use `"relu"`). Defaults to `"tanh"`.
        log_std_init: initial log-std of Gaussian policies. Defaults to `0.0`.
        action_distribution: the name of a distribution for the action space other
            than its default, e.g. `"squashed_gaussian"` for bounded Box actions.
            Defaults to `None`. `"gsde"` is generalized state-dependent exploration
            (SB3's `use_sde=True`).
        sde_sample_freq: with `action_distribution="gsde"`, steps between new
            exploration matrices; `-1` draws one per env per rollout (SB3's
            `sde_sample_freq`). Defaults to `-1`.
        use_action_masks: read the env's action masks (`info["action_mask"]` or
            `action_masks()`) when it provides them. Defaults to `True`.
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
        activation="tanh",
        log_std_init=0.0,
        action_distribution=None,
        sde_sample_freq=-1,
        use_action_masks=True,
        **kwargs,
    ):
        kwargs.setdefault("name", type(self).__name__.lower())
        super().__init__(**kwargs)
        check_agent_arguments(
            policy, value, n_envs, n_steps, batch_size, gamma, gae_lambda, hidden_sizes, activation
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
        self.activation = activation
        self.log_std_init = float(log_std_init)
        # A kind's name (e.g. "squashed_gaussian"); checked against the space at build.
        require(
            action_distribution is None or action_distribution in distributions.KINDS,
            f"action_distribution must be one of {distributions.KINDS} or None. "
            f"Received: action_distribution={action_distribution!r}",
        )
        self.action_distribution_name = action_distribution
        require_int("sde_sample_freq", sde_sample_freq)
        self.sde_sample_freq = int(sde_sample_freq)
        self.use_action_masks = bool(use_action_masks)
        self.policy_model = policy
        self.value_model = value
        # Made for the env's spaces by `build_for`, and by `compile`.
        self.policy_torso = self.value_torso = self.policy_head = self.value_head = None
        self.obs_normalizer = self.leaf_normalizers = self.reward_normalizer = None
        self.observation_space = self.action_space = self.observation_format = None
        self.action_distribution = self.optimizer = self.value_optimizer = None
        self.masked = False
        # Counters saved with the agent, so `fit` resumes where it stopped.
        self._timesteps, self._epochs, self._seed = (
            self.add_weight(shape=(), dtype="int64", initializer="zeros", trainable=False, name=n)
            for n in ("num_timesteps", "epochs", "seed")
        )
        self._fns = {}
        self._acting = None
        self.stop_training = False
        self.env_state = None

    # ----------------------------------------------------------------- properties
    @property
    def num_timesteps(self) -> int:
        """Environment steps trained on so far (survives save/load)."""
        return int(self._timesteps.numpy())

    @property
    def epochs_trained(self) -> int:
        """Epochs (rollout + update) trained so far (survives save/load)."""
        return int(self._epochs.numpy())

    @property
    def seed(self) -> int:
        """The seed of this agent's noise streams and shuffles (set by `fit`)."""
        return int(self._seed.numpy())

    @property
    def env_state(self):
        """The envs' episodes in progress after the last epoch (`rollout/env_state.py`).

        Saved with the agent, so that `fit` on the same env and seed, in this process or
        after `load_agent` in another, continues them exactly; None before any `fit` and
        for envs that cannot be replayed (a user's `VectorEnv`, Ray workers).
        """
        return self.__dict__.get("_env_state")

    @env_state.setter
    def env_state(self, state):
        # Kept out of Keras's attribute tracking: a plain dict of NumPy arrays.
        object.__setattr__(self, "_env_state", state)

    @property
    def distribution(self) -> str:
        """The name of the action distribution's kind (e.g. `"categorical"`)."""
        return self.action_distribution.name

    @property
    def policy_variables(self):
        return unique(self.policy_torso.trainable_variables + self.policy_head.trainable_variables)

    @property
    def value_variables(self):
        return unique(self.value_torso.trainable_variables + self.value_head.trainable_variables)

    @property
    def recurrent(self) -> bool:
        """Whether the policy or the value model is a `kt.networks.RecurrentTorso`."""
        return recurrence.is_recurrent(self.policy_model) or recurrence.is_recurrent(
            self.value_model
        )

    def initial_state(self, batch_size=1) -> list:
        """The zero policy state of a recurrent agent (a list of `(batch, size)` arrays)."""
        require(self.recurrent, "initial_state() is for agents with a RecurrentTorso policy.")
        return self.acting.initial_state(batch_size)[0]

    @property
    def obs_shape(self) -> tuple:
        """Shape of one observation (of a flat observation space; Dict/Tuple: the first leaf's)."""
        return leaf_shape(self.observation_format.leaves[0])

    # ------------------------------------------------------------------- building
    def build_for(self, observation_space, action_space, masked=False):
        """Creates torsos, heads and normalizers for the spaces; checks user models fit them.

        Raises:
            ValueError: an unsupported space, masks for unmaskable actions, or a user
                model that does not accept the observations.
        """
        networks.build_agent(self, observation_space, action_space, masked)
        self._build_extra()
        self.built = True
        self._reset_compiled()

    def _build_extra(self):
        """Hook for subclasses (e.g. the KL penalty)."""

    @property
    def normalizers(self) -> list:
        """One observation normalizer (or None) per observation leaf."""
        return networks.leaf_normalizer_list(
            self.observation_format, self.obs_normalizer, self.leaf_normalizers
        )

    def _preprocess(self, obs):
        return self.observation_format.preprocess(obs, self.normalizers)

    def policy_params(self, obs, mask=None):
        """Distribution parameters (list of tensors) for an observation batch.

        With `mask` (bool `(B, mask_size)`), masked actions get probability exactly 0.
        """
        params = self.policy_head(self.policy_torso(self._preprocess(obs)))
        return params if mask is None else self.action_distribution.apply_mask(params, mask)

    def value_estimate(self, obs):
        """Critic output for an observation batch, in model units (scaled rewards)."""
        return self.value_head(self.value_torso(self._preprocess(obs)))[:, 0]

    def deterministic_action(self, obs, mask=None):
        """The env action of the distribution's mode, in graph code (what `export` serves)."""
        return self.acting.deterministic_action(obs, mask)

    def call(self, obs):
        """The deterministic action batch."""
        return self.deterministic_action(obs)

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
        require(
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
        self._reset_compiled()
        if self.built:
            self.build_optimizers()

    def _reset_compiled(self):
        self._fns = {}
        self._acting = None

    def build_optimizers(self):
        self.optimizer.build(self._optimizer_variables())
        if self.value_optimizer is not None:
            self.value_optimizer.build(self._value_optimizer_variables())

    def _optimizer_variables(self):
        return self.policy_variables

    def _value_optimizer_variables(self):
        return self.value_variables

    def _default_optimizer(self):
        raise NotImplementedError

    def _default_value_optimizer(self):
        return None

    def _check_optimizers(self):
        pass

    # ------------------------------------------------------------ compiled functions
    @property
    def acting(self) -> CompiledPolicy:
        """The compiled per-step policy (act / value / predict / sample) that samplers call."""
        if self._acting is None and self.recurrent:
            self._acting = RecurrentCompiledPolicy(self, self.jit_compile)
        if self._acting is None:
            self._acting = CompiledPolicy(
                self.policy_params,
                self.value_estimate,
                self.action_distribution,
                self.observation_format,
                self.jit_compile,
                self.masked,
                host_plan=lambda: HostPlan.for_agent(self),
            )
        return self._acting

    def _update_function(self):
        """The update (`_train`), traced once per batch signature without AutoGraph.

        A plain `tf.function` (XLA's CPU while-loops with gathers made it slower); PPO
        XLA-compiles only its minibatch step inside it (`_nested_function`).
        """
        fn = self._fns.get("train")
        if fn is None:
            fn = self._fns["train"] = tf.function(self._train, autograph=False)
        return fn

    def _nested_function(self, name, body):
        """A `tf.function` of `body` for use inside the update, XLA-compiled if `jit_compile`."""
        fn = self._fns.get(name)
        if fn is None:
            # A recurrent unroll's gradient (a while loop's accumulators) does not
            # compile with XLA: recurrent agents run the update's step as a plain graph.
            jit = self.jit_compile and not self.recurrent
            fn = self._fns[name] = tf.function(body, jit_compile=jit, autograph=False)
        return fn

    # ------------------------------------------------------------------- training
    def prepare(self, observation_space, action_space, seed=None, masked=False):
        """Builds (first fit) or checks (later fits) the agent for the env's spaces."""
        training.ensure_ready(self, observation_space, action_space, seed, masked)

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
        require_positive_int("total_timesteps", total_timesteps)
        require(verbose in (0, 1, 2), f"verbose must be 0, 1 or 2. Received: verbose={verbose!r}")
        sampler = sampler or InProcessSampler()
        try:
            continued = training.start(self, sampler, env, seed)
            return training.train(
                self, sampler, env, int(total_timesteps), callbacks, verbose, continued
            )
        finally:
            sampler.close()

    def set_seed(self, seed) -> None:
        """Sets the seed of the agent's noise streams and shuffles (`fit(seed=...)` does)."""
        self._seed.assign(int(seed))

    def update(self, batch) -> dict:
        """One compiled update on a training batch (`rollout.batch.training_batch`)."""
        return self._update_function()(**batch)

    def count_epoch(self, num_steps) -> None:
        """Adds one epoch of `num_steps` env steps to the counters."""
        self._timesteps.assign_add(num_steps)
        self._epochs.assign_add(1)

    def update_statistics(self, rollout):
        """Folds the rollout's raw observations into the running statistics."""
        valid = self.observation_format.take(rollout.observations, rollout.valid)
        networks.update_normalizers(self.observation_format, self.normalizers, valid)

    def _train(self, obs, actions, log_probs, advantages, returns, weights, seed, masks=None):
        raise NotImplementedError
