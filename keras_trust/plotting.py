"""Learning-curve plots of run directories (their `metrics.csv`), drawn with matplotlib.

matplotlib (the `plot` extra) is imported only when a figure is drawn, with the
non-interactive Agg backend, so the rest of keras_trust never needs it.

Example:
>>> from keras_trust import plotting
>>> plotting.plot_runs(["runs/a", "runs/b"], "curves.png")  # doctest: +SKIP
"""

import csv
import json
import math
import os
import warnings
from typing import NamedTuple

import numpy as np

# Panels, each drawn when at least one run logged one of its columns:
# (y-axis label, ((column, series name or None), ...)).
PANELS = (
    (
        "episode return",
        (("episode_return", "training"), ("eval_return", "evaluation")),
    ),
    ("KL(old || new)", (("kl", None),)),
    ("KL penalty beta", (("beta", None),)),
    ("line-search backtracks", (("backtracks", None),)),
)
# Columns logged only on some epochs (EvalCallback's): drawn at their own points.
SPARSE_COLUMNS = ("eval_return",)


class Band(NamedTuple):
    """Several runs' curves on a common x grid: their mean and min/max envelope."""

    x: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    count: int


def read_metrics(path) -> dict[str, np.ndarray]:
    """The columns of a `metrics.csv` (a run directory or the file) as float arrays.

    Cells that are empty or not numbers become NaN (e.g. `episode_return` before the
    first episode ends).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.csv")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns = {}
    for key in rows[0].keys() if rows else ():
        columns[key] = np.array([_to_float(row.get(key)) for row in rows], dtype=np.float64)
    return columns


def _to_float(cell) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError):
        return math.nan


def run_label(run_dir) -> str:
    """`"ALGO ENV_ID"` from the run's `config.json`, else the directory's name."""
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            config = json.load(f)
        return f"{config['algo']} {config['env_id']}"
    except (OSError, ValueError, KeyError):
        return os.path.basename(os.path.normpath(run_dir))


def timesteps_of(metrics: dict[str, np.ndarray]) -> np.ndarray:
    """The x axis: the `timesteps` column, else the epoch number (from 1)."""
    if "timesteps" in metrics:
        return metrics["timesteps"]
    if "epoch" in metrics:
        return metrics["epoch"] + 1
    n = len(next(iter(metrics.values()))) if metrics else 0
    return np.arange(1, n + 1, dtype=np.float64)


def aggregate(curves: list[tuple[np.ndarray, np.ndarray]]) -> Band:
    """Mean and min/max of several `(x, y)` curves, on the first curve's x grid.

    The grid is cut to the range every curve covers; curves are linearly interpolated
    onto it. NaN points (no episode finished yet) are dropped before interpolating, and
    grid points a curve has no data for yet stay NaN for that curve.

    Args:
        curves: `(x, y)` pairs, `x` increasing.

    Returns:
        A `Band`.
    """
    if not curves:
        raise ValueError("aggregate() needs at least one curve.")
    end = min(float(np.max(x)) for x, _ in curves if len(x))
    grid = np.asarray(curves[0][0], dtype=np.float64)
    grid = grid[grid <= end]
    stacked = np.full((len(curves), len(grid)), np.nan)
    for i, (x, y) in enumerate(curves):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        ok = np.isfinite(y) & np.isfinite(x)
        if not ok.any():
            continue
        values = np.interp(grid, x[ok], y[ok])
        values[grid < x[ok][0]] = np.nan
        stacked[i] = values
    with warnings.catch_warnings():  # all-NaN columns (no episode yet) give NaN quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(stacked, axis=0)
        low = np.nanmin(stacked, axis=0)
        high = np.nanmax(stacked, axis=0)
    return Band(grid, mean, low, high, len(curves))


def _pyplot():
    try:
        import matplotlib
    except ImportError as e:
        raise ImportError(
            "Plotting needs matplotlib: pip install 'keras-trust[plot]' (or pip install "
            "matplotlib)."
        ) from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _draw(ax, runs, key, name, color, style) -> None:
    """One series of one group of runs: the mean line, and the min-max band of several."""
    curves = []
    for m in runs:
        if key not in m:
            continue
        x, y = timesteps_of(m), m[key]
        if key in SPARSE_COLUMNS:  # only the epochs that evaluated
            ok = np.isfinite(y)
            x, y = x[ok], y[ok]
        if len(x):
            curves.append((x, y))
    if not curves:
        return
    band = aggregate(curves)
    if band.count > 1:
        name = f"{name} (mean of {band.count}, min-max)"
    marker = "o" if len(band.x) <= 20 or key in SPARSE_COLUMNS else None
    linestyle = ("-", "--", ":")[style % 3]
    ax.plot(band.x, band.mean, color=color, label=name, marker=marker, markersize=3, ls=linestyle)
    if band.count > 1:
        ax.fill_between(band.x, band.low, band.high, color=color, alpha=0.2, lw=0)


def plot_runs(run_dirs, filepath, title: str | None = None) -> str:
    """Draws the learning curves of `run_dirs` into one PNG (or any matplotlib format).

    Runs with the same label (algorithm and env, from `config.json`) are one curve: the
    mean over runs with a min-max band. Panels: the return against timesteps, both the
    training return (of the stochastic policy, mean of the last 100 episodes, solid)
    and `EvalCallback`'s evaluation return (deterministic by default, dashed, at the
    epochs it evaluated); then the KL, the penalty beta and the TRPO backtracks for
    runs that logged them.

    Args:
        run_dirs: run directories, each holding a `metrics.csv` written by training.
        filepath: the image to write.
        title: figure title. Defaults to none.

    Returns:
        `filepath`.
    """
    run_dirs = [os.fspath(d) for d in ([run_dirs] if isinstance(run_dirs, str) else run_dirs)]
    if not run_dirs:
        raise ValueError("plot_runs() needs at least one run directory.")
    groups: dict[str, list[dict]] = {}
    for run_dir in run_dirs:
        metrics = read_metrics(run_dir)
        if not metrics:
            raise ValueError(f"{os.path.join(run_dir, 'metrics.csv')} has no rows.")
        groups.setdefault(run_label(run_dir), []).append(metrics)

    def logged(key):
        return any(key in m and np.isfinite(m[key]).any() for runs in groups.values() for m in runs)

    panels = [(ylabel, series) for ylabel, series in PANELS if any(logged(k) for k, _ in series)]
    if not panels:
        panels = [PANELS[0]]
    plt = _pyplot()
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(7, 2.6 * len(panels) + 0.6), sharex=True, squeeze=False
    )
    for ax, (ylabel, series) in zip(axes[:, 0], panels):
        for i, (label, runs) in enumerate(groups.items()):
            for style, (key, name) in enumerate(series):
                _draw(ax, runs, key, f"{label} {name}" if name else label, f"C{i % 10}", style)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="best", fontsize="small")
    axes[-1, 0].set_xlabel("timesteps")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    directory = os.path.dirname(os.path.abspath(os.fspath(filepath)))
    os.makedirs(directory, exist_ok=True)
    fig.savefig(filepath, dpi=100)
    plt.close(fig)
    return filepath
