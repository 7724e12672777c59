"""The shipped presets against rl-baselines3-zoo's published returns, at rl-zoo's budgets.

Issue #17 asks for the presets to reach rl-zoo's benchmark table. rl-zoo's figures are
single runs of its own tuned settings at a given step budget; this script trains each
preset at that same budget for several seeds, each run in its own process (so one run's
traced graphs, memory and thread pools cannot leak into the next, and so a crash costs
one run), one process at a time (the machine is shared and small).

Besides the shipped preset (`preset`), a row can have variants: rl-zoo's own settings
translated to keras_trust (`zoo`), and the candidates tried on the way to a new preset.
A variant is a full preset dict; `zoo_variants.VARIANTS` builds them from overrides of
the pinned settings in `zoo_settings.py`, so the command line can name them and the
results say exactly what was run.

Evaluation is deterministic (the distribution's mode), 10 episodes from seed 1000, as in
`tests/agents/test_learning.py`, so a figure here and a learning test's agree for the
same preset, seed and budget.

Results go to `benchmarks/results/presets_zoo.json` (every run, appended as it ends, so
partial results survive an interrupted session) and `presets_zoo.md` (regenerated from
the JSON after every run).

Usage:
    python benchmarks/bench_presets_zoo.py           # the rows under 1M steps, preset, seeds 0-2
    python benchmarks/bench_presets_zoo.py --rows pendulum-ppo --variants preset zoo
    python benchmarks/bench_presets_zoo.py --list                # rows and variants
    python benchmarks/bench_presets_zoo.py --report              # rewrite the .md only
"""

import argparse
import copy
import datetime
import json
import os
import platform
import subprocess
import sys
import time

from sb3_workers import versions
from zoo_variants import VARIANTS

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
JSON_PATH = os.path.join(RESULTS, "presets_zoo.json")
MD_PATH = os.path.join(RESULTS, "presets_zoo.md")
EVAL_SEED = 1000
EVAL_EPISODES = 10
# rl-zoo's benchmark runs the trained agent for 150k steps and averages the episodes that
# makes (750 on Pendulum): 10 episodes have a standard error of ~30 there. Each run is
# also scored close to that ("zoo eval"): 150k / the env's step limit episodes (750 on
# Pendulum, 300 on Acrobot, 150 on MuJoCo), from seed 2000; where episodes end early
# rl-zoo averages more of them.
ZOO_EVAL_STEPS = 150_000
ZOO_EVAL_SEED = 2000

# name: (env id, preset key, rl-zoo's budget, rl-zoo's published return, note on rl-zoo).
# Budgets and returns from rl-zoo's benchmark table; settings from its hyperparams/*.yml.
ROWS = {
    "pendulum-ppo": ("Pendulum-v1", "ppo", 100_000, -172.0, "gSDE (use_sde, sde_sample_freq 4)"),
    "pendulum-trpo": ("Pendulum-v1", "trpo", 100_000, -175.0, "gSDE (use_sde, sde_sample_freq 4)"),
    "acrobot-trpo": ("Acrobot-v1", "trpo", 100_000, -83.0, ""),
    "acrobot-ppo": ("Acrobot-v1", "ppo", 1_000_000, -73.5, ""),
    "mcc-ppo": ("MountainCarContinuous-v0", "ppo", 20_000, 88.0, "gSDE, log_std_init -3.29"),
    "mcc-trpo": ("MountainCarContinuous-v0", "trpo", 50_000, 92.5, "gSDE (sde_sample_freq 4)"),
    # MuJoCo: rl-zoo's table is for the -v3 envs (mujoco-py); ours are gymnasium's -v5.
    "halfcheetah-ppo": ("HalfCheetah-v5", "ppo", 1_000_000, 5819.0, "-v3, ortho_init=False"),
    "hopper-ppo": ("Hopper-v5", "ppo", 1_000_000, 2410.0, "-v3, ortho_init=False"),
    "walker-ppo": ("Walker2d-v5", "ppo", 1_000_000, 3479.0, "-v3"),
    "halfcheetah-trpo": ("HalfCheetah-v5", "trpo", 1_000_000, 1785.0, "-v3"),
    "hopper-trpo": ("Hopper-v5", "trpo", 1_000_000, 3618.0, "-v3"),
    "walker-trpo": ("Walker2d-v5", "trpo", 1_000_000, 4933.0, "-v3"),
    # Box2D: rl-zoo's table is for the -v2 envs; gymnasium 1.x has -v3 (same dynamics,
    # bugs fixed).
    "lunar-ppo": ("LunarLander-v3", "ppo", 1_000_000, 242.1, "-v2"),
    "lunar-trpo": ("LunarLander-v3", "trpo", 200_000, 133.2, "-v2"),
    "lunarc-ppo": ("LunarLanderContinuous-v3", "ppo", 1_000_000, 270.9, "-v2"),
    "lunarc-trpo": ("LunarLanderContinuous-v3", "trpo", 200_000, 262.4, "-v2"),
}


def variant_preset(row, variant):
    """The preset dict that `variant` of `row` trains with (a copy)."""
    from keras_trust import presets

    env_id, algo, budget, _, _ = ROWS[row]
    shipped = presets.get_preset(algo, env_id)
    if variant == "preset":
        preset = shipped
    else:
        preset = VARIANTS[row][variant](copy.deepcopy(shipped))
    preset = copy.deepcopy(preset)
    preset["total_timesteps"] = budget
    return preset


def _cpu():
    """The CPU's model name: one seed's run differs between CPUs (their float kernels)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_one(row, variant, seed):
    """Trains one (row, variant, seed) in this process; returns its JSON-able record."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from keras_trust import presets

    env_id, algo, budget, _, _ = ROWS[row]
    preset = variant_preset(row, variant)
    agent = presets.make_agent(algo, env_id, preset=preset, total_timesteps=budget)
    start = time.perf_counter()
    agent.fit(env_id, total_timesteps=budget, seed=seed, verbose=0)
    fit_s = time.perf_counter() - start
    result = agent.evaluate(env_id, episodes=EVAL_EPISODES, seed=EVAL_SEED)
    import gymnasium as gym

    horizon = gym.spec(env_id).max_episode_steps
    zoo_episodes = -(-ZOO_EVAL_STEPS // horizon)
    zoo = agent.evaluate(env_id, episodes=zoo_episodes, seed=ZOO_EVAL_SEED)
    return {
        "row": row,
        "variant": variant,
        "seed": seed,
        "env_id": env_id,
        "algo": algo,
        "budget": budget,
        "num_timesteps": agent.num_timesteps,
        "mean_return": float(result["mean_return"]),
        "returns": [float(r) for r in result["returns"]],
        "zoo_eval_episodes": zoo_episodes,
        "zoo_eval_return": float(zoo["mean_return"]),
        "zoo_eval_std": float(zoo["std_return"]),
        "fit_seconds": round(fit_s, 1),
        "preset": preset,
        "versions": versions(
            "keras-trust", "tensorflow", "keras", "gymnasium", "mujoco", "box2d", "numpy"
        ),
        "cpu": _cpu(),
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def load_results():
    if not os.path.exists(JSON_PATH):
        return {"machine": platform.platform(), "runs": []}
    with open(JSON_PATH) as f:
        return json.load(f)


def save_results(data):
    os.makedirs(RESULTS, exist_ok=True)
    tmp = JSON_PATH + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.replace(tmp, JSON_PATH)


def _stats(values):
    n = len(values)
    mean = sum(values) / n
    std = (sum((v - mean) ** 2 for v in values) / n) ** 0.5
    return mean, std


def _describe(preset, algo):
    """A short, complete account of a preset's settings for the table."""
    a = dict(preset["agent"])
    parts = [f"{a.pop('n_envs', 1)}x{a.pop('n_steps', 2048)}"]
    parts += [f"{k}={v}" for k, v in sorted(a.items())]
    opt = {k: v for k, v in preset["optimizer"].items() if k != "name"}
    parts += [f"opt.{k}={v}" for k, v in sorted(opt.items())]
    if algo == "trpo" and preset.get("value_optimizer"):
        vo = {k: v for k, v in preset["value_optimizer"].items() if k != "name"}
        parts += [f"vf_opt.{k}={v}" for k, v in sorted(vo.items())]
    return ", ".join(parts)


def write_report(data):
    """presets_zoo.md from the JSON: one line per (row, variant), seeds listed."""
    groups = {}
    for run in data["runs"]:
        groups.setdefault((run["row"], run["variant"]), []).append(run)
    lines = [
        "# Presets against rl-zoo (`benchmarks/bench_presets_zoo.py`)",
        "",
        f"Deterministic evaluation, {EVAL_EPISODES} episodes from seed {EVAL_SEED}; mean +/- "
        "std (population) over training seeds. Each run in its own process on a shared 2-core "
        "CPU, sometimes beside other runs: fit seconds are not speed figures. rl-zoo: its "
        "benchmark table (single runs, its own settings). "
        f"zoo eval: mean over seeds of each run's mean return over {ZOO_EVAL_STEPS:,} / the "
        f"env's step limit episodes (from seed {ZOO_EVAL_SEED}), near how rl-zoo scores its "
        "runs; (n): the seeds that have it.",
        "",
        "| row | variant | steps | seeds | ours: mean +/- std | per seed | zoo eval | rl-zoo "
        "| fit s (mean) |",
        "|---|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    first = {"preset": 0, "before": 1, "zoo": 2}
    order = sorted(groups.items(), key=lambda kv: (first.get(kv[0][1], 3), kv[0][1]))
    for row in ROWS:
        for (r, variant), runs in order:
            if r != row:
                continue
            runs = sorted(runs, key=lambda x: x["seed"])
            mean, std = _stats([x["mean_return"] for x in runs])
            seeds = ", ".join(f"{x['seed']}: {x['mean_return']:.1f}" for x in runs)
            secs = sum(x["fit_seconds"] for x in runs) / len(runs)
            shipped = " (= shipped)" if runs[0]["preset"] == variant_preset(row, "preset") else ""
            zoo = [x["zoo_eval_return"] for x in runs if "zoo_eval_return" in x]
            zoo_cell = f"{_stats(zoo)[0]:.1f} ({len(zoo)})" if zoo else "-"
            lines.append(
                f"| {row} | {variant}{shipped} | {runs[0]['num_timesteps']} | {len(runs)} "
                f"| {mean:.1f} +/- {std:.1f} "
                f"| {seeds} | {zoo_cell} | {ROWS[row][3]} | {secs:.0f} |"
            )
    lines += ["", "Settings of each variant (keras_trust arguments):", ""]
    for (row, variant), runs in sorted(groups.items()):
        lines.append(f"- {row} / {variant}: {_describe(runs[0]['preset'], ROWS[row][1])}")
    checks = data.get("checks", [])
    if checks:  # one-off runs at other budgets (e.g. a learning test's), recorded by hand
        lines += ["", "Checks at other budgets (seed, steps, return):", ""]
        lines += [
            f"- {c['row']} / {c['variant']}: seed {c['seed']}, {c['steps']} steps, "
            f"{c['mean_return']:.1f} ({c['why']})"
            for c in checks
        ]
    notes = [f"- {row}: rl-zoo uses {note}" for row, (*_, note) in ROWS.items() if note]
    lines += [
        "",
        "rl-zoo's settings of note (gSDE: keras_trust's `action_distribution=\"gsde\"`, "
        "variants `*_sde`):",
        "",
        *notes,
    ]
    os.makedirs(RESULTS, exist_ok=True)
    with open(MD_PATH, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows",
        nargs="+",
        default=[r for r in ROWS if ROWS[r][2] < 1_000_000],
        help="rows to run; the 1M-step rows (MuJoCo, Acrobot and LunarLander PPO) only when named",
    )
    parser.add_argument("--variants", nargs="+", default=["preset"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--force", action="store_true", help="rerun runs already recorded")
    parser.add_argument("--list", action="store_true", help="print rows and variants")
    parser.add_argument("--report", action="store_true", help="only rewrite the .md")
    parser.add_argument(
        "--worker", nargs=3, metavar=("ROW", "VARIANT", "SEED"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        row, variant, seed = args.worker
        print("RESULT " + json.dumps(run_one(row, variant, int(seed))), flush=True)
        return
    data = load_results()
    if args.list:
        for row, spec in ROWS.items():
            print(row, spec[:4], ["preset", *VARIANTS.get(row, {})])
        return
    if args.report:
        write_report(data)
        return
    for row in args.rows:
        for variant in args.variants:
            if variant != "preset" and variant not in VARIANTS.get(row, {}):
                print(f"skip {row}/{variant}: no such variant", flush=True)
                continue
            for seed in args.seeds:
                done = [
                    r
                    for r in data["runs"]
                    if (r["row"], r["variant"], r["seed"]) == (row, variant, seed)
                ]
                if done and not args.force:
                    continue
                cmd = [
                    sys.executable,
                    os.path.abspath(__file__),
                    "--worker",
                    row,
                    variant,
                    str(seed),
                ]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not lines:
                    print(f"{row}/{variant}/seed {seed} failed:\n{proc.stderr[-3000:]}", flush=True)
                    continue
                record = json.loads(lines[-1][len("RESULT ") :])
                data = load_results()  # what other invocations have written meanwhile
                data["runs"] = [
                    r
                    for r in data["runs"]
                    if (r["row"], r["variant"], r["seed"]) != (row, variant, seed)
                ]
                data["runs"].append(record)
                save_results(data)
                write_report(data)
                print(
                    f"{row}/{variant}/seed {seed}: {record['mean_return']:.1f} "
                    f"({record['num_timesteps']} steps, {record['fit_seconds']} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
