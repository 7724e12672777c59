"""Action masks: read from the env at every step, checked, and shaped for the policy.

Two conventions are read, in this order: gymnasium's `info["action_mask"]` (e.g.
`Taxi-v4`; a vector env stacks it per env) and, when the info has none, the env's
method `action_masks()` (sb3-contrib's MaskablePPO convention). A row is a bool vector
of the allowed actions: `(n,)` for `Discrete(n)`, `(sum(nvec),)` for `MultiDiscrete`.
"""

import gymnasium as gym
import numpy as np


def env_provides_masks(envs, infos) -> bool:
    """Whether a vector env's reset `infos` carry masks or its envs have `action_masks()`.

    The method is looked for on the envs of an in-process (`SyncVectorEnv`) vector env
    only: probing a missing attribute in an `AsyncVectorEnv` worker shuts the worker
    down, so async envs give their masks through `info["action_mask"]`.
    """
    if "action_mask" in infos:
        return True
    sub_envs = getattr(envs, "envs", None)
    if not sub_envs:
        return False
    try:
        return callable(sub_envs[0].get_wrapper_attr("action_masks"))
    except AttributeError:
        return False


def read_masks(envs, infos, size: int) -> np.ndarray:
    """The `(n_envs, size)` bool masks of a vector env's current step."""
    if "action_mask" in infos:
        mask = np.asarray(infos["action_mask"], dtype=bool)
    else:
        mask = np.asarray(np.stack(envs.call("action_masks")), dtype=bool)
    if mask.shape != (envs.num_envs, size):
        raise ValueError(
            f"Action masks must have shape (n_envs, {size}) = ({envs.num_envs}, {size}). "
            f"Received shape {mask.shape}."
        )
    return mask


def check_rows(mask, what: str) -> None:
    """Raises `ValueError` when a row allows no action at all (nothing could be taken)."""
    empty = ~mask.any(axis=-1)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise ValueError(f"The action mask of {what} row {row} allows no action (all False).")


def mask_batch(size, action_mask, batch: int) -> np.ndarray:
    """A user's mask for `predict` as bool `(batch, size)`; all-True when None.

    Raises:
        ValueError: wrong shape, a mask for unmaskable actions, or an all-False row.
    """
    if size is None:
        raise ValueError("action_mask is only supported for Discrete and MultiDiscrete actions.")
    if action_mask is None:
        return np.ones((batch, size), bool)
    try:
        mask = np.asarray(action_mask)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action_mask cannot be read as an array: {exc}") from exc
    if mask.dtype.kind not in "biuf" or (mask.dtype.kind == "f" and not np.isfinite(mask).all()):
        raise ValueError(
            "action_mask must be bool (or 0/1 numbers, finite). "
            f"Received an array of dtype {mask.dtype}."
        )
    mask = mask.astype(bool, copy=False)
    if mask.shape == (size,):
        mask = np.broadcast_to(mask, (batch, size))
    if mask.shape != (batch, size):
        raise ValueError(
            f"action_mask must have shape ({size},) or ({batch}, {size}). "
            f"Received shape {mask.shape}."
        )
    check_rows(mask, "action_mask")
    return mask


class MaskTracker(gym.Wrapper):
    """Keeps the current action mask of one (non-vector) env, for `evaluate`.

    Wraps the env's `reset` and `step` and reads the mask from their info (or the env's
    `action_masks()`), so a policy can be given the mask of the state it acts in.
    """

    def __init__(self, env):
        super().__init__(env)
        self.mask = None

    def _read(self, info):
        if "action_mask" in info:
            self.mask = np.asarray(info["action_mask"], dtype=bool)
        else:
            self.mask = np.asarray(self.env.get_wrapper_attr("action_masks")(), dtype=bool)

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self._read(info)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._read(info)
        return obs, reward, terminated, truncated, info


def run_masked_episodes(predict, env, episodes, deterministic=True, seed=None) -> dict:
    """`run_episodes` where each action is predicted under the env's current mask."""
    from keras_trust.rollout.envs import single_env
    from keras_trust.rollout.evaluation import run_episodes

    env, owned = single_env(env)
    tracker = MaskTracker(env)

    def masked_predict(obs, **kwargs):
        return predict(obs, action_mask=tracker.mask, **kwargs)

    try:
        return run_episodes(masked_predict, tracker, episodes, deterministic, seed)
    finally:
        if owned:
            env.close()
