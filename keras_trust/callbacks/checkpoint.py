"""Periodic, crash-safe saving of an agent during `fit`."""

import os

import keras


class AgentCheckpoint(keras.callbacks.Callback):
    """Saves the agent every `save_freq` epochs, atomically.

    The file is written to a temporary file in the same directory and moved over the
    old one with `os.replace`, so a crash (even `kill -9`) at any moment leaves the
    previous checkpoint complete and loadable with `kt.load_agent`.

    Args:
        filepath: `.keras` path; may contain `{epoch}` and `{timesteps}` fields.
        save_freq: save every this many epochs (one epoch = rollout + update).
            Defaults to `1`.

    Example:
    >>> ckpt = AgentCheckpoint("runs/agent.keras", save_freq=5)
    >>> agent.fit("CartPole-v1", 100_000, callbacks=[ckpt])  # doctest: +SKIP
    """

    def __init__(self, filepath, save_freq: int = 1):
        super().__init__()
        filepath = os.fspath(filepath)
        if not filepath.endswith(".keras"):
            raise ValueError(f"filepath must end in '.keras'. Received: filepath={filepath!r}")
        if not isinstance(save_freq, int) or save_freq < 1:
            raise ValueError(f"save_freq must be a positive integer. Received: {save_freq!r}")
        self.filepath = filepath
        self.save_freq = save_freq
        self.last_saved = None

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.save_freq == 0:
            path = self.filepath.format(epoch=epoch + 1, timesteps=self.model.num_timesteps)
            self.model.save(path)
            self.last_saved = path
