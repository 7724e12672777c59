"""The compiled per-step policy that samplers call: act, value, predict, sample.

A rollout calls the policy once per vector step, so the call's fixed cost is the cost
of acting. Each function here is traced once (`autograph=False`, a fixed signature) and
called through `flat_caller`: tensors straight into the traced graph. The rollout's
sampling noise is uploaded once per rollout (`start_rollout`) and read row by row inside
the graph, so each step passes only the observations.
"""

import numpy as np
import tensorflow as tf


def flat_caller(concrete, internal: bool = True):
    """A caller of a concrete function's graph that skips its Python argument binding.

    `concrete(x)` binds `x` to the traced signature (inspect-style binding, a type check
    and a cast per argument, the captured variables collected anew) before it runs the
    graph: ~30 of the ~72 us that one call of the per-env-step act function costs
    (`benchmarks/bench_act.py`). The rollout always passes the same kinds of tensors, so
    this calls the graph (`concrete.inference_fn`, the `tf.types.experimental.
    AtomicFunction` that `concrete` itself runs) with the tensors and the captured
    variable handles, taken once here. Variables keep their handles when assigned, so
    the captures stay valid for the life of `concrete`.

    This is the one place that relies on TensorFlow internals (`inference_fn.call_flat`);
    with `internal=False`, or where a TensorFlow version lacks it, it calls `concrete`
    through its public API instead. Under a `GradientTape` use `concrete` itself: the
    direct path records nothing for gradients.

    Returns:
        A function of the signature's tensors *flattened* (`tf.nest.flatten` order, right
        dtypes) returning the flat list of output tensors.
    """
    call_flat = getattr(getattr(concrete, "inference_fn", None), "call_flat", None)
    if call_flat is None or not internal:
        signature = getattr(concrete, "structured_input_signature", None)
        if signature is None:
            return lambda *tensors: tf.nest.flatten(concrete(*tensors))
        args = signature[0]
        return lambda *tensors: tf.nest.flatten(
            concrete(*tf.nest.pack_sequence_as(args, list(tensors)))
        )
    captures = tuple(concrete.captured_inputs)
    return lambda *tensors: call_flat(*tensors, *captures)


class NoiseFeed:
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

    def next(self):
        row = tf.gather(self.noise, self.step)
        self.step.assign_add(1)
        return row


class CompiledPolicy:
    """An agent's per-step functions, compiled for its spaces.

    Args:
        policy_params: `(observation batch, mask or None)` -> distribution parameters.
        value_estimate: observation batch -> critic values `(B,)` (graph code).
        distribution: the agent's `ActionDistribution`.
        observation_format: the agent's `ObservationFormat` (observations may be nests).
        jit_compile: XLA-compile `act` and `value` (it fuses the small networks into a
            few kernels); `predict` and `sample` stay un-fused so that they give bit for
            bit what the exported SavedModel gives, and `value` shares `act`'s XLA
            numerics so the bootstrap value matches the per-step ones.
        masked: every policy function takes a bool action mask after the observations.
    """

    def __init__(
        self,
        policy_params,
        value_estimate,
        distribution,
        observation_format,
        jit_compile,
        masked=False,
        host_plan=None,
    ):
        self.policy_params = policy_params
        self.value_estimate = value_estimate
        self.distribution = distribution
        self.format = observation_format
        self.jit_compile = bool(jit_compile)
        self.masked = bool(masked)
        self._dtypes = [spec.dtype for spec in tf.nest.flatten(observation_format.specs())]
        self.feed = NoiseFeed(distribution.noise_shape)
        self._fns = {}
        # A zero-argument callable giving a `host_policy.HostPlan` (or None); asked once.
        self._host_plan_factory = host_plan
        self._host_plan = None
        # Set False to step rollouts with the compiled `act` even where NumPy could.
        self.use_host = True

    # --- graph bodies ---------------------------------------------------------------
    def _act(self, obs, mask=None):
        params = self.policy_params(obs, mask)
        action = self.distribution.sample(params, self.feed.next())
        logp = self.distribution.log_prob(params, action)
        env_action = self.distribution.env_action(action)
        return action, env_action, logp, self.value_estimate(obs)

    def deterministic_action(self, obs, mask=None):
        """The env action of the distribution's mode (what `export` serves)."""
        params = self.policy_params(obs, mask)
        return self.distribution.env_action(self.distribution.mode(params))

    def _sample(self, obs, noise, mask=None):
        action = self.distribution.sample(self.policy_params(obs, mask), noise)
        return self.distribution.env_action(action)

    def specs(self):
        """`(observation spec nest, mask spec or None)` of the policy functions."""
        mask = None
        if self.masked:
            mask = tf.TensorSpec((None, self.distribution.mask_size), tf.bool)
        return self.format.specs(), mask

    def _function(self, name):
        fn = self._fns.get(name)
        if fn is None:
            obs_spec, mask_spec = self.specs()
            masked = [mask_spec] if self.masked else []
            noise_spec = tf.TensorSpec((None, *self.distribution.noise_shape), tf.float32)
            body, signature, jit = {
                "act": (self._act, [obs_spec, *masked], self.jit_compile),
                "value": (self.value_estimate, [obs_spec], self.jit_compile),
                "predict": (self.deterministic_action, [obs_spec, *masked], False),
                "sample": (
                    (lambda o, n, m: self._sample(o, n, m))
                    if self.masked
                    else (lambda o, n: self._sample(o, n)),
                    [obs_spec, noise_spec, *masked],
                    False,
                ),
            }[name]
            concrete = tf.function(
                body, input_signature=signature, jit_compile=jit, autograph=False
            ).get_concrete_function()
            fn = self._fns[name] = flat_caller(concrete)
        return fn

    # --- what samplers and the agent call ---------------------------------------------
    def sampling_noise(self, seed, n_steps, env_ids, iteration) -> np.ndarray:
        """Noise that makes the sampled actions of one rollout: `(n_steps, n_envs, ...)`.

        Each env has its own stream seeded by `(seed, env id, iteration)`, so a rollout
        is the same whichever process or worker steps which env, and resumes exactly.
        """
        noise = np.empty((n_steps, len(env_ids), *self.distribution.noise_shape), np.float32)
        for j, env_id in enumerate(env_ids):
            rng = np.random.default_rng([int(seed), int(env_id), int(iteration)])
            noise[:, j] = self.distribution.rollout_noise(rng, n_steps)
        return noise

    def rollout(self, noise):
        """What one rollout steps with: an object with `act(obs, mask)` and `value(obs)`.

        A NumPy copy of the networks (`agents/host_policy.py`) where it can run them and
        `use_host` is set, else this policy with `noise` uploaded.
        """
        if self.use_host and self._host_plan_factory is not None:
            self._host_plan = self._host_plan_factory()
            self._host_plan_factory = None
        if self.use_host and self._host_plan is not None:
            return self._host_plan.rollout(noise)
        self.start_rollout(noise)
        return self

    def start_rollout(self, noise) -> None:
        """Uploads a rollout's sampling noise `(n_steps, n_envs, ...)` for `act` to read."""
        self.feed.load(noise)

    def _inputs(self, obs, mask=None):
        """The flat input tensors of a call: observation leaves, then the mask if masked."""
        tensors = [tf.constant(x, d) for x, d in zip(self.format.flatten(obs), self._dtypes)]
        if self.masked:
            tensors.append(tf.constant(mask, tf.bool))
        return tensors

    def act(self, obs, mask=None):
        """One compiled call: `(actions, env_actions, log_probs, values)` as NumPy.

        `obs` is a batch in the storage dtypes (`ObservationFormat`); `mask` the bool
        action masks when masked. `actions` are the distribution's samples (stored for
        the update), `env_actions` what the env receives (e.g. clipped to the bounds),
        in the space's dtype.
        """
        action, env_action, logp, value = self._function("act")(*self._inputs(obs, mask))
        env_action = env_action.numpy().astype(self.distribution.env_dtype, copy=False)
        return action.numpy(), env_action, logp.numpy(), value.numpy()

    def value(self, obs) -> np.ndarray:
        """Critic values of an observation batch (model units)."""
        tensors = [tf.constant(x, d) for x, d in zip(self.format.flatten(obs), self._dtypes)]
        return self._function("value")(*tensors)[0].numpy()

    def predict(self, obs, deterministic=True, seed=None, mask=None) -> np.ndarray:
        """Env actions of an observation batch: the mode, or a sample seeded by `seed`."""
        tensors = self._inputs(obs, mask)
        if deterministic:
            actions = self._function("predict")(*tensors)[0]
        else:
            rows = int(tensors[0].shape[0])
            noise = tf.constant(
                self.distribution.noise(np.random.default_rng(seed), (rows,)), tf.float32
            )
            n_obs = len(self.format.leaves)
            tensors = [*tensors[:n_obs], noise, *tensors[n_obs:]]
            actions = self._function("sample")(*tensors)[0]
        return actions.numpy().astype(self.distribution.env_dtype, copy=False)
