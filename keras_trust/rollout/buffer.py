"""What a sampler hands to the learner: one rollout of a vector env, in numpy."""

from typing import NamedTuple

import numpy as np
import tensorflow as tf


class Rollout(NamedTuple):
    """A `(T, n_envs)` rollout collected in gymnasium's NEXT_STEP autoreset mode.

    Attributes:
        observations: `(T, n_envs, *obs_shape)` observations the actions were taken in (a
            nest of such arrays for Dict/Tuple spaces; images uint8, other leaves float32).
        actions: `(T, n_envs, *action_shape)` sampled actions (unclipped for Box).
        log_probs: `(T, n_envs)` log-probabilities of the actions when sampled.
        values: `(T + 1, n_envs)` critic values (model units); the last row bootstraps.
        rewards: `(T, n_envs)` raw env rewards.
        terminated: `(T, n_envs)` bools.
        truncated: `(T, n_envs)` bools.
        valid: `(T, n_envs)` bools, False on reset steps (the env ignored the action).
        episode_returns: returns of the episodes that ended during the rollout.
        episode_lengths: their lengths.
        last_observations: `(n_envs, *obs_shape)` observations after the last step.
        action_masks: `(T, n_envs, mask_size)` bool masks the actions were sampled under,
            or None for an agent without masks.
        initial_states: for a recurrent agent, `(policy_state, value_state)`: lists of
            `(n_envs, size)` arrays, each env's state before the rollout's first step.
    """

    observations: np.ndarray
    actions: np.ndarray
    log_probs: np.ndarray
    values: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    valid: np.ndarray
    episode_returns: list
    episode_lengths: list
    last_observations: np.ndarray
    action_masks: np.ndarray | None = None
    initial_states: tuple | None = None

    @property
    def num_steps(self) -> int:
        """Env steps in the rollout (reset steps included: the env counted them)."""
        return int(self.rewards.size)

    @staticmethod
    def concatenate(parts: list["Rollout"]) -> "Rollout":
        """Joins rollouts of disjoint env groups along the env axis (axis 1)."""
        if len(parts) == 1:
            return parts[0]
        fields = {}
        for name in Rollout._fields:
            items = [getattr(p, name) for p in parts]
            if name in ("episode_returns", "episode_lengths"):
                fields[name] = [x for item in items for x in item]
            elif items[0] is None:
                fields[name] = None
            else:
                axis = 0 if name in ("last_observations", "initial_states") else 1
                fields[name] = tf.nest.map_structure(
                    lambda *xs, axis=axis: np.concatenate(xs, axis=axis), *items
                )
        return Rollout(**fields)
