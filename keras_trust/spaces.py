"""Gymnasium spaces: what keras_trust supports, and their JSON form for saved agents."""

import gymnasium as gym
import numpy as np

OBSERVATION_SPACES = "Box, Discrete and MultiBinary"


def check_observation_space(space) -> None:
    """Raises `ValueError` naming the space unless keras_trust can feed it to a network."""
    if isinstance(space, gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiBinary):
        if isinstance(space, gym.spaces.MultiBinary) and np.ndim(space.n) != 0:
            raise ValueError(f"Unsupported observation space {space}: MultiBinary must be 1-D.")
        return
    raise ValueError(
        f"Unsupported observation space {type(space).__name__} ({space}): keras_trust "
        f"supports {OBSERVATION_SPACES} observations. Flatten other spaces with "
        "gymnasium.wrappers.FlattenObservation first."
    )


def space_to_config(space) -> dict:
    """A JSON-serializable description of a Box, Discrete, MultiDiscrete or MultiBinary."""
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
        return {"type": "MultiBinary", "n": int(space.n)}
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
        return gym.spaces.MultiBinary(config["n"])
    raise ValueError(f"Unknown space type {kind!r} in config.")
