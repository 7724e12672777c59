"""The compiled per-step policy of a recurrent agent: the state goes in and comes out.

Like `CompiledPolicy`, each function is one traced graph called directly; the
recurrent state of every env is an input and an output of the call (NumPy between
steps). `starts` (bool per row) means two things, as each caller passes it:

- `predict` (`predict_recurrent`): the row's observation is an episode's first one; its
  state is zeroed before the step.
- the rollout (`act_recurrent`, `value_recurrent`): the row's step is an autoreset step
  (its previous step ended the episode; its observation is that episode's last one). The
  step runs on the episode's state, so the bootstrap value of a truncated episode is
  right, and the state after it is zero, so the next episode starts as in `predict`
  (see `recurrence` for the update's side of the same rule).
"""

import gymnasium as gym
import numpy as np
import tensorflow as tf

from keras_trust.agents import recurrence
from keras_trust.agents.acting import CompiledPolicy, flat_caller


class RecurrentCompiledPolicy(CompiledPolicy):
    """`CompiledPolicy` for agents with a `RecurrentTorso` (policy and/or value).

    Args:
        agent: the agent (its `policy_torso` / `value_torso` give the state sizes).
        jit_compile: XLA-compile `act` and `value`.
    """

    def __init__(self, agent, jit_compile):
        super().__init__(
            agent.policy_params,
            agent.value_estimate,
            agent.action_distribution,
            agent.observation_format,
            jit_compile,
            agent.masked,
        )
        self.agent = agent
        self.policy_sizes = recurrence.state_sizes(agent.policy_torso)
        self.value_sizes = recurrence.state_sizes(agent.value_torso)

    def initial_state(self, batch: int):
        """`(policy_state, value_state)`: lists of zero arrays for `batch` rows."""
        return (
            [np.zeros((batch, s), np.float32) for s in self.policy_sizes],
            [np.zeros((batch, s), np.float32) for s in self.value_sizes],
        )

    def _specs(self, sizes):
        return [tf.TensorSpec((None, s), tf.float32) for s in sizes]

    # --- graph bodies ---------------------------------------------------------------
    def _act_step(self, obs, mask, p_state, v_state, autoresets):
        carry = tf.zeros_like(autoresets)
        params, p_state = recurrence.policy_step(self.agent, obs, p_state, carry, mask)
        action = self.distribution.sample(params, self.feed.next())
        logp = self.distribution.log_prob(params, action)
        value, v_state = recurrence.value_step(self.agent, obs, v_state, carry)
        p_state = recurrence.reset_rows(p_state, autoresets)
        v_state = recurrence.reset_rows(v_state, autoresets)
        return [action, self.distribution.env_action(action), logp, value, *p_state, *v_state]

    def deterministic_step(self, obs, mask, p_state, starts):
        """`[env action of the mode, *new policy state]` (what the SavedModel serves)."""
        params, p_state = recurrence.policy_step(self.agent, obs, p_state, starts, mask)
        return [self.distribution.env_action(self.distribution.mode(params)), *p_state]

    def _sample_step(self, obs, noise, mask, p_state, starts):
        params, p_state = recurrence.policy_step(self.agent, obs, p_state, starts, mask)
        return [self.distribution.env_action(self.distribution.sample(params, noise)), *p_state]

    def _value_step(self, obs, v_state):
        # The rollout's bootstrap: an observation after an episode's end is still that
        # episode's (its last), so it is valued on the carried state, never reset.
        starts = tf.zeros(tf.shape(v_state[0])[:1], tf.bool) if v_state else None
        return [recurrence.value_step(self.agent, obs, v_state, starts)[0]]

    def _function(self, name):
        fn = self._fns.get(name)
        if fn is None:
            obs_spec, mask_spec = self.specs()
            starts = tf.TensorSpec((None,), tf.bool)
            p, v = self._specs(self.policy_sizes), self._specs(self.value_sizes)
            noise = tf.TensorSpec((None, *self.distribution.noise_shape), tf.float32)
            masked = self.masked

            def with_mask(body, before, after):
                # The mask is an input only for masked agents (None inside otherwise).
                if masked:
                    return body, [*before, mask_spec, *after]
                n = len(before)
                return (lambda *a: body(*a[:n], None, *a[n:])), [*before, *after]

            bodies = {
                "act": (*with_mask(self._act_step, [obs_spec], [p, v, starts]), self.jit_compile),
                "value": (self._value_step, [obs_spec, v], self.jit_compile),
                "predict": (*with_mask(self.deterministic_step, [obs_spec], [p, starts]), False),
                "sample": (*with_mask(self._sample_step, [obs_spec, noise], [p, starts]), False),
            }
            body, signature, jit = bodies[name]
            concrete = tf.function(
                body, input_signature=signature, jit_compile=jit, autograph=False
            ).get_concrete_function()
            fn = self._fns[name] = flat_caller(concrete)
        return fn

    # --- what the runner and the agent call --------------------------------------------
    def _obs_tensors(self, obs):
        return [tf.constant(x, d) for x, d in zip(self.format.flatten(obs), self._dtypes)]

    def act_recurrent(self, obs, mask, p_state, v_state, starts):
        """`(actions, env_actions, log_probs, values, p_state, v_state)` as NumPy.

        `starts`: the rows on an autoreset step (their state is zeroed after the step).
        """
        tensors = self._obs_tensors(obs)
        if self.masked:
            tensors.append(tf.constant(mask, tf.bool))
        tensors += [tf.constant(s) for s in (*p_state, *v_state)]
        tensors.append(tf.constant(starts, tf.bool))
        out = [t.numpy() for t in self._function("act")(*tensors)]
        n_p = len(self.policy_sizes)
        env_action = out[1].astype(self.distribution.env_dtype, copy=False)
        return out[0], env_action, out[2], out[3], out[4 : 4 + n_p], out[4 + n_p :]

    def value(self, obs) -> np.ndarray:
        """Critic values of an observation batch from the zero state (one step)."""
        rows = len(self.format.flatten(obs)[0])
        return self.value_recurrent(obs, self.initial_state(rows)[1], np.ones(rows, bool))

    def value_recurrent(self, obs, v_state, starts=None) -> np.ndarray:
        """Critic values on the carried `v_state` (the rollout's bootstrap).

        `starts` is accepted as the rollout passes it and not used: a row whose episode
        just ended still holds that episode's last observation and state.
        """
        tensors = [*self._obs_tensors(obs), *(tf.constant(s) for s in v_state)]
        return self._function("value")(*tensors)[0].numpy()

    def predict_recurrent(self, obs, p_state, starts, deterministic=True, seed=None, mask=None):
        """`(env actions, new policy state)` of one step."""
        tensors = self._obs_tensors(obs)
        rows = int(tensors[0].shape[0])
        if not deterministic:
            noise = self.distribution.noise(np.random.default_rng(seed), (rows,))
            tensors.append(tf.constant(noise, tf.float32))
        if self.masked:
            tensors.append(tf.constant(mask, tf.bool))
        tensors += [tf.constant(s, tf.float32) for s in p_state]
        tensors.append(tf.constant(starts, tf.bool))
        out = self._function("predict" if deterministic else "sample")(*tensors)
        actions = out[0].numpy().astype(self.distribution.env_dtype, copy=False)
        return actions, [t.numpy() for t in out[1:]]


class RecurrentEpisodes(gym.Wrapper):
    """Carries a recurrent agent's policy state through an env's episodes (for `evaluate`).

    `act(obs, **kwargs)` predicts with the state and keeps the new one; `reset` drops it,
    so every episode starts from the zero state.
    """

    def __init__(self, env, agent):
        super().__init__(env)
        self.agent, self.state = agent, None

    def reset(self, **kwargs):
        self.state = None
        return self.env.reset(**kwargs)

    def act(self, obs, **kwargs):
        actions, self.state = self.agent.predict(obs, state=self.state, **kwargs)
        return actions
