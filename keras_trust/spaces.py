"""Gymnasium spaces: which ones keras_trust takes, and their JSON form for saved agents."""

import gymnasium as gym
import numpy as np

LEAF_SPACES = (
    gym.spaces.Box,
    gym.spaces.Discrete,
    gym.spaces.MultiBinary,
    gym.spaces.MultiDiscrete,
)
OBSERVATION_SPACES = "Box, Discrete, MultiBinary and MultiDiscrete (and Dict/Tuple of them)"


def is_image(space) -> bool:
    """A rank-3 uint8 `Box`: an image, channels last (stored as uint8, fed to a CNN)."""
    return (
        isinstance(space, gym.spaces.Box)
        and len(space.shape) == 3
        and np.dtype(space.dtype) == np.uint8
    )


def channels_first(space) -> bool:
    """Whether an image is laid out channels first, e.g. `FrameStackObservation`'s (4, 84, 84).

    As Stable-Baselines3 decides it: the smallest of the three dimensions comes first.
    Such images are transposed to channels last before the network.
    """
    shape = space.shape
    return int(np.argmin(shape)) == 0 and shape[0] < shape[-1]


def check_observation_space(space, path="observation") -> None:
    """Raises `ValueError` naming the space unless keras_trust can feed it to a network."""
    if isinstance(space, gym.spaces.Dict):
        if not space.spaces:
            raise ValueError(f"Unsupported observation space {space}: an empty Dict.")
        for key, sub in space.spaces.items():
            check_observation_space(sub, f"{path}[{key!r}]")
        return
    if isinstance(space, gym.spaces.Tuple):
        if not space.spaces:
            raise ValueError(f"Unsupported observation space {space}: an empty Tuple.")
        for i, sub in enumerate(space.spaces):
            check_observation_space(sub, f"{path}[{i}]")
        return
    if isinstance(space, LEAF_SPACES):
        return
    hint = (
        " Drop it with a wrapper (e.g. gymnasium.wrappers.FilterObservation for a Dict key, "
        "or a TransformObservation), or encode it as a Box/Discrete first."
    )
    raise ValueError(
        f"Unsupported observation space {type(space).__name__} ({space}) at {path}: "
        f"keras_trust supports {OBSERVATION_SPACES} observations.{hint}"
    )


def space_to_config(space) -> dict:
    """A JSON-serializable description of a supported space (nested ones included)."""
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "low": space.low.tolist(),
            "high": space.high.tolist(),
            "shape": list(space.shape),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": str(space.dtype),
        }
    if isinstance(space, gym.spaces.MultiBinary):
        return {"type": "MultiBinary", "n": np.asarray(space.n).tolist()}
    if isinstance(space, gym.spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_config(s) for k, s in space.spaces.items()}}
    if isinstance(space, gym.spaces.Tuple):
        return {"type": "Tuple", "spaces": [space_to_config(s) for s in space.spaces]}
    raise ValueError(f"Cannot serialize space {space}.")


def space_from_config(config: dict):
    """Inverse of `space_to_config`."""
    kind = config["type"]
    if kind == "Box":
        dtype = np.dtype(config["dtype"])
        low = np.asarray(config["low"], dtype=dtype)
        high = np.asarray(config["high"], dtype=dtype)
        return gym.spaces.Box(low=low, high=high, shape=tuple(config["shape"]), dtype=dtype)
    if kind == "Discrete":
        return gym.spaces.Discrete(config["n"], start=config.get("start", 0))
    if kind == "MultiDiscrete":
        return gym.spaces.MultiDiscrete(
            config["nvec"], dtype=config.get("dtype", "int64"), start=config.get("start")
        )
    if kind == "MultiBinary":
        n = config["n"]
        return gym.spaces.MultiBinary(n if isinstance(n, int) else list(n))
    if kind == "Dict":
        return gym.spaces.Dict({k: space_from_config(s) for k, s in config["spaces"].items()})
    if kind == "Tuple":
        return gym.spaces.Tuple([space_from_config(s) for s in config["spaces"]])
    raise ValueError(f"Unknown space type {kind!r} in config.")
