"""A CSV file of every epoch's logs whose columns are exactly the keys that were logged."""

import csv
import io
import math
import os

import keras

from keras_trust.agents.saving import atomic_write


class MetricsLogger(keras.callbacks.Callback):
    """Writes one CSV row per epoch: `epoch`, then a column per log key.

    `keras.callbacks.CSVLogger` fixes its columns at the first epoch and, when none of
    them starts with `val_`, adds an empty `val_<key>` twin of every key (it assumes a
    validation that runs every few epochs); an agent has no validation data, so every
    metric got a column of `NA`. It also drops keys that first appear later, such as
    `EvalCallback`'s `eval_return` every `eval_freq` epochs. Here a key seen for the
    first time adds a column (the file is then rewritten, atomically, with the new
    header); epochs without it leave the cell empty. Other epochs append one line.

    With `append=True` an existing file is continued; rows of epochs the agent has not
    trained yet (`agent.epochs_trained` at the start of `fit`, e.g. those written after
    the last checkpoint by a run that crashed) are dropped first, so a resumed run's
    file has each epoch once.

    Args:
        filename: the CSV file.
        append: continue an existing file instead of replacing it. Defaults to `False`.

    Example:
    >>> logger = MetricsLogger("runs/metrics.csv")
    >>> agent.fit("CartPole-v1", 50_000, callbacks=[logger])  # doctest: +SKIP
    """

    def __init__(self, filename, append: bool = False):
        super().__init__()
        self.filename = os.fspath(filename)
        self.append = bool(append)
        self.keys: list[str] = []
        self.rows: list[dict] = []

    def on_train_begin(self, logs=None):
        self.keys, self.rows = [], []
        if self.append and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                reader = csv.DictReader(f)
                self.keys = [k for k in reader.fieldnames or [] if k != "epoch"]
                self.rows = list(reader)
            trained = getattr(self.model, "epochs_trained", None)
            if trained is not None:
                kept = [r for r in self.rows if _epoch(r) < trained]
                if len(kept) != len(self.rows):
                    self.rows = kept
                    self._rewrite()
        else:
            self._rewrite()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": str(epoch), **{k: _cell(v) for k, v in logs.items()}}
        self.rows.append(row)
        new = sorted(k for k in logs if k not in self.keys)
        if new:
            self.keys.extend(new)
            self._rewrite()
        else:
            with open(self.filename, "a", newline="") as f:
                self._writer(f).writerow(row)

    def _writer(self, f):
        return csv.DictWriter(f, fieldnames=["epoch", *self.keys], restval="")

    def _rewrite(self) -> None:
        """Writes the header and all rows anew (atomically: a crash keeps the old file)."""
        buffer = io.StringIO()
        writer = self._writer(buffer)
        writer.writeheader()
        writer.writerows(self.rows)
        write_text_atomically(self.filename, buffer.getvalue())


def write_text_atomically(path, text: str) -> None:
    """Writes `text` to a temporary file beside `path`, then moves it over `path`."""

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            f.write(text)

    atomic_write(write, path)


def _epoch(row) -> float:
    try:
        return float(row.get("epoch"))
    except (TypeError, ValueError):
        return math.inf


def _cell(value) -> str:
    """A log value as CSV text: floats with all their digits (`repr`), else `str`."""
    if isinstance(value, float):
        return repr(value)
    return str(value)
