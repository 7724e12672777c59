"""Saving agents atomically and loading them back (used by `Agent.save` and checkpoints).

`Persistence` is the part of `Agent` that writes it (`save`, `export`) and describes it
to Keras (`get_config`, the build and compile configs, the env state among its weights).

A `.keras` file is written to a temporary file in the same directory, flushed to disk
and moved over the old one with `os.replace`, so a crash (even `kill -9`) at any moment
leaves the previous file complete and loadable.
"""

import os
import tempfile
import zipfile

import keras

from keras_trust.agents.validation import require_built
from keras_trust.rollout import env_state as env_state_io
from keras_trust.spaces import space_from_config, space_to_config

# Constructor arguments stored as attributes of the same name (and so in `get_config`).
HYPERPARAMETERS = (
    "n_envs n_steps batch_size gamma gae_lambda normalize_observations normalize_rewards "
    "normalize_advantage hidden_sizes activation log_std_init sde_sample_freq use_action_masks"
).split()
# The entry of the agent's own weights in a `.keras` file that holds its `env_state`.
ENV_STATE_KEY = "env_state"


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


class Persistence:
    """`save`, `export` and the Keras configs of an `Agent` (a mixin before `keras.Model`)."""

    def save_own_variables(self, store):
        super().save_own_variables(store)
        if self.env_state is not None:
            store[ENV_STATE_KEY] = env_state_io.pack(self.env_state)

    def load_own_variables(self, store):
        keys = list(store.keys())
        if ENV_STATE_KEY in keys:
            self.env_state = env_state_io.unpack(store[ENV_STATE_KEY])
        super().load_own_variables({k: store[k] for k in keys if k != ENV_STATE_KEY})

    def save(self, filepath, overwrite=True, **kwargs):
        """Saves the agent to a `.keras` file, atomically (temporary file + rename).

        A crash mid-write leaves any previous file at `filepath` intact and loadable.
        """
        require_built(self)
        atomic_save(
            lambda tmp: super(Persistence, self).save(tmp, overwrite=True, **kwargs),
            filepath,
            overwrite,
        )

    def export(self, filepath, format="tf_saved_model", verbose=False, **kwargs):
        """Exports the deterministic policy; it runs without keras_trust.

        Args:
            filepath: a directory for SavedModel, a file for TFLite and ONNX.
            format: `"tf_saved_model"` (default; `serving_default` maps a float32
                observation batch to the action batch, plus a `value` endpoint),
                `"tflite"` or `"onnx"` (the `export` extra).
        """
        require_built(self)
        from keras_trust.export import export

        export(self, filepath, format=format)

    def get_build_config(self):
        return build_config(self) if self.built else None

    def build_from_config(self, config):
        self.build_for(*build_arguments(config))

    def get_compile_config(self):
        return compile_config(self)

    def compile_from_config(self, config):
        self.compile(**compile_arguments(config))

    def get_config(self):
        config = {key: getattr(self, key) for key in HYPERPARAMETERS}
        config["hidden_sizes"] = list(self.hidden_sizes)
        config["action_distribution"] = self.action_distribution_name
        return {
            "name": self.name,
            "policy": serialize_optional(self.policy_model),
            "value": serialize_optional(self.value_model),
            **config,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("policy", "value"):
            config[key] = deserialize_optional(config.get(key))
        return cls(**config)
