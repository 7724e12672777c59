"""What `fit` reports each epoch: episode statistics, callbacks, the progress bar."""

from collections import deque

import keras
import numpy as np

# Per-epoch log entries shown by the progress bar (`eval_return` once there is one).
PROGRESS_KEYS = ("episode_return", "eval_return", "policy_loss", "value_loss", "kl", "fps")


class EpochReporter:
    """Keeps the last 100 episodes and hands each epoch's logs to the callbacks and the bar.

    A callback with an `update_logs(epoch, logs)` method (`kt.callbacks.EvalCallback`)
    is asked to add its entries to the epoch's logs before any callback's
    `on_epoch_end` runs: Keras hands every callback one copy of the logs, in list
    order, so entries added inside `on_epoch_end` would be missed by the callbacks
    before it (a `CSVLogger` listed first) and by the progress bar.

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
        self.log_updaters = [
            cb for cb in self.callbacks.callbacks if callable(getattr(cb, "update_logs", None))
        ]
        self.verbose = verbose
        self.steps_per_epoch = steps_per_epoch
        # Stateful: the bar shows each epoch's value. Without it, Progbar averages every
        # value over the whole run (weighted by steps), so at step 60k a return of ~500
        # showed as 152.8.
        self.progbar = (
            keras.utils.Progbar(
                n_epochs * steps_per_epoch, stateful_metrics=PROGRESS_KEYS, unit_name="step"
            )
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
        for callback in self.log_updaters:
            callback.update_logs(epoch, logs)
        self.callbacks.on_epoch_end(epoch, logs)
        if self.progbar is not None:
            shown = [(k, logs[k]) for k in PROGRESS_KEYS if k in logs]
            self.progbar.update((i + 1) * self.steps_per_epoch, shown)
        elif self.verbose == 2:
            print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
