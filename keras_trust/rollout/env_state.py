"""Env state that survives `save` / `load_agent`: seeded episodes replayed from their actions.

An env's state cannot be saved in general (MuJoCo, Atari and users' envs hold C state),
but a gymnasium env is a function of its reset seed and the actions taken since. So
every env keras_trust builds is wrapped in `ResumableEpisodes`: episode `e` of the env
with base seed `b` is reset with `episode_seed(b, e)` (episode 0 with `b` itself, as
before), and the actions since the last reset are kept. The saved state of an env is
`(base, episode, actions, done)`; restoring it resets the env with the same seed and
replays the actions, which gives back the same env state for any env that is
deterministic given its seed (classic control, MuJoCo, Atari with its sticky actions
drawn from the env's seeded generator, MiniGrid, ...). The runner checks the replayed
observation against a digest saved with the state and starts fresh episodes (with a
warning) where they differ.
"""

import hashlib
import io
import warnings

import gymnasium as gym
import numpy as np


def episode_seed(base: int, episode: int) -> int:
    """The reset seed of episode `episode` of an env whose first reset used `base`."""
    if episode == 0:
        return int(base)
    return int(np.random.SeedSequence([int(base), int(episode)]).generate_state(1)[0])


class ResumableEpisodes(gym.Wrapper):
    """Seeds every episode from the env's base seed and keeps the actions since the reset.

    A reset with an explicit seed sets the base (episode 0); later resets without one
    (the vector env's autoresets) use `episode_seed(base, episode)`. Only an env that was
    never given a seed resets unseeded, as gymnasium does.

    Args:
        env: the env (already wrapped to name its faults by index).
        index: the env's global index; `restore_episode` picks its own state by it.
    """

    def __init__(self, env, index: int):
        super().__init__(env)
        self.index = int(index)
        self._base = None
        self._episode = 0
        self._actions = []
        self._done = False
        self._pending_reset = False

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self._base, self._episode = int(seed), 0
            reset_seed = self._base
        elif self._base is not None:
            self._episode += 1
            reset_seed = episode_seed(self._base, self._episode)
        else:
            reset_seed = None
        self._actions = []
        self._done = self._pending_reset = False
        return self.env.reset(seed=reset_seed, options=options)

    def step(self, action):
        if self._pending_reset:
            # Restored right after an episode ended: this is the vector env's autoreset
            # step (NEXT_STEP mode), which the fresh vector env does not know it owes.
            obs, info = self.reset()
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._actions.append(np.array(action, copy=True))
        self._done = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info

    def episode_state(self) -> dict:
        """`{"index", "base", "episode", "actions", "done"}` of the episode in progress."""
        space = self.env.action_space
        if self._actions:
            actions = np.stack(self._actions)
        else:
            actions = np.zeros((0, *np.shape(space.sample())), dtype=space.dtype)
        return {
            "index": self.index,
            "base": -1 if self._base is None else self._base,
            "episode": self._episode,
            "actions": actions,
            "done": self._done,
        }

    def restore_episode(self, states: dict):
        """Resets to `states[index]`'s episode and replays its actions; `(obs, info)` after.

        The actions go to the wrapped env directly, so they are not checked or counted
        again; an episode that had ended leaves the autoreset pending for the next step.
        """
        state = states[self.index]
        if state["base"] < 0:
            raise ValueError(f"Environment {self.index} was never seeded; it cannot be restored.")
        self._base, self._episode = int(state["base"]), int(state["episode"])
        obs, info = self.env.reset(seed=episode_seed(self._base, self._episode))
        actions = np.asarray(state["actions"])
        for action in actions:
            obs, _, _, _, info = self.env.step(action)
        self._actions = list(actions)
        self._done = bool(state["done"])
        self._pending_reset = self._done
        return obs, info


def digest(leaves, row: int) -> bytes:
    """A 16-byte digest of row `row` of an observation's leaves (for the replay check)."""
    h = hashlib.blake2b(digest_size=16)
    for leaf in leaves:
        h.update(np.ascontiguousarray(leaf[row]).tobytes())
    return h.digest()


def batch_infos(infos: list) -> dict:
    """Per-env info dicts stacked as a vector env does: `key`, and its `_key` mask."""
    out = {}
    for key in sorted({k for info in infos for k in info}):
        values = [info.get(key) for info in infos]
        first = next(v for v in values if v is not None)
        if isinstance(first, dict):
            out[key] = batch_infos([v or {} for v in values])
        else:
            filler = np.zeros_like(np.asarray(first))
            out[key] = np.stack([np.asarray(filler if v is None else v) for v in values])
        out[f"_{key}"] = np.array([key in info for info in infos])
    return out


def pack(state: dict) -> np.ndarray:
    """A state dict of arrays as the bytes of an `.npz` archive (a uint8 array)."""
    buffer = io.BytesIO()
    np.savez(buffer, **{k: np.asarray(v) for k, v in state.items()})
    return np.frombuffer(buffer.getvalue(), dtype=np.uint8)


def unpack(data) -> dict | None:
    """Inverse of `pack` (no pickles are loaded); None, with a warning, if unreadable."""
    try:
        with np.load(io.BytesIO(np.asarray(data, dtype=np.uint8).tobytes())) as archive:
            return {k: archive[k] for k in archive.files}
    except (ValueError, OSError) as exc:
        warnings.warn(
            f"The saved env state could not be read ({exc}); fit starts fresh episodes.",
            stacklevel=2,
        )
        return None
