"""Benchmark: keras_trust PPO on CartPole-v1 with gymnasium's vector env vs EnvPool's.

Why: EnvPool steps its envs in C++ threads, gymnasium's `SyncVectorEnv` in a Python loop;
the difference should grow with the number of envs and vanish behind the agent's own
per-step cost with one env. This measures where it matters for `fit`.

For n_envs in 1, 8 and 64, the same PPO agent (a rollout of 2048 steps, n_steps =
2048 // n_envs, batch 256, 10 epochs, other arguments the defaults) trains on
"CartPole-v1" and on "envpool:CartPole-v1"; the two sources alternate run by run (the
order flips every repeat) so that a drift in the machine's load hits both alike. Each run
is a fresh agent and a fresh `fit` with seed = the repeat's index.

Reported per run: env steps per second of the whole `fit` (graph tracing in the first
epoch included), of the epochs after the first, and of the rollouts alone (the
`rollout_time` log: acting and env stepping, no update). A raw table also times the
vector envs' `step` alone (constant actions, no agent).

Writes `benchmarks/results/envpool.json` and `benchmarks/results/envpool.md`.

Usage: `python benchmarks/bench_envpool.py [--repeats 3] [--timesteps 32768] [--quick]`
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message=".*precision lowered")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
TASK = "CartPole-v1"
SOURCES = {"gymnasium": TASK, "envpool": "envpool:" + TASK}
ROLLOUT = 2048


class EpochLogs(keras.callbacks.Callback):
    """Keeps each epoch's logs and the wall clock at its end."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append((time.perf_counter(), dict(logs or {})))


def one_fit(source, n_envs, timesteps, seed):
    agent = kt.PPO(n_envs=n_envs, n_steps=ROLLOUT // n_envs, batch_size=256, epochs=10)
    logs = EpochLogs()
    start = time.perf_counter()
    agent.fit(SOURCES[source], timesteps, callbacks=[logs], verbose=0, seed=seed)
    wall = time.perf_counter() - start
    steps = agent.num_timesteps
    first_end = logs.epochs[0][0]
    rollout_s = sum(e[1]["rollout_time"] for e in logs.epochs)
    return {
        "source": source,
        "n_envs": n_envs,
        "seed": seed,
        "timesteps": steps,
        "fit_seconds": round(wall, 3),
        "steps_per_second": steps / wall,
        "steady_steps_per_second": (steps - ROLLOUT) / (start + wall - first_end),
        "rollout_steps_per_second": steps / rollout_s,
        "rollout_fraction": rollout_s / wall,
    }


def raw_step_rate(source, n_envs, seconds=1.0):
    """Env steps per second of the vector env's `step` alone, constant actions."""
    from keras_trust.rollout import make_vector_env

    vec, _ = make_vector_env(SOURCES[source], n_envs)
    vec.reset(seed=0)
    actions = np.ones(n_envs, np.int64)
    for _ in range(50):
        vec.step(actions)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            vec.step(actions)
        calls += 100
    rate = calls * n_envs / (time.perf_counter() - start)
    vec.close()
    return rate


def machine():
    import envpool
    import tensorflow as tf

    with open("/proc/cpuinfo") as f:
        names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    return {
        "cpu": names[0] if names else platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gymnasium": gym.__version__,
        "envpool": envpool.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def summarize(runs, sizes):
    rows = []
    for n in sizes:
        row = {"n_envs": n}
        for source in SOURCES:
            mine = [r for r in runs if r["n_envs"] == n and r["source"] == source]
            for key in ("steps_per_second", "steady_steps_per_second", "rollout_steps_per_second"):
                row[f"{source}_{key}"] = statistics.median(r[key] for r in mine)
        # Ratios pair by pair (run k of envpool over run k of gymnasium), then the median.
        pairs = list(
            zip(
                [r for r in runs if r["n_envs"] == n and r["source"] == "envpool"],
                [r for r in runs if r["n_envs"] == n and r["source"] == "gymnasium"],
            )
        )
        for key in ("steps_per_second", "steady_steps_per_second", "rollout_steps_per_second"):
            row[f"ratio_{key}"] = statistics.median(a[key] / b[key] for a, b in pairs)
        rows.append(row)
    return rows


def markdown(result):
    m = result["machine"]
    lines = [
        "# EnvPool vs gymnasium as keras_trust's env source (PPO, CartPole-v1)",
        "",
        f"Machine: {m['cpu_count']}-core CPU ({m['cpu']}), no GPU; Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, gymnasium {m['gymnasium']}, "
        f"envpool {m['envpool']}. Date: {m['date']}. Load average at start "
        f"{m['load_average_at_start']}, at end {result['load_average_at_end']}.",
        "",
    ]
    if result.get("note"):
        lines += [f"Note: {result['note']}", ""]
    lines += [
        f"PPO, rollout {ROLLOUT} steps (n_steps = {ROLLOUT} // n_envs), batch 256, 10 epochs; "
        f"{result['timesteps']} steps per run; {result['repeats']} runs per source and size, "
        "alternating. Medians over the runs; ratio = median of the pairwise envpool/gymnasium "
        "ratios.",
        "",
        "| n_envs | fit steps/s gymnasium | fit steps/s envpool | ratio | steady gymnasium "
        "| steady envpool | ratio | rollout gymnasium | rollout envpool | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["summary"]:
        cells = []
        for key in ("steps_per_second", "steady_steps_per_second", "rollout_steps_per_second"):
            cells += [
                f"{r['gymnasium_' + key]:.0f}",
                f"{r['envpool_' + key]:.0f}",
                f"{r['ratio_' + key]:.2f}x",
            ]
        lines.append(f"| {r['n_envs']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "fit: env steps over the wall time of `fit` (graph tracing included); steady: the "
        "epochs after the first; rollout: steps over the summed `rollout_time` logs (acting "
        "and env stepping, no update).",
        "",
        "## The vector env's `step` alone (constant actions, no agent)",
        "",
        "| n_envs | gymnasium SyncVectorEnv steps/s | EnvPool (adapter) steps/s | ratio |",
        "|---:|---:|---:|---:|",
    ]
    for r in result["raw"]:
        lines.append(
            f"| {r['n_envs']} | {r['gymnasium']:.0f} | {r['envpool']:.0f} "
            f"| {r['envpool'] / r['gymnasium']:.2f}x |"
        )
    lines += [
        "",
        "Each figure is the median of alternating one-second runs; EnvPool at its default "
        "`num_threads`.",
        "",
        f"Command: `python benchmarks/bench_envpool.py --repeats {result['repeats']} "
        f"--timesteps {result['timesteps']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timesteps", type=int, default=32768)
    parser.add_argument("--sizes", default="1,8,64")
    parser.add_argument("--note", default="")
    parser.add_argument("--quick", action="store_true", help="1 repeat, 4096 steps, no files")
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.timesteps = 1, 4096
    sizes = [int(s) for s in args.sizes.split(",")]
    result = {"machine": machine(), "repeats": args.repeats, "timesteps": args.timesteps}
    result["note"] = args.note
    runs = []
    for n in sizes:
        for k in range(args.repeats):
            order = list(SOURCES) if k % 2 == 0 else list(SOURCES)[::-1]
            for source in order:
                run = one_fit(source, n, args.timesteps, seed=k)
                runs.append(run)
                print(json.dumps(run), flush=True)
    raw = []
    for n in sizes:
        rates = {s: [] for s in SOURCES}
        for k in range(max(3, args.repeats)):
            for source in list(SOURCES) if k % 2 == 0 else list(SOURCES)[::-1]:
                rates[source].append(raw_step_rate(source, n))
        raw.append({"n_envs": n, **{s: statistics.median(v) for s, v in rates.items()}})
        print(json.dumps(raw[-1]), flush=True)
    result.update(
        runs=runs,
        summary=summarize(runs, sizes),
        raw=raw,
        load_average_at_end=[round(x, 2) for x in os.getloadavg()],
    )
    if args.quick:
        print(markdown(result))
        return 0
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "envpool.json"), "w") as f:
        json.dump(result, f, indent=2)
    with open(os.path.join(RESULTS, "envpool.md"), "w") as f:
        f.write(markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
