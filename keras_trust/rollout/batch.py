"""From a rollout to the update's training batch: advantages, returns, flat tensors."""

import numpy as np
import tensorflow as tf

from keras_trust.rollout.gae import compute_gae


def explained_variance(returns, values, valid) -> float:
    """`1 - Var(returns - values) / Var(returns)` over valid steps (NaN if Var is 0).

    Example:
    >>> explained_variance(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]),
    ...                    np.ones(3, bool))
    1.0
    """
    var_returns = np.var(returns[valid]) if valid.any() else 0.0
    if not var_returns > 0:
        return float("nan")
    return float(1.0 - np.var(returns[valid] - values[valid]) / var_returns)


def training_batch(rollout, rewards, gamma, gae_lambda, seed, sequences=False):
    """The flat tensors of one update, and the critic's explained variance before it.

    Args:
        rollout: a `Rollout` of `(T, n_envs)` steps.
        rewards: its rewards as the update sees them (scaled or raw), `(T, n_envs)`.
        gamma, gae_lambda: discount and GAE lambda.
        seed: int64 pair seeding the update's shuffles.
        sequences: keep the `(T, n_envs)` layout, with `starts` and the rollout's
            initial states, for a recurrent agent (minibatches of whole sequences).

    Returns:
        `(batch, explained_variance)`; `batch` maps `obs` (a nest for Dict/Tuple
        spaces), `actions`, `log_probs`, `advantages`, `returns`, `weights` (0 on reset
        steps), `seed` and, for masked agents, `masks` to tensors with the `T * n_envs`
        steps along the first axis.
    """
    advantages, returns = compute_gae(
        rewards,
        rollout.values,
        rollout.terminated,
        rollout.truncated,
        rollout.valid,
        gamma,
        gae_lambda,
    )
    explained = explained_variance(returns, rollout.values[:-1], rollout.valid)
    n = rollout.rewards.size

    def flat(x, dtype=None):
        if not sequences:
            x = x.reshape(n, *x.shape[2:])
        return tf.convert_to_tensor(x if dtype is None else x.astype(dtype))

    batch = {
        "obs": tf.nest.map_structure(flat, rollout.observations),
        "actions": flat(rollout.actions),
        "log_probs": flat(rollout.log_probs),
        "advantages": flat(advantages),
        "returns": flat(returns),
        "weights": flat(rollout.valid, np.float32),
        "seed": tf.constant(seed, dtype=tf.int64),
    }
    if rollout.action_masks is not None:
        batch["masks"] = flat(rollout.action_masks)
    if sequences:
        batch["starts"] = tf.convert_to_tensor(~rollout.valid)
        policy_state, value_state = rollout.initial_states
        batch["policy_state"] = [tf.convert_to_tensor(s) for s in policy_state]
        batch["value_state"] = [tf.convert_to_tensor(s) for s in value_state]
    return batch, explained
