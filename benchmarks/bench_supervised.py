"""Supervised learning with the curvature optimizers against Adam and SGD.

`kt.supervised.CurvatureModel(model).fit(...)` with `NaturalGradient` and `TrustRegion`
(the Fisher of the loss's predictive distribution as metric) against Keras's `Adam` and
`SGD` on the same model, data, batches and seeds, on two small problems that ship with
scikit-learn (no downloads):

- digits (`sklearn.datasets.load_digits`): 1797 8x8 images, 10 classes; an MLP
  64-64(tanh)-10 with softmax cross-entropy on logits; 80/20 stratified split.
- diabetes (`sklearn.datasets.load_diabetes`): 442 patients, 10 features, a disease
  progression target (standardized); an MLP 10-32(tanh)-1 with MSE; 80/20 split.

Every optimizer runs the same number of epochs (60 on digits, so that Adam and SGD, whose
epochs are cheaper, also get at least the curvature methods' wall time). Per epoch it
records the training loss (mean over the epoch's batches, at each step's starting
weights, as Keras logs it), the test loss and accuracy (digits) or R^2 (diabetes), and
the cumulative wall time of training (the test evaluation excluded; the first epoch
includes tracing the train function). Every optimizer sees the same seeds (weights, batch
order). The settings are each method's defaults (Keras's Adam 1e-3, `max_kl=0.01`, SGD
0.01 with momentum 0.9), not tuned per problem; a seed-0 probe of alternatives is in
`docs/supervised.md`.

Writes `benchmarks/results/supervised.json` and `benchmarks/results/supervised.md`.

Usage: `python benchmarks/bench_supervised.py [--seeds 3] [--quick]` (about 3 minutes on
2 CPU cores; `--quick` is a smoke run of seconds).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.datasets import load_diabetes, load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

OPTIMIZERS = {
    "NaturalGradient(max_kl=0.01)": lambda: kt.optimizers.NaturalGradient(max_kl=0.01),
    "TrustRegion(max_kl=0.01)": lambda: kt.optimizers.TrustRegion(max_kl=0.01),
    "Adam(1e-3)": lambda: keras.optimizers.Adam(1e-3),
    "SGD(0.01, momentum 0.9)": lambda: keras.optimizers.SGD(0.01, momentum=0.9),
}


def digits(seed):
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, data.target, test_size=0.2, random_state=0, stratify=data.target
    )
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(64, activation="tanh"), keras.layers.Dense(10)]
    )
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return model, loss, ["accuracy"], (x_tr, y_tr), (x_te, y_te)


def diabetes(seed):
    data = load_diabetes()
    x_tr, x_te, y_tr, y_te = train_test_split(data.data, data.target, test_size=0.2, random_state=0)
    mean, std = x_tr.mean(0), x_tr.std(0)
    y_mean, y_std = y_tr.mean(), y_tr.std()

    def prepare(x, y):
        return ((x - mean) / std).astype(np.float32), ((y - y_mean) / y_std).astype(np.float32)

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(32, activation="tanh"), keras.layers.Dense(1)]
    )
    metrics = [keras.metrics.R2Score(name="r2")]
    return model, "mse", metrics, prepare(x_tr, y_tr), prepare(x_te, y_te)


PROBLEMS = {
    "digits": {
        "make": digits,
        "batch_size": 128,
        "epochs": 60,
        "score": "accuracy",
        "checkpoints": [1, 5, 20, 60],
        "budgets_s": [2, 4, 8],
    },
    "diabetes": {
        "make": diabetes,
        "batch_size": 32,
        "epochs": 30,
        "score": "r2",
        "checkpoints": [1, 5, 30],
        "budgets_s": [2, 4],
    },
}


class Clock(keras.callbacks.Callback):
    """Cumulative training wall time at each epoch's end, validation time excluded."""

    def on_train_begin(self, logs=None):
        self.start, self.excluded, self.times = time.perf_counter(), 0.0, []

    def on_test_begin(self, logs=None):
        self.test_start = time.perf_counter()

    def on_test_end(self, logs=None):
        self.excluded += time.perf_counter() - self.test_start

    def on_epoch_end(self, epoch, logs=None):
        self.times.append(time.perf_counter() - self.start - self.excluded)


def run(problem, optimizer, seed, epochs):
    spec = PROBLEMS[problem]
    model, loss, metrics, (x_tr, y_tr), test = spec["make"](seed)
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(optimizer=OPTIMIZERS[optimizer](), loss=loss, metrics=metrics)
    clock = Clock()
    tf.random.set_seed(seed)  # the batch order
    history = wrapped.fit(
        x_tr,
        y_tr,
        batch_size=spec["batch_size"],
        epochs=epochs,
        validation_data=test,
        callbacks=[clock],
        verbose=0,
    )
    h = history.history
    score = spec["score"]
    return {
        "problem": problem,
        "optimizer": optimizer,
        "seed": seed,
        "time": clock.times,
        "train_loss": h["loss"],
        "test_loss": h["val_loss"],
        f"test_{score}": h[f"val_{score}"],
        **({"kl": h["kl"], "accepted": h["accepted"]} if "kl" in h else {}),
    }


def mean_std(values):
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def at_time(run_, key, seconds):
    """The metric at the last epoch finished within `seconds` of training (None if none)."""
    done = [v for t, v in zip(run_["time"], run_[key]) if t <= seconds]
    return done[-1] if done else None


def summarize(runs, problem):
    spec = PROBLEMS[problem]
    score = spec["score"]
    rows = []
    for optimizer in OPTIMIZERS:
        mine = [r for r in runs if r["problem"] == problem and r["optimizer"] == optimizer]
        epochs = len(mine[0]["time"])
        checkpoints = sorted({min(e, epochs) - 1 for e in spec["checkpoints"]})
        steady = [
            statistics.median(np.diff(r["time"])) if epochs > 1 else r["time"][0] for r in mine
        ]
        row = {
            "optimizer": optimizer,
            "seeds": len(mine),
            "epochs": epochs,
            "first_epoch_s": mean_std([r["time"][0] for r in mine]),
            "epoch_s": mean_std(steady),
            "total_s": mean_std([r["time"][-1] for r in mine]),
        }
        for e in checkpoints:
            row[f"test_{score}@{e + 1}"] = mean_std([r[f"test_{score}"][e] for r in mine])
            row[f"test_loss@{e + 1}"] = mean_std([r["test_loss"][e] for r in mine])
            row[f"train_loss@{e + 1}"] = mean_std([r["train_loss"][e] for r in mine])
        best = [max(r[f"test_{score}"]) for r in mine]
        row[f"best_test_{score}"] = mean_std(best)
        row["best_epoch"] = mean_std([float(np.argmax(r[f"test_{score}"]) + 1) for r in mine])
        for seconds in spec["budgets_s"]:
            values = [at_time(r, f"test_{score}", seconds) for r in mine]
            row[f"test_{score}@{seconds}s"] = (
                mean_std(values) if all(v is not None for v in values) else None
            )
        rows.append(row)
    return rows


def fmt(value, digits=3):
    if value is None:
        return "-"
    mean, std = value
    return f"{mean:.{digits}f} +/- {std:.{digits}f}"


def markdown(result):
    lines = [
        "# Supervised: curvature optimizers vs Adam and SGD",
        "",
        f"{result['platform']}. {result['seeds']} seeds; mean +/- std over seeds. Time is "
        "training wall time (test evaluation excluded); the first epoch includes tracing.",
        "",
    ]
    for problem, rows in result["summary"].items():
        score = PROBLEMS[problem]["score"]
        keys = [k for k in rows[0] if k.startswith(f"test_{score}@") and not k.endswith("s")]
        budget_keys = [k for k in rows[0] if k.startswith(f"test_{score}@") and k.endswith("s")]
        header = (
            ["optimizer"]
            + [f"test {score}, epoch {k.split('@')[1]}" for k in keys]
            + [f"test loss, epoch {keys[-1].split('@')[1]}"]
            + [f"train loss, epoch {keys[-1].split('@')[1]}", f"best test {score} (epoch)"]
            + [f"test {score} after {k.split('@')[1]}" for k in budget_keys]
            + ["s/epoch (steady)", "1st epoch (s)"]
        )
        lines += [f"## {problem}", "", "| " + " | ".join(header) + " |"]
        lines.append("|---" + "|---:" * (len(header) - 1) + "|")
        for row in rows:
            cells = (
                [row["optimizer"]]
                + [fmt(row[k]) for k in keys]
                + [fmt(row[f"test_loss@{keys[-1].split('@')[1]}"])]
                + [fmt(row[f"train_loss@{keys[-1].split('@')[1]}"])]
                + [f"{fmt(row[f'best_test_{score}'])} ({row['best_epoch'][0]:.0f})"]
                + [fmt(row[k]) for k in budget_keys]
                + [fmt(row["epoch_s"], 2), fmt(row["first_epoch_s"], 2)]
            )
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 seed, 2 epochs")
    args = parser.parse_args()
    seeds = 1 if args.quick else args.seeds
    start, load = time.time(), os.getloadavg()
    runs = []
    for problem, spec in PROBLEMS.items():
        epochs = 2 if args.quick else spec["epochs"]
        for seed in range(seeds):
            for optimizer in OPTIMIZERS:
                r = run(problem, optimizer, seed, epochs)
                runs.append(r)
                score = spec["score"]
                print(
                    f"{problem} {optimizer} seed {seed}: test {score} "
                    f"{r[f'test_{score}'][-1]:.3f} in {r['time'][-1]:.1f}s",
                    flush=True,
                )
    result = {
        "date": datetime.date.today().isoformat(),
        "platform": (
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, Python "
            f"{platform.python_version()}, {os.cpu_count()} CPU cores, load average "
            f"{[round(v, 2) for v in load]} at start and "
            f"{[round(v, 2) for v in os.getloadavg()]} at end"
        ),
        "seeds": seeds,
        "wall_s": round(time.time() - start, 1),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
        "summary": {p: summarize(runs, p) for p in PROBLEMS},
        "runs": runs,
    }
    if args.quick:
        print(markdown(result))
        return
    with open(os.path.join(RESULTS, "supervised.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(RESULTS, "supervised.md"), "w") as f:
        f.write(markdown(result) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
