"""What `fit` reports each epoch: episode statistics, callbacks, the progress bar."""

from collections import deque

import keras
import numpy as np

# Per-epoch log entries shown by the progress bar.
PROGRESS_KEYS = ("episode_return", "policy_loss", "value_loss", "kl", "fps")


class EpochReporter:
    """Keeps the last 100 episodes and hands each epoch's logs to the callbacks and the bar.

    Args:
        agent: the agent being trained (the callbacks' `model`).
        callbacks: list of `keras.callbacks.Callback` (or None).
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
        n_epochs: epochs of this `fit`.
        steps_per_epoch: env steps per epoch.
    """

    def __init__(self, agent, callbacks, verbose, n_epochs, steps_per_epoch):
        self.callbacks = keras.callbacks.CallbackList(
            callbacks, add_history=True, model=agent, verbose=verbose, epochs=n_epochs
        )
        self.verbose = verbose
        self.steps_per_epoch = steps_per_epoch
        self.progbar = (
            keras.utils.Progbar(n_epochs * steps_per_epoch, unit_name="step")
            if verbose == 1
            else None
        )
        self.episodes = deque(maxlen=100)

    def add_episodes(self, returns, lengths) -> None:
        self.episodes.extend(zip(returns, lengths))

    def episode_logs(self, new_episodes: int) -> dict:
        """Mean return and length over the last 100 episodes (NaN before the first)."""
        returns = [r for r, _ in self.episodes]
        lengths = [n for _, n in self.episodes]
        return {
            "episode_return": float(np.mean(returns)) if returns else float("nan"),
            "episode_length": float(np.mean(lengths)) if returns else float("nan"),
            "episodes": float(new_episodes),
        }

    def end_epoch(self, i, epoch, logs) -> None:
        """Callbacks' batch and epoch ends, then the progress bar or the epoch's line."""
        self.callbacks.on_train_batch_end(0, logs)
        self.callbacks.on_epoch_end(epoch, logs)
        if self.progbar is not None:
            shown = [(k, logs[k]) for k in PROGRESS_KEYS]
            self.progbar.update((i + 1) * self.steps_per_epoch, shown)
        elif self.verbose == 2:
            print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
