"""Long-run resource benchmark: does a long `fit` hold RSS, objects, files and threads flat?

Users leave training running for hours, so anything that grows per epoch (a Python list
that is never trimmed, a `tf.function` retraced every epoch, a file or thread opened per
checkpoint, Ray object refs that are never released) eventually kills the run. This
benchmark trains CartPole PPO for 1M env steps (the shipped preset: 64 envs x 16 steps,
1024 steps per epoch) or, with `--ray`, PPO on `kt.distributed.RaySampler(num_workers=2,
envs_per_worker=4)` for 300k steps, and every `--every` epochs records, from a Keras
callback:

- env steps (`agent.num_timesteps`) and wall time;
- RSS of the driver (`VmRSS` of `/proc/self/status`; `/proc` rather than psutil so that
  the benchmark needs nothing beyond the library's own dependencies);
- threads (`threading.active_count()`, Python's, and `Threads` of `/proc/self/status`,
  which also counts TensorFlow's and Ray's native threads);
- open file descriptors (`/proc/self/fd`);
- Python objects tracked by the garbage collector after `gc.collect()`, and among them
  the TensorFlow objects whose growth would mean a leak: variables (`tf.Variable` and
  `keras.Variable`), `tf.function`s, concrete functions and `FuncGraph`s;
- functions registered in the eager context (`context.list_function_names()`), which
  grows by one or more each time anything is traced, so a retrace per epoch shows here
  even when the Python objects are collected;
- with `--ray`: each worker's RSS, threads and fds (its pid asked once per sample through
  `__ray_call__`, then read from `/proc/<pid>` here, since the workers run on this
  machine), and the summed RSS of all processes under the driver (raylet, GCS, workers).

It writes `benchmarks/results/long_run_<name>.json` (all samples, the summary, the
Python types whose counts grew most between the end of warm-up and the last sample) and
`long_run_<name>.png` (the curves), and prints the summary: RSS growth per 100k steps
from a least-squares line through the second half of the samples (the first half holds
start-up: tracing, allocator pools, Ray start), and first vs last thread, fd and object
counts.

Usage:
    python benchmarks/bench_long_run.py                        # 1M steps, name "ppo"
    python benchmarks/bench_long_run.py --ray --timesteps 300000  # name "ray"
"""

import argparse
import collections
import datetime
import gc
import json
import os
import platform
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")  # no display on CI or a server; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.python.eager import context  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ENV = "CartPole-v1"
# Python types counted by name on every sample (gc-tracked instances).
TF_TYPES = ("Function", "ConcreteFunction", "AtomicFunction", "FuncGraph")


def proc_status(pid="self"):
    """`VmRSS` (MB) and `Threads` of `/proc/<pid>/status`; None values if it is gone."""
    out = {"rss_mb": None, "threads": None}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_mb"] = int(line.split()[1]) / 1024.0
                elif line.startswith("Threads:"):
                    out["threads"] = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def open_fds(pid="self"):
    """Number of open file descriptors of `pid` (None if unreadable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, PermissionError):
        return None


def descendants(pid):
    """Pids of all processes below `pid`, from the `PPid` field of `/proc/*/stat`."""
    children = collections.defaultdict(list)
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name (field 2) may hold spaces; the fields after its ')' are fixed.
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        children[ppid].append(int(name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def heap_census():
    """`gc.collect()`, then the count of every gc-tracked Python type (by qualified name)."""
    gc.collect()
    objects = gc.get_objects()
    counts = collections.Counter(f"{type(o).__module__}.{type(o).__qualname__}" for o in objects)
    variables = sum(isinstance(o, tf.Variable | keras.Variable) for o in objects)
    del objects
    return counts, variables


class ResourceMonitor(keras.callbacks.Callback):
    """Records process resources every `every` epochs (and on the first and last epoch).

    A callback, not a thread polling from outside, so that every sample is taken at the
    same point of the loop (after the update, between epochs) and nothing transient of
    the epoch is counted. `sampler` is the `RaySampler`, if any, whose workers are
    measured too. `samples` is the list of dicts; `census` holds the per-type counts at
    the first sample after `warmup_epochs` and at the last one.
    """

    def __init__(self, every=10, warmup_epochs=0, sampler=None):
        super().__init__()
        self.every = int(every)
        self.warmup_epochs = int(warmup_epochs)
        self.sampler = sampler
        self.samples = []
        self.census = {}
        self._start = None

    def on_train_begin(self, logs=None):
        # The first isinstance scan over the heap leaves ~67k objects behind (weakrefs and
        # builtins cached by the ABC checks of tf/keras.Variable): a throwaway census here
        # keeps that artifact of the measurement out of the samples.
        heap_census()
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if epoch % self.every == 0:
            self.samples.append(self.sample(epoch))

    def on_train_end(self, logs=None):
        epoch = int(self.model.epochs_trained) - 1
        if not self.samples or self.samples[-1]["epoch"] != epoch:
            self.samples.append(self.sample(epoch))
        self.census["last"] = self._last_counts

    def sample(self, epoch):
        counts, variables = heap_census()
        self._last_counts = counts
        if "warm" not in self.census and epoch >= self.warmup_epochs:
            self.census["warm"] = counts
        status = proc_status()
        row = {
            "epoch": int(epoch),
            "timesteps": int(self.model.num_timesteps),
            "seconds": time.perf_counter() - self._start,
            "rss_mb": status["rss_mb"],
            "threads_os": status["threads"],
            "threads_py": threading.active_count(),
            "fds": open_fds(),
            "gc_objects": int(sum(counts.values())) - self._own_objects(),
            "tf_variables": int(variables),
            "eager_functions": len(context.context().list_function_names()),
        }
        for name in TF_TYPES:
            row[f"n_{name}"] = int(sum(n for t, n in counts.items() if t.endswith("." + name)))
        row.update(self.ray_sample())
        return row

    def _own_objects(self):
        """gc-tracked objects of this monitor's records (a Ray sample holds 4 lists and
        its dict), left out of `gc_objects` so that the count shows the library's heap."""
        return sum(gc.is_tracked(v) for row in self.samples for v in (row, *row.values()))

    def ray_sample(self):
        if self.sampler is None or not getattr(self.sampler, "workers", None):
            return {}
        import ray

        pids = ray.get(
            [w.__ray_call__.remote(lambda _self: os.getpid()) for w in self.sampler.workers]
        )
        row = {"worker_pids": pids}
        for key, fn in (
            ("rss_mb", lambda p: proc_status(p)["rss_mb"]),
            ("threads", lambda p: proc_status(p)["threads"]),
            ("fds", open_fds),
        ):
            row[f"worker_{key}"] = [fn(p) for p in pids]
        tree = descendants(os.getpid())
        row["tree_processes"] = len(tree)
        row["tree_rss_mb"] = proc_status()["rss_mb"] + sum(
            proc_status(p)["rss_mb"] or 0.0 for p in tree
        )
        return row


def slope_per_100k(samples, key):
    """Least-squares growth of `key` per 100k env steps over the second half of samples."""
    half = samples[len(samples) // 2 :]
    x = np.array([s["timesteps"] for s in half], dtype=float)
    y = np.array([s[key] for s in half], dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return None
    return float(np.polyfit(x, y, 1)[0] * 1e5)


def summarize(samples, census, wall, ray_run):
    first, last, mid = samples[0], samples[-1], samples[len(samples) // 2]
    summary = {
        "timesteps": last["timesteps"],
        "fit_seconds": wall,
        "samples": len(samples),
        "rss_mb_first_mid_last": [first["rss_mb"], mid["rss_mb"], last["rss_mb"]],
        "rss_mb_max": max(s["rss_mb"] for s in samples),
        "rss_mb_per_100k_steps_second_half": slope_per_100k(samples, "rss_mb"),
        "gc_objects_per_100k_steps_second_half": slope_per_100k(samples, "gc_objects"),
    }
    for key in (
        "threads_os",
        "threads_py",
        "fds",
        "gc_objects",
        "tf_variables",
        "eager_functions",
        *(f"n_{t}" for t in TF_TYPES),
    ):
        summary[f"{key}_first_mid_last"] = [first[key], mid[key], last[key]]
    if ray_run and "worker_rss_mb" in last:
        summary["worker_rss_mb_first_mid_last"] = [
            first.get("worker_rss_mb"),
            mid.get("worker_rss_mb"),
            last["worker_rss_mb"],
        ]
        summary["worker_threads_first_last"] = [first.get("worker_threads"), last["worker_threads"]]
        summary["worker_fds_first_last"] = [first.get("worker_fds"), last["worker_fds"]]
        summary["tree_rss_mb_first_mid_last"] = [
            first.get("tree_rss_mb"),
            mid.get("tree_rss_mb"),
            last["tree_rss_mb"],
        ]
        summary["tree_processes_first_last"] = [first.get("tree_processes"), last["tree_processes"]]
        per_worker = []
        for k in range(len(last["worker_rss_mb"])):
            half = [s for s in samples[len(samples) // 2 :] if "worker_rss_mb" in s]
            rows = [{"timesteps": s["timesteps"], "v": s["worker_rss_mb"][k]} for s in half]
            per_worker.append(slope_per_100k(rows, "v"))
        summary["worker_rss_mb_per_100k_steps_second_half"] = per_worker
        summary["tree_rss_mb_per_100k_steps_second_half"] = slope_per_100k(
            [s for s in samples if "tree_rss_mb" in s], "tree_rss_mb"
        )
    if "warm" in census and "last" in census:
        diff = census["last"].copy()
        diff.subtract(census["warm"])
        summary["types_grown_most_second_half"] = dict(
            (t, n) for t, n in diff.most_common(12) if n > 0
        )
    return summary


def plot(samples, path, title):
    steps = np.array([s["timesteps"] for s in samples]) / 1e3
    panels = [
        ("rss_mb", "RSS (MB)"),
        ("gc_objects", "gc objects"),
        ("threads_os", "threads (OS)"),
        ("fds", "open fds"),
        ("tf_variables", "tf/keras variables"),
        ("eager_functions", "eager functions"),
    ]
    fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
    for ax, (key, label) in zip(axes.flat, panels):
        ax.plot(steps, [s[key] for s in samples], label="driver")
        if key == "rss_mb" and "worker_rss_mb" in samples[-1]:
            ray_rows = [s for s in samples if "worker_rss_mb" in s]
            x = np.array([s["timesteps"] for s in ray_rows]) / 1e3
            for k in range(len(samples[-1]["worker_rss_mb"])):
                ax.plot(x, [s["worker_rss_mb"][k] for s in ray_rows], label=f"worker {k}")
            ax.legend(fontsize=7)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps (k)", fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--timesteps",
        type=int,
        default=None,
        help="env steps (default 1_000_000; 300_000 with --ray)",
    )
    parser.add_argument("--ray", action="store_true", help="collect on 2 Ray workers x 4 envs")
    parser.add_argument(
        "--every",
        type=int,
        default=None,
        help="epochs between samples (default: about 60 samples in all)",
    )
    parser.add_argument("--name", default=None, help="results name (default ppo or ray)")
    parser.add_argument("--out", default=RESULTS, help="results directory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    name = args.name or ("ray" if args.ray else "ppo")
    timesteps = args.timesteps or (300_000 if args.ray else 1_000_000)

    sampler = None
    if args.ray:
        import ray

        # Own init so that the sampler leaves Ray up until the last sample is taken.
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        sampler = kt.distributed.RaySampler(num_workers=2, envs_per_worker=4)
        agent = kt.PPO(n_envs=8, n_steps=256, batch_size=256)
        agent.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-5))
        config = "PPO(n_envs=8, n_steps=256, batch_size=256), RaySampler(2 workers x 4 envs)"
    else:
        agent = kt.presets.make_agent("ppo", ENV)
        config = 'presets.make_agent("ppo", "CartPole-v1"): 64 envs x 16 steps'
    steps_per_epoch = agent.n_envs * agent.n_steps
    n_epochs = -(-timesteps // steps_per_epoch)
    every = args.every or max(1, n_epochs // 60)
    monitor = ResourceMonitor(every=every, warmup_epochs=n_epochs // 2, sampler=sampler)
    start = time.perf_counter()
    try:
        agent.fit(ENV, timesteps, seed=args.seed, verbose=0, callbacks=[monitor], sampler=sampler)
    finally:
        wall = time.perf_counter() - start
        if args.ray:
            import ray

            ray.shutdown()
    samples = monitor.samples
    summary = summarize(samples, monitor.census, wall, args.ray)
    result = {
        "benchmark": "long_run",
        "name": name,
        "config": config,
        "env": ENV,
        "timesteps": timesteps,
        "steps_per_epoch": steps_per_epoch,
        "sample_every_epochs": every,
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "versions": {
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
        },
        "summary": summary,
        "samples": samples,
    }
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"long_run_{name}.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1)
    png_path = os.path.join(args.out, f"long_run_{name}.png")
    plot(samples, png_path, f"{config}, {summary['timesteps']:,} steps")
    s = summary
    print(f"{name}: {s['timesteps']:,} steps in {wall:.0f} s, {len(samples)} samples")
    print(
        f"  RSS MB first/mid/last {s['rss_mb_first_mid_last']}, "
        f"slope (2nd half) {s['rss_mb_per_100k_steps_second_half']:+.2f} MB/100k steps"
    )
    for key in ("threads_os", "threads_py", "fds", "gc_objects", "tf_variables", "eager_functions"):
        print(f"  {key} first/mid/last {s[key + '_first_mid_last']}")
    for key in (
        "worker_rss_mb_first_mid_last",
        "worker_rss_mb_per_100k_steps_second_half",
        "worker_threads_first_last",
        "worker_fds_first_last",
        "tree_rss_mb_first_mid_last",
        "tree_rss_mb_per_100k_steps_second_half",
        "types_grown_most_second_half",
    ):
        if key in s:
            print(f"  {key} {s[key]}")
    print(f"wrote {json_path} and {png_path}")


if __name__ == "__main__":
    main()
