"""Saving agents atomically and loading them back (used by `Agent.save` and checkpoints).

A `.keras` file is written to a temporary file in the same directory, flushed to disk
and moved over the old one with `os.replace`, so a crash (even `kill -9`) at any moment
leaves the previous file complete and loadable.
"""

import os
import tempfile
import zipfile

import keras

from keras_trust.spaces import space_from_config, space_to_config


def atomic_write(write, filepath, suffix: str = "") -> None:
    """Calls `write(tmp_path)` on a temporary file beside `filepath`, flushes it to disk and
    moves it over `filepath`: a crash at any moment leaves the old file or the new one."""
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, filepath)
        fsync_directory(directory)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_save(write, filepath, overwrite: bool = True) -> None:
    """`atomic_write` of a `.keras` file (`write(tmp_path)` writes it).

    Args:
        write: function writing a `.keras` file at the path it is given.
        filepath: the destination; must end in `.keras`.
        overwrite: replace an existing file. Defaults to `True`.
    """
    filepath = os.fspath(filepath)
    if not filepath.endswith(".keras"):
        raise ValueError(f"The file name must end in '.keras'. Received: {filepath!r}")
    if os.path.exists(filepath) and not overwrite:
        raise FileExistsError(filepath)
    atomic_write(write, filepath, suffix=".keras")


def fsync_directory(directory) -> None:
    """Makes a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def serialize_optional(obj):
    """`keras.saving.serialize_keras_object(obj)`, or None for None."""
    return None if obj is None else keras.saving.serialize_keras_object(obj)


def deserialize_optional(config):
    """Inverse of `serialize_optional`."""
    return None if config is None else keras.saving.deserialize_keras_object(config)


def build_config(agent) -> dict:
    """What a built agent was built for: its spaces (JSON) and whether it reads masks."""
    return {
        "observation_space": space_to_config(agent.observation_space),
        "action_space": space_to_config(agent.action_space),
        "masked": agent.masked,
    }


def build_arguments(config) -> tuple:
    """`(observation_space, action_space, masked)` of a `build_config`."""
    return (
        space_from_config(config["observation_space"]),
        space_from_config(config["action_space"]),
        config.get("masked", False),
    )


def compile_config(agent):
    """The agent's optimizers (with their state's shape) and jit setting, as JSON."""
    if agent.optimizer is None:
        return None
    value_optimizer = agent.value_optimizer
    return {
        "optimizer": keras.optimizers.serialize(agent.optimizer),
        "value_optimizer": None
        if value_optimizer is None
        else keras.optimizers.serialize(value_optimizer),
        "jit_compile": bool(agent.jit_compile),
    }


def compile_arguments(config) -> dict:
    """The `compile` arguments of a `compile_config`."""
    value_optimizer = config["value_optimizer"]
    return {
        "optimizer": keras.optimizers.deserialize(config["optimizer"]),
        "value_optimizer": None
        if value_optimizer is None
        else keras.optimizers.deserialize(value_optimizer),
        "jit_compile": config.get("jit_compile", "auto"),
    }


def load_agent(filepath):
    """Loads an agent saved by `agent.save`, in Keras safe mode (no arbitrary code).

    The agent continues where it stopped: `fit` resumes the step counter, optimizer
    state, normalization statistics and KL-penalty beta.

    Raises:
        FileNotFoundError: nothing at `filepath`.
        ValueError: naming the file, for anything that is not a loadable agent: a path
            that is not a `.keras` file, a truncated or corrupt file, a zip or `.keras`
            file that is not an agent's (Keras's or zipfile's error is chained).
    """
    from keras_trust.agents.agent import Agent

    if not isinstance(filepath, str | os.PathLike) or not isinstance(os.fspath(filepath), str):
        raise ValueError(
            f"load_agent needs the path of a .keras file (str or os.PathLike). "
            f"Received: {filepath!r}"
        )
    filepath = os.fspath(filepath)
    if not os.path.exists(filepath):
        raise FileNotFoundError(f"No agent file at {filepath!r}.")
    if not filepath.endswith(".keras") or not os.path.isfile(filepath):
        raise ValueError(f"{filepath!r} is not a .keras file (as written by agent.save).")
    if not zipfile.is_zipfile(filepath):
        raise ValueError(
            f"{filepath!r} is not a .keras archive: it is truncated or corrupt, or another "
            "kind of file."
        )
    try:
        model = keras.saving.load_model(filepath, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras, zipfile and h5py raise many kinds
        raise ValueError(
            f"Cannot load an agent from {filepath!r}: the file is truncated, corrupt or "
            f"not a keras_trust agent's. {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(model, Agent):
        raise ValueError(f"{filepath!r} holds a {type(model).__name__}, not a keras_trust agent.")
    return model
