"""Benchmark of `agent.fit` with the shipped presets.

Measures, for the PPO and TRPO presets on CartPole-v1 and Pendulum-v1:

- throughput: environment steps per second of `fit` over the preset's whole run
  (`total_timesteps`), both overall (wall clock of `fit`, graph tracing included) and in
  steady state (epochs after the first, which traces the compiled functions);
- where the time goes: the fraction of the per-epoch `rollout_time` and `update_time`
  (both are in the `fit` logs);
- time to solve CartPole-v1: seconds of training until a deterministic evaluation
  (`agent.evaluate`, 10 episodes) reaches a mean return of 475. A Keras callback evaluates
  every few epochs on its own env and stops training there; evaluation time is excluded.
  The adaptive-KL PPO and NPG presets are timed too.

Writes `benchmarks/results/fit.json` and `benchmarks/results/fit.md`.

Usage: `python benchmarks/bench_fit.py [--seed 0] [--eval-every 2] [--quick]`
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trust as kt  # noqa: E402
from keras_trust import presets  # noqa: E402

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
THROUGHPUT = [
    ("ppo", "CartPole-v1"),
    ("trpo", "CartPole-v1"),
    ("ppo", "Pendulum-v1"),
    ("trpo", "Pendulum-v1"),
]
SOLVE = [
    ("ppo", "CartPole-v1"),
    ("trpo", "CartPole-v1"),
    ("ppo_kl", "CartPole-v1"),
    ("npg", "CartPole-v1"),
]
SOLVED = 475.0
EVAL_SEED = 1000


def build(algo, env_id):
    """The preset's compiled agent (ppo_kl / npg spelled out, as in the learning tests)."""
    preset = presets.get_preset(algo, env_id)
    if algo in ("ppo", "trpo"):
        return presets.make_agent(algo, env_id), preset
    kwargs = dict(preset["agent"])
    if algo == "ppo_kl":
        agent = kt.PPO(kl_penalty=kt.layers.KLPenalty(**kwargs.pop("kl_penalty")), **kwargs)
    else:
        agent = kt.TRPO(**kwargs)
    agent.compile(
        optimizer=presets.make_optimizer(preset.get("optimizer")),
        value_optimizer=presets.make_optimizer(preset.get("value_optimizer")),
    )
    return agent, preset


class SolveTimer(keras.callbacks.Callback):
    """Evaluates every `every` epochs on a side env; stops once the mean return >= `bar`.

    `train_seconds` counts wall time since `fit` began minus the time spent evaluating.
    """

    def __init__(self, env_id, bar, every, seed):
        super().__init__()
        self.env_id, self.bar, self.every, self.seed = env_id, bar, every, seed
        self.eval_seconds = 0.0
        self.solved_at = None  # (train seconds, env steps, mean return)
        self.evaluations = []

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every:
            return
        t = time.perf_counter()
        train_seconds = t - self.start - self.eval_seconds  # earlier evaluations excluded
        mean = self.model.evaluate(self.env_id, episodes=10, seed=self.seed)["mean_return"]
        self.eval_seconds += time.perf_counter() - t
        steps = self.model.num_timesteps
        self.evaluations.append((steps, round(mean, 1), round(train_seconds, 2)))
        if mean >= self.bar:
            self.solved_at = (train_seconds, steps, mean)
            self.model.stop_training = True


def throughput(algo, env_id, seed, timesteps=None):
    agent, preset = build(algo, env_id)
    total = timesteps or preset["total_timesteps"]
    start = time.perf_counter()
    hist = agent.fit(env_id, total_timesteps=total, seed=seed, verbose=0).history
    wall = time.perf_counter() - start
    rollout, update = np.array(hist["rollout_time"]), np.array(hist["update_time"])
    per_epoch = agent.n_envs * agent.n_steps
    steady = rollout[1:].sum() + update[1:].sum()
    final = agent.evaluate(env_id, episodes=10, seed=EVAL_SEED)["mean_return"]
    return {
        "algo": algo,
        "env": env_id,
        "n_envs": agent.n_envs,
        "steps_per_epoch": per_epoch,
        "timesteps": agent.num_timesteps,
        "fit_seconds": round(wall, 2),
        "steps_per_second": round(agent.num_timesteps / wall, 1),
        "steady_steps_per_second": round(per_epoch * (len(rollout) - 1) / steady, 1)
        if len(rollout) > 1
        else None,
        "first_epoch_seconds": round(rollout[0] + update[0], 2),
        "rollout_fraction": round(rollout.sum() / (rollout.sum() + update.sum()), 3),
        "update_fraction": round(update.sum() / (rollout.sum() + update.sum()), 3),
        # GAE, batching, callbacks, env construction: the part of fit in neither log.
        "other_fraction_of_fit": round(1.0 - (rollout.sum() + update.sum()) / wall, 3),
        "steady_rollout_fraction": round(rollout[1:].sum() / steady, 3)
        if len(rollout) > 1
        else None,
        "final_eval_mean_return": round(final, 1),
    }


def time_to_solve(algo, env_id, seed, every):
    agent, preset = build(algo, env_id)
    timer = SolveTimer(env_id, SOLVED, every, EVAL_SEED)
    start = time.perf_counter()
    agent.fit(
        env_id, total_timesteps=preset["total_timesteps"], seed=seed, verbose=0, callbacks=[timer]
    )
    wall = time.perf_counter() - start
    solved = timer.solved_at
    return {
        "algo": algo,
        "env": env_id,
        "seed": seed,
        "solved": solved is not None,
        "seconds_to_475": round(solved[0], 2) if solved else None,
        "steps_to_475": int(solved[1]) if solved else None,
        "eval_every_epochs": every,
        "eval_seconds_excluded": round(timer.eval_seconds, 2),
        "fit_seconds_total": round(wall, 2),
        "budget_timesteps": preset["total_timesteps"],
        "evaluations": timer.evaluations,
    }


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    import gymnasium
    import tensorflow as tf

    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "gymnasium": gymnasium.__version__,
        "keras_trust": kt.__version__,
        "load_average_at_start": load,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def markdown(result, note):
    m = result["machine"]
    lines = [
        "# `fit` benchmark",
        "",
        f"Machine: {m['cpu_count']}-core CPU ({m['cpu']}), no GPU; Python {m['python']}, "
        f"TensorFlow {m['tensorflow']}, Keras {m['keras']}, gymnasium {m['gymnasium']}. "
        f"Date: {m['date']}. Throughput runs use seed {result['seed']}.",
        "",
    ]
    if note:
        lines += [f"Note: {note}", ""]
    lines += [
        "## Throughput of `fit` (preset, whole `total_timesteps`)",
        "",
        "| algo | env | n_envs x n_steps | timesteps | fit s | steps/s | steady steps/s "
        "| first epoch s | rollout % | update % | other % of fit | final eval |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["throughput"]:
        lines.append(
            f"| {r['algo']} | {r['env']} | {r['n_envs']} x {r['steps_per_epoch'] // r['n_envs']} "
            f"| {r['timesteps']} | {r['fit_seconds']} | {r['steps_per_second']:.0f} "
            f"| {r['steady_steps_per_second']:.0f} | {r['first_epoch_seconds']} "
            f"| {100 * r['rollout_fraction']:.0f} | {100 * r['update_fraction']:.0f} "
            f"| {100 * r['other_fraction_of_fit']:.0f} | {r['final_eval_mean_return']} |"
        )
    lines += [
        "",
        "steps/s: env steps over the wall time of `fit` (tracing the compiled functions in the "
        "first epoch included); steady: epochs after the first. rollout % / update %: shares "
        "of the summed `rollout_time` and `update_time` logs; other % of fit: the rest of the "
        "wall time of `fit` (GAE, batching, callbacks, building envs). final eval: "
        "deterministic mean return over 10 episodes after the run.",
        "",
        "## Time to a deterministic mean return of 475 on CartPole-v1",
        "",
        "| algo | seeds | seconds per seed | median s | env steps per seed | preset budget "
        "| eval s excluded (sum) |",
        "|---|---|---|---|---|---|---|",
    ]
    for algo, runs in _by_algo(result["time_to_solve"]):
        secs = [r["seconds_to_475"] if r["solved"] else None for r in runs]
        solved = sorted(x for x in secs if x is not None)
        median = f"{solved[len(solved) // 2]}" if len(solved) == len(secs) else "-"
        lines.append(
            f"| {algo} | {', '.join(str(r['seed']) for r in runs)} "
            f"| {', '.join('not reached' if x is None else str(x) for x in secs)} | {median} "
            f"| {', '.join(str(r['steps_to_475']) for r in runs)} "
            f"| {runs[0]['budget_timesteps']} "
            f"| {sum(r['eval_seconds_excluded'] for r in runs):.1f} |"
        )
    lines += [
        "",
        "Seconds of training (graph tracing included, evaluation excluded) from the start of "
        "`fit` to the first evaluation (`agent.evaluate`, 10 episodes, deterministic) with a "
        "mean return >= 475; a callback evaluates every few epochs, so this is an upper "
        "bound by up to that many epochs. The median is over the seeds (upper median).",
        "",
    ]
    return "\n".join(lines)


def _by_algo(runs):
    order = []
    for r in runs:
        if r["algo"] not in order:
            order.append(r["algo"])
    return [(a, [r for r in runs if r["algo"] == a]) for a in order]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the throughput runs")
    parser.add_argument(
        "--solve-seeds", default="0,1,2", help="comma-separated seeds of the time-to-475 runs"
    )
    parser.add_argument("--eval-every", type=int, default=2, help="epochs between evaluations")
    parser.add_argument("--quick", action="store_true", help="short throughput runs (smoke)")
    parser.add_argument("--note", default=None, help="remark written into fit.md")
    parser.add_argument("--out", default=RESULTS)
    args = parser.parse_args(argv)

    result = {"machine": machine(), "seed": args.seed, "throughput": [], "time_to_solve": []}
    for algo, env_id in THROUGHPUT:
        r = throughput(algo, env_id, args.seed, 20_000 if args.quick else None)
        print(json.dumps(r), flush=True)
        result["throughput"].append(r)
    for algo, env_id in SOLVE:
        for seed in (int(s) for s in args.solve_seeds.split(",")):
            r = time_to_solve(algo, env_id, seed, args.eval_every)
            print(json.dumps({k: v for k, v in r.items() if k != "evaluations"}), flush=True)
            result["time_to_solve"].append(r)
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    result["machine"]["load_average_at_end"] = load
    note = args.note
    if note is None and max(result["machine"]["load_average_at_start"] or [0]) > 0.5 * (
        os.cpu_count() or 1
    ):
        note = "the machine was shared with other jobs during the run; timings are noisy."
    result["note"] = note
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "fit.json"), "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    with open(os.path.join(args.out, "fit.md"), "w") as f:
        f.write(markdown(result, note))
    print(f"wrote {args.out}/fit.json and fit.md", file=sys.stderr)


if __name__ == "__main__":
    main()
