"""The wrappers a preset can name, so that `keras-trust train ppo ENV_ID` sees the env
the preset was tuned on (frame stacks for Atari, MiniGrid without its mission string).

A preset's `"env_wrappers"` is a list of names from `WRAPPERS`; `env_factory(env_id,
names)` gives a picklable zero-argument callable (Ray workers and async vector envs can
build it) that makes the env and applies them in order.
"""

import functools

import gymnasium as gym


def atari(env):
    """rl-zoo's Atari setup: AtariPreprocessing (84x84 grey, frame skip 4, noop reset) and a
    4-frame stack (the agent transposes the channels-first stack). The env must be made
    with `frameskip=1` (`env_factory` does that for `ALE/` ids)."""
    env = gym.wrappers.AtariPreprocessing(env, frame_skip=4)
    return gym.wrappers.FrameStackObservation(env, 4)


def drop_mission(env):
    """MiniGrid's Dict observation without the `mission` string (keras_trust takes no Text)."""
    keys = [k for k in env.observation_space.spaces if k != "mission"]
    return gym.wrappers.FilterObservation(env, keys)


WRAPPERS = {"atari": atari, "drop_mission": drop_mission}


def _make(env_id, names):
    if env_id.startswith("ALE/"):
        import ale_py

        gym.register_envs(ale_py)
        env = gym.make(env_id, frameskip=1)
    else:
        if env_id.startswith("MiniGrid"):
            import minigrid  # noqa: F401  (registers the MiniGrid ids)
        env = gym.make(env_id)
    for name in names:
        env = WRAPPERS[name](env)
    return env


def env_factory(env_id: str, names=()):
    """`env_id` itself when there is nothing to wrap, else a picklable env builder.

    Raises:
        ValueError: for a wrapper name not in `WRAPPERS`.
    """
    names = list(names or ())
    unknown = [n for n in names if n not in WRAPPERS]
    if unknown:
        raise ValueError(f"Unknown env wrappers {unknown}; expected names from {sorted(WRAPPERS)}.")
    if not names and not env_id.startswith(("ALE/", "MiniGrid")):
        return env_id
    return functools.partial(_make, env_id, tuple(names))
