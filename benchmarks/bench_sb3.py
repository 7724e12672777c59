"""keras_trust versus Stable-Baselines3 / sb3-contrib, side by side on this machine.

Both libraries run with identical hyperparameters (SB3's PPO defaults; sb3-contrib's TRPO
defaults: the keras_trust defaults were chosen to equal them), alternately, each run in
its own subprocess (so peak memory is per run), over several seeds. Written to
`benchmarks/results/sb3.json`, `sb3.md` and `sb3_<env>_<algo>.png`.

Usage (needs the `bench` extra: `pip install -e ".[bench]"`):

    python benchmarks/bench_sb3.py --cases CartPole-v1:1 CartPole-v1:8 Pendulum-v1:1 \\
        --algos ppo trpo --seeds 0 1 --timesteps 50000
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


# ----------------------------------------------------------------------- workers
def _env_throughput(env_id, n_envs, steps=20_000):
    """Random-action steps per second of the same vector env (the ceiling for fit)."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync")
    envs.reset(seed=0)
    envs.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps // n_envs):
        envs.step(envs.action_space.sample())
    elapsed = time.perf_counter() - start
    envs.close()
    return (steps // n_envs) * n_envs / elapsed


def _run_keras_trust(algo, env_id, n_envs, seed, timesteps):
    import keras_trust as kt

    if algo == "ppo":
        agent = kt.PPO(n_envs=n_envs)  # = SB3 PPO defaults
    else:
        agent = kt.TRPO(n_envs=n_envs)  # = sb3-contrib TRPO defaults
    start = time.perf_counter()
    history = agent.fit(env_id, timesteps, verbose=0, seed=seed)
    train_time = time.perf_counter() - start
    curve = list(zip(history.history["timesteps"], history.history["episode_return"]))
    result = agent.evaluate(env_id, episodes=10, seed=10_000 + seed)
    return train_time, agent.num_timesteps, curve, result["mean_return"]


def _run_sb3(algo, env_id, n_envs, seed, timesteps):
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    torch.set_num_threads(2)
    curve = []

    class Curve(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buf = self.model.ep_info_buffer
            ret = float(np.mean([e["r"] for e in buf])) if buf else float("nan")
            curve.append((float(self.num_timesteps), ret))

    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    cls = PPO if algo == "ppo" else TRPO
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0)
    start = time.perf_counter()
    model.learn(timesteps, callback=Curve())
    train_time = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return train_time, int(model.num_timesteps), curve, float(mean)


def worker(lib, algo, env_id, n_envs, seed, timesteps):
    run = _run_keras_trust if lib == "keras_trust" else _run_sb3
    train_time, steps, curve, final = run(algo, env_id, n_envs, seed, timesteps)
    print(
        json.dumps(
            {
                "lib": lib,
                "algo": algo,
                "env": env_id,
                "n_envs": n_envs,
                "seed": seed,
                "timesteps": steps,
                "train_seconds": train_time,
                "fps": steps / train_time,
                "final_return": final,
                "curve": curve,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


# --------------------------------------------------------------------- the driver
def _spawn(lib, algo, env_id, n_envs, seed, timesteps):
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        lib,
        algo,
        env_id,
        str(n_envs),
        str(seed),
        str(timesteps),
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} {algo} {env_id} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _summary(runs):
    rows = {}
    for r in runs:
        rows.setdefault((r["env"], r["n_envs"], r["algo"], r["lib"]), []).append(r)
    table = []
    for (env, n_envs, algo, lib), rs in sorted(rows.items()):
        table.append(
            {
                "env": env,
                "n_envs": n_envs,
                "algo": algo,
                "lib": lib,
                "seeds": len(rs),
                "fps": float(np.mean([r["fps"] for r in rs])),
                "final_mean": float(np.mean([r["final_return"] for r in rs])),
                "final_std": float(np.std([r["final_return"] for r in rs])),
                "peak_rss_mb": float(np.max([r["peak_rss_mb"] for r in rs])),
            }
        )
    return table


def _markdown(table, env_fps, meta):
    lines = [
        "# keras_trust vs Stable-Baselines3 (same machine, same hyperparameters)",
        "",
        f"Machine: {meta['machine']}; {meta['date']}; {meta['timesteps']} steps per run; "
        f"seeds {meta['seeds']}. Runs alternate between the libraries.",
        "",
        "| env | n_envs | algo | keras_trust fps | SB3 fps | fps ratio | random-action env fps "
        "| keras_trust return | SB3 return | keras_trust / SB3 peak MB |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["env"], r["n_envs"], r["algo"], r["lib"]): r for r in table}
    for env, n_envs, algo in sorted({(r["env"], r["n_envs"], r["algo"]) for r in table}):
        kt_row = by_key.get((env, n_envs, algo, "keras_trust"))
        sb_row = by_key.get((env, n_envs, algo, "sb3"))
        if not (kt_row and sb_row):
            continue
        lines.append(
            f"| {env} | {n_envs} | {algo} | {kt_row['fps']:.0f} | {sb_row['fps']:.0f} | "
            f"{kt_row['fps'] / sb_row['fps']:.2f}x | {env_fps[f'{env}:{n_envs}']:.0f} | "
            f"{kt_row['final_mean']:.1f} +/- {kt_row['final_std']:.1f} | "
            f"{sb_row['final_mean']:.1f} +/- {sb_row['final_std']:.1f} | "
            f"{kt_row['peak_rss_mb']:.0f} / {sb_row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _plots(runs):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    for env, algo in sorted({(r["env"], r["algo"]) for r in runs}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            if (r["env"], r["algo"]) != (env, algo) or not r["curve"]:
                continue
            x, y = zip(*r["curve"])
            style = "-" if r["lib"] == "keras_trust" else "--"
            ax.plot(x, y, style, label=f"{r['lib']} n_envs={r['n_envs']} seed={r['seed']}")
        ax.set(title=f"{algo.upper()} on {env}", xlabel="env steps", ylabel="episode return")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(RESULTS / f"sb3_{env}_{algo}.png", dpi=100)
        plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="+", default=["CartPole-v1:1", "CartPole-v1:8"], help="ENV_ID:N_ENVS pairs"
    )
    parser.add_argument("--algos", nargs="+", default=["ppo", "trpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument("--out", default=str(RESULTS / "sb3"))
    args = parser.parse_args()
    runs, env_fps = [], {}
    for case in args.cases:
        env_id, n_envs = case.split(":")
        env_fps[case] = _env_throughput(env_id, int(n_envs))
        for algo in args.algos:
            for i, seed in enumerate(args.seeds):
                order = ["keras_trust", "sb3"] if i % 2 == 0 else ["sb3", "keras_trust"]
                for lib in order:
                    run = _spawn(lib, algo, env_id, int(n_envs), seed, args.timesteps)
                    print(
                        f"{lib:12s} {algo} {case} seed {seed}: {run['fps']:.0f} fps, "
                        f"return {run['final_return']:.1f}",
                        flush=True,
                    )
                    runs.append(run)
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "timesteps": args.timesteps,
        "seeds": args.seeds,
    }
    table = _summary(runs)
    RESULTS.mkdir(exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump({"meta": meta, "env_fps": env_fps, "summary": table, "runs": runs}, f, indent=1)
    with open(args.out + ".md", "w") as f:
        f.write(_markdown(table, env_fps, meta))
    _plots(runs)
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        lib, algo, env_id, n_envs, seed, timesteps = sys.argv[2:8]
        worker(lib, algo, env_id, int(n_envs), int(seed), int(timesteps))
    else:
        main()
