"""Forward passes of an agent whose torsos may be recurrent, one step or whole sequences.

A recurrent agent (a `RecurrentTorso` as policy and/or value model) trains on *sequence
batches*: time-major `(T, n_envs, ...)` tensors of whole per-env rollouts, with
`starts` (`(T, n_envs)`, the autoreset steps, `~valid`) and the state each sequence
began with (`policy_state`, `value_state`).

Where the state resets. In gymnasium's NEXT_STEP autoreset the step after a `done` is
an autoreset step: its observation is the ended episode's last one (its value is the
truncation bootstrap) and its action is ignored; the next step's observation is the new
episode's first. So the state runs through the autoreset step unchanged and is zeroed
*after* it: a new episode's first observation meets the zero state, as in `evaluate`
and `predict(episode_start=...)`, and the bootstrap value of a truncated episode comes
from that episode's state. The rollout's act step and the update's unroll both do this.

A feed-forward agent's batch is flat `(T * n_envs, ...)`. The helpers here take either
and return flat parameters and values, so the losses are written once; minibatches are
whole sequences (env columns).
"""

import tensorflow as tf

from keras_trust.networks.recurrent import RecurrentTorso


def is_recurrent(torso) -> bool:
    return isinstance(torso, RecurrentTorso)


def state_sizes(torso) -> list:
    """Sizes of a torso's state tensors (none for a feed-forward torso)."""
    return torso.state_sizes if is_recurrent(torso) else []


def _step(agent, torso, obs, states, starts):
    x = agent.observation_format.preprocess(obs, agent.normalizers)
    if is_recurrent(torso):
        return torso.step(x, states, starts)
    return torso(x), []


def policy_step(agent, obs, states, starts, mask=None):
    """`(params, new_states)` of one step of the policy."""
    features, states = _step(agent, agent.policy_torso, obs, states, starts)
    params = agent.policy_head(features)
    if mask is not None:
        params = agent.action_distribution.apply_mask(params, mask)
    return params, states


def value_step(agent, obs, states, starts):
    """`(values (B,), new_states)` of one step of the critic (model units)."""
    features, states = _step(agent, agent.value_torso, obs, states, starts)
    return agent.value_head(features)[:, 0], states


def reset_rows(states, starts):
    """`states` (a list of `(B, size)` tensors) with the rows where `starts` is true zeroed."""
    keep = 1.0 - tf.cast(tf.reshape(starts, [-1, 1]), tf.float32)
    return [s * keep for s in states]


def resets_after(autoresets):
    """`(T, B)` resets before each step for an unroll: the steps after autoreset steps.

    Step 0 never resets: the sequence's initial state was already zeroed by the rollout
    if the previous rollout ended on an autoreset step.
    """
    return tf.concat([tf.zeros_like(autoresets[:1]), autoresets[:-1]], axis=0)


def is_sequence_batch(data) -> bool:
    return "starts" in data


def flat(data, key):
    """`data[key]` with the time and env axes merged (unchanged for a flat batch)."""
    return merge_steps(data, data[key])


def merge_steps(data, t):
    """A tensor (or nest) of `data`'s layout with the time and env axes merged."""
    if not is_sequence_batch(data):
        return t
    return tf.nest.map_structure(lambda a: tf.reshape(a, [-1, *a.shape[2:]]), t)


def sequence_features(agent, torso, data, state_key, static=False):
    """Flat features `(T * B, F)` of a torso over a sequence batch (unrolled if recurrent)."""
    steps, envs = tf.shape(data["weights"])[0], tf.shape(data["weights"])[1]
    x = agent.observation_format.preprocess(flat(data, "obs"), agent.normalizers)
    if not is_recurrent(torso):
        return torso(x)
    x_seq = tf.nest.map_structure(lambda a: tf.reshape(a, [steps, envs, *a.shape[1:]]), x)
    resets = resets_after(data["starts"])
    features = torso.unroll(x_seq, resets, data[state_key], static=static)
    return tf.reshape(features, [steps * envs, features.shape[-1]])


def batch_policy_params(agent, data, static=False):
    """Flat distribution parameters for a flat or sequence batch (masks applied).

    `static` unrolls recurrent torsos in the graph (needed under forward-mode autodiff).
    """
    if not is_sequence_batch(data):
        return agent.policy_params(data["obs"], data.get("masks"))
    features = sequence_features(agent, agent.policy_torso, data, "policy_state", static)
    params = agent.policy_head(features)
    if "masks" in data:
        params = agent.action_distribution.apply_mask(params, flat(data, "masks"))
    return params


def batch_values(agent, data):
    """Flat critic values for a flat or sequence batch."""
    if not is_sequence_batch(data):
        return agent.value_estimate(data["obs"])
    features = sequence_features(agent, agent.value_torso, data, "value_state")
    return agent.value_head(features)[:, 0]


# Keys of a sequence batch indexed by env first (the rest are time-major).
_PER_SEQUENCE = ("policy_state", "value_state")


def gather(data, idx):
    """The minibatch of units `idx`: rows of a flat batch, env columns of a sequence one."""
    if not is_sequence_batch(data):
        return tf.nest.map_structure(lambda t: tf.gather(t, idx), data)
    return {
        k: tf.nest.map_structure(
            lambda t, k=k: tf.gather(t, idx, axis=0 if k in _PER_SEQUENCE else 1), v
        )
        for k, v in data.items()
    }


def units(data):
    """How many units minibatches are made of: rows, or sequences (envs)."""
    return tf.shape(data["weights"])[1 if is_sequence_batch(data) else 0]


def units_per_minibatch(data, batch_size: int) -> int:
    """`batch_size` rows, or `batch_size // T` whole sequences (at least one)."""
    if not is_sequence_batch(data):
        return batch_size
    return max(1, batch_size // int(data["weights"].shape[0]))
