"""keras_trust versus Stable-Baselines3 / sb3-contrib and SBX, side by side on this machine.

All libraries run with identical hyperparameters (SB3's PPO defaults; sb3-contrib's TRPO
defaults: the keras_trust defaults were chosen to equal them, and `sb3_kl_terms` converts
sb3-contrib's per-dimension KL), alternately, each run in its own subprocess (so peak memory
is per run), over several seeds. SBX (`sbx-rl`, Stable-Baselines-Jax) has PPO only: it gets
SB3's PPO arguments and SB3's weight init (`_sbx_sb3_init_modules`); what still differs is
in `SBX_NOTES` (and in the Markdown). Written to `benchmarks/results/sb3.json`, `sb3.md` and
`sb3_<env>_<algo>.png`, or to the `--out` prefix.

Each library's worker (`sb3_workers.py`) runs in its own interpreter: keras_trust's in this one
(`sys.executable`), SB3's in `--sb3-python`, SBX's in `--sbx-python`. A worker imports numpy,
gymnasium and its own library only (never keras_trust for SB3/SBX): the driver translates
presets into SB3 arguments (`sb3_kwargs`) here and hands them over as JSON.

Usage (needs the `bench` extra: `pip install -e ".[bench]"`, or an SB3 venv; SBX:
`python3.11 -m venv /work/venv-sbx && /work/venv-sbx/bin/pip install "torch==2.13.0+cpu"
sbx-rl "gymnasium[mujoco]"`):

    python benchmarks/bench_sb3.py --cases CartPole-v1:1 CartPole-v1:8 Pendulum-v1:1 \\
        --algos ppo trpo --seeds 0 1 --timesteps 20000 100000
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

import numpy as np
from sb3_workers import SBX_NOTES, env_throughput, sb3_kl_terms, sb3_kwargs

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
WORKER = pathlib.Path(__file__).resolve().parent / "sb3_workers.py"

LIBS = ("keras_trust", "sb3", "sbx")
LABELS = {"keras_trust": "keras_trust", "sb3": "SB3", "sbx": "SBX"}
TITLES = {"sb3": "Stable-Baselines3", "sbx": "SBX (Stable-Baselines-Jax)"}
# Which algorithms each library has (SBX: PPO only; it has no TRPO).
ALGOS = {"keras_trust": ("ppo", "trpo"), "sb3": ("ppo", "trpo"), "sbx": ("ppo",)}
DEFAULT_SB3_PYTHON = "/work/venv-sb3/bin/python"
DEFAULT_SBX_PYTHON = "/work/venv-sbx/bin/python"

# --------------------------------------------------------------------- the driver
# Returns that count as "reached" for seconds-to-threshold (mean of the last 100 episodes).
THRESHOLDS = {
    "CartPole-v1": 450.0,
    "Pendulum-v1": -400.0,
    "Acrobot-v1": -100.0,
    "HalfCheetah-v5": 1500.0,
    "Hopper-v5": 1500.0,
    "Walker2d-v5": 1500.0,
}


def _spawn(python, spec):
    cmd = [python, str(WORKER), json.dumps(spec)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if spec["lib"] == "sbx":
        env.setdefault("JAX_PLATFORMS", "cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(
            f"{spec['lib']} {spec['algo']} {spec['env']} failed ({python}):\n{out.stderr[-4000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds_to_threshold(run):
    """Training seconds until the running episode return first reached the threshold."""
    threshold = THRESHOLDS.get(run["env"])
    for point in run["curve"]:
        if threshold is not None and len(point) > 2 and point[1] >= threshold:
            return float(point[2])
    return None


def _case_key(r):
    """(env, n_envs, algo, hparams, budget); runs from before `budget` was recorded: 0."""
    return (r["env"], r["n_envs"], r["algo"], r.get("hparams", "defaults"), r.get("budget") or 0)


def _summary(runs):
    rows = {}
    for r in runs:
        rows.setdefault(_case_key(r) + (r["lib"],), []).append(r)
    table = []
    for (env, n_envs, algo, hparams, budget, lib), rs in sorted(rows.items()):
        reached = [seconds_to_threshold(r) for r in rs]
        reached = [t for t in reached if t is not None]
        table.append(
            {
                "env": env,
                "n_envs": n_envs,
                "algo": algo,
                "hparams": hparams,
                "budget": budget,
                "lib": lib,
                "seeds": len(rs),
                "timesteps": int(np.mean([r["timesteps"] for r in rs])),
                "fps": float(np.mean([r["fps"] for r in rs])),
                "final_mean": float(np.mean([r["final_return"] for r in rs])),
                "final_std": float(np.std([r["final_return"] for r in rs])),
                "seconds_to_threshold": float(np.mean(reached)) if reached else None,
                "reached": f"{len(reached)}/{len(rs)}",
                "peak_rss_mb": float(np.max([r["peak_rss_mb"] for r in rs])),
            }
        )
    return table


def _markdown(table, env_fps, meta):
    libs = [lib for lib in LIBS if any(r["lib"] == lib for r in table)]
    others = [lib for lib in libs if lib != "keras_trust"]
    title = " and ".join(TITLES[lib] for lib in others) or TITLES["sb3"]
    lines = [
        f"# keras_trust vs {title} (same machine, same hyperparameters)",
        "",
        f"Machine: {meta['machine']}; {meta['date']}. Runs alternate between the libraries, "
        "each in its own process. Returns: deterministic policy, 10 evaluation episodes per "
        "seed, mean +/- std over seeds. Threshold seconds: training time until the mean "
        "return of the last 100 training episodes first reached the threshold "
        f"({', '.join(f'{k} {v:g}' for k, v in THRESHOLDS.items())}); "
        "the count of seeds that reached it is in brackets. fps: env steps over the wall "
        "time of the whole training call, warm-up included. '-': not run (SBX has no TRPO).",
        "",
    ]
    if meta.get("versions"):
        lines += [
            "Versions: "
            + "; ".join(
                f"{LABELS.get(lib, lib)}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                for lib, vs in meta["versions"].items()
            )
            + ".",
            "",
        ]
    if "sbx" in libs:
        lines += ["SBX settings:", ""] + [f"- {note}" for note in SBX_NOTES] + [""]
    names = [LABELS[lib] for lib in libs]
    cols = ["env", "n_envs", "algo", "hparams", "steps"]
    cols += [f"{n} fps" for n in names]
    cols += [f"fps ratio keras_trust/{LABELS[lib]}" for lib in others]
    cols += ["random-action env fps"] + [f"{n} return" for n in names]
    cols += [f"threshold s ({' / '.join(names)})", f"peak MB ({' / '.join(names)})"]
    aligns = ["---", "---:", "---", "---"] + ["---:"] * (len(cols) - 4)
    lines += ["| " + " | ".join(cols) + " |", "|" + "|".join(aligns) + "|"]

    def secs(row):
        if row is None:
            return "-"
        t = row["seconds_to_threshold"]
        return ("-" if t is None else f"{t:.0f}") + f" [{row['reached']}]"

    def fmt(row, text):
        return "-" if row is None else text(row)

    by_key = {
        (r["env"], r["n_envs"], r["algo"], r["hparams"], r["budget"], r["lib"]): r for r in table
    }
    cases = sorted({(r["env"], r["n_envs"], r["algo"], r["hparams"], r["budget"]) for r in table})
    for case in cases:
        row = {lib: by_key.get(case + (lib,)) for lib in libs}
        kt_row = row.get("keras_trust")
        if kt_row is None or not any(row[lib] for lib in others):
            continue
        env, n_envs, algo, hparams, _ = case
        env_rate = env_fps.get(f"{env}:{n_envs}")
        cells = [env, str(n_envs), algo, hparams, str(kt_row["timesteps"])]
        cells += [fmt(row[lib], lambda r: f"{r['fps']:.0f}") for lib in libs]
        kt_fps = kt_row["fps"]
        cells += [fmt(row[lib], lambda r, f=kt_fps: f"{f / r['fps']:.2f}x") for lib in others]
        cells += ["-" if env_rate is None else f"{env_rate:.0f}"]
        cells += [
            fmt(row[lib], lambda r: f"{r['final_mean']:.1f} +/- {r['final_std']:.1f}")
            for lib in libs
        ]
        cells += [" / ".join(secs(row[lib]) for lib in libs)]
        cells += [" / ".join(fmt(row[lib], lambda r: f"{r['peak_rss_mb']:.0f}") for lib in libs)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(runs, prefix):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    styles = {"keras_trust": "-", "sb3": "--", "sbx": ":"}
    budgets = sorted({r.get("budget") or 0 for r in runs})
    for env, algo, budget in sorted({(r["env"], r["algo"], r.get("budget") or 0) for r in runs}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            if (r["env"], r["algo"], r.get("budget") or 0) != (env, algo, budget):
                continue
            if not r["curve"]:
                continue
            x, y = [p[0] for p in r["curve"]], [p[1] for p in r["curve"]]
            label = f"{r['lib']} n_envs={r['n_envs']} seed={r['seed']}"
            ax.plot(x, y, styles.get(r["lib"], "-."), label=label)
        ax.set(title=f"{algo.upper()} on {env}", xlabel="env steps", ylabel="episode return")
        ax.legend(fontsize=6)
        fig.tight_layout()
        # One budget: the old names; several: one figure per budget.
        suffix = f"_{budget // 1000}k" if len(budgets) > 1 else ""
        fig.savefig(f"{prefix}_{env}_{algo}{suffix}.png", dpi=100)
        plt.close(fig)


def report(runs, env_fps, out):
    """Writes `out`.json, `out`.md and `out`_<env>_<algo>.png from the runs."""
    versions = {}
    for r in runs:
        if r.get("versions"):
            versions[r["lib"]] = r["versions"]
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "versions": {lib: versions[lib] for lib in LIBS if lib in versions},
    }
    if any(r["lib"] == "sbx" for r in runs):
        meta["sbx_notes"] = SBX_NOTES
    table = _summary(runs)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "env_fps": env_fps, "summary": table, "runs": runs}, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write(_markdown(table, env_fps, meta))
    _plots(runs, out)


def _pythons(args):
    """The interpreter of each library's worker (an absent default SB3 venv: this one)."""
    sb3 = args.sb3_python
    if sb3 is None:
        sb3 = DEFAULT_SB3_PYTHON if os.path.exists(DEFAULT_SB3_PYTHON) else sys.executable
    sbx = args.sbx_python or DEFAULT_SBX_PYTHON
    return {"keras_trust": sys.executable, "sb3": sb3, "sbx": sbx}


def _libs(args, pythons):
    """The libraries to run (in this order); the default adds SBX only if its python exists."""
    if args.libs:
        for lib in args.libs:
            if not os.path.exists(pythons[lib]):
                raise SystemExit(f"--libs {lib}: no interpreter at {pythons[lib]}")
        return list(args.libs)
    libs = ["keras_trust", "sb3"]
    if "ppo" in args.algos:
        if os.path.exists(pythons["sbx"]):
            libs.append("sbx")
        else:
            print(f"note: no SBX interpreter at {pythons['sbx']}; SBX skipped", file=sys.stderr)
    return libs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["CartPole-v1:1", "CartPole-v1:8"],
        help="ENV_ID:N_ENVS pairs (with --hparams preset, N_ENVS comes from the preset)",
    )
    parser.add_argument("--algos", nargs="+", default=["ppo", "trpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--timesteps",
        "--steps-list",
        nargs="+",
        type=int,
        default=[50_000],
        help="training budget(s) per run; several (e.g. 20000 100000) run one after the "
        "other into the same --out, one table row per budget",
    )
    parser.add_argument(
        "--libs",
        nargs="+",
        choices=LIBS,
        default=None,
        help="libraries to compare (keras_trust must be one; default: keras_trust sb3, and "
        "sbx when --algos has ppo and the --sbx-python interpreter exists). SBX runs PPO "
        "only; its TRPO cells are '-'",
    )
    parser.add_argument(
        "--sb3-python",
        default=None,
        help=f"interpreter with stable-baselines3 + sb3-contrib (default: {DEFAULT_SB3_PYTHON} "
        "if it exists, else this one)",
    )
    parser.add_argument(
        "--sbx-python",
        default=None,
        help=f"interpreter with sbx-rl (default: {DEFAULT_SBX_PYTHON})",
    )
    parser.add_argument(
        "--hparams",
        choices=["defaults", "preset"],
        default="defaults",
        help="defaults: SB3's PPO / sb3-contrib's TRPO defaults in all libraries; "
        "preset: keras_trust's preset for the env, translated to SB3 (and SBX) arguments",
    )
    parser.add_argument("--out", default=str(RESULTS / "sb3"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in OUT.jsonl and add to them"
    )
    args = parser.parse_args()
    pythons = _pythons(args)
    libs = _libs(args, pythons)
    if "keras_trust" not in libs:
        parser.error("--libs must include keras_trust (the tables are ratios to it)")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    log = pathlib.Path(args.out + ".jsonl")
    runs = [json.loads(line) for line in log.read_text().splitlines()] if args.resume else []
    for r in runs:
        # Runs logged before the budget was recorded ran with the one --timesteps given.
        if "budget" not in r and len(args.timesteps) == 1:
            r["budget"] = args.timesteps[0]
    if not args.resume:
        log.write_text("")
    env_fps = {}
    for budget in args.timesteps:
        for case in args.cases:
            env_id, _, n_envs = case.partition(":")
            for algo in args.algos:
                sb3_preset = None
                if args.hparams == "preset":
                    import keras_trust as kt

                    preset = kt.presets.get_preset(algo, env_id)
                    n_envs = preset["agent"]["n_envs"]
                    sb3_n_envs, kwargs, normalize = sb3_kwargs(algo, preset, sb3_kl_terms(env_id))
                    sb3_preset = {"n_envs": sb3_n_envs, "kwargs": kwargs, "normalize": normalize}
                n_envs = int(n_envs or 1)
                if f"{env_id}:{n_envs}" not in env_fps:
                    env_fps[f"{env_id}:{n_envs}"] = env_throughput(env_id, n_envs)
                algo_libs = [lib for lib in libs if algo in ALGOS[lib]]
                for lib in sorted(set(libs) - set(algo_libs)):
                    print(f"note: {LABELS[lib]} has no {algo.upper()}; skipped", flush=True)
                for i, seed in enumerate(args.seeds):
                    # Rotate the order per seed: each library goes first as often as the others.
                    k = i % len(algo_libs)
                    for lib in algo_libs[k:] + algo_libs[:k]:
                        done = [
                            r
                            for r in runs
                            if (r["lib"], r["algo"], r["env"], r["n_envs"], r["seed"])
                            == (lib, algo, env_id, n_envs, seed)
                            and r.get("hparams", "defaults") == args.hparams
                            and r.get("budget") == budget
                        ]
                        if done:
                            continue
                        spec = {
                            "lib": lib,
                            "algo": algo,
                            "env": env_id,
                            "n_envs": n_envs,
                            "seed": seed,
                            "timesteps": budget,
                            "hparams": args.hparams,
                        }
                        if sb3_preset and lib != "keras_trust":
                            spec["sb3"] = sb3_preset
                        run = _spawn(pythons[lib], spec)
                        print(
                            f"{lib:12s} {algo} {env_id} x{run['n_envs']} seed {seed} "
                            f"budget {budget}: {run['fps']:.0f} fps, "
                            f"return {run['final_return']:.1f}",
                            flush=True,
                        )
                        runs.append(run)
                        with log.open("a") as f:
                            f.write(json.dumps(run) + "\n")
        report(runs, env_fps, args.out)
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    main()
