"""rl-zoo's own settings run by rl-zoo's own libraries (SB3 / sb3-contrib) on this machine.

rl-zoo's benchmark table is one run per (algorithm, env), on the older gym envs. Where a
keras_trust preset with rl-zoo's settings lands below that figure, the question is whether
the gap is ours or the single run's luck: this script trains SB3's PPO or sb3-contrib's
TRPO with the row's rl-zoo hyperparameters (copied from rl-zoo's `hyperparams/*.yml`, with
SB3's defaults where the yml is silent) on the same gymnasium env and budget, for several
seeds, and scores each run exactly as `bench_presets_zoo.py` does: deterministic, over
150,000 / (step limit) episodes from seed 2000 (VecNormalize's statistics frozen and its
reward scaling off, as rl-zoo's evaluation does).

It runs in a venv with the `bench` extra (it imports SB3, never keras_trust):

    /work/venv-sb3/bin/python benchmarks/bench_zoo_sb3.py --rows lunar-trpo --seeds 0 1 2

Results: `benchmarks/results/zoo_sb3.json` (every run, appended) and `zoo_sb3.md`.
"""

import argparse
import datetime
import json
import math
import os
import platform
import time

# The same scoring as keras_trust's runs (that module imports only the standard library
# at the top, so it loads in the SB3 venv too).
from bench_presets_zoo import RESULTS, ZOO_EVAL_SEED, ZOO_EVAL_STEPS

JSON_PATH = os.path.join(RESULTS, "zoo_sb3.json")
MD_PATH = os.path.join(RESULTS, "zoo_sb3.md")

# row: (env id, algorithm, budget, rl-zoo's published return, normalize, SB3 kwargs).
ROWS = {
    "lunar-trpo": (
        "LunarLander-v3",
        "trpo",
        200_000,
        133.2,
        False,
        {
            "n_envs": 2,
            "n_steps": 512,
            "cg_damping": 0.01,
            "gae_lambda": 0.98,
            "gamma": 0.99,
            "learning_rate": 1e-3,
            "n_critic_updates": 15,
        },
    ),
    "lunarc-trpo": (
        "LunarLanderContinuous-v3",
        "trpo",
        200_000,
        262.4,
        True,
        {"n_envs": 2, "n_steps": 1024, "n_critic_updates": 20},
    ),
    "hopper-trpo": (
        "Hopper-v5",
        "trpo",
        1_000_000,
        3618.0,
        True,
        {
            "n_envs": 2,
            "batch_size": 128,
            "n_steps": 1024,
            "gamma": 0.99,
            "gae_lambda": 0.95,
            "sub_sampling_factor": 1,
            "cg_max_steps": 25,
            "cg_damping": 0.1,
            "n_critic_updates": 20,
            "learning_rate": 1e-3,
        },
    ),
}


def run_one(row, seed):
    import gymnasium as gym
    import numpy as np
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    # One thread: the runs here share 2 cores with others (returns, not speed, are measured).
    torch.set_num_threads(1)
    env_id, algo, budget, _, normalize, kwargs = ROWS[row]
    kwargs = dict(kwargs)
    n_envs = kwargs.pop("n_envs")
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize:
        env = VecNormalize(env, gamma=kwargs.get("gamma", 0.99))
    cls = {"ppo": PPO, "trpo": TRPO}[algo]
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    start = time.perf_counter()
    model.learn(budget)
    fit_s = time.perf_counter() - start

    horizon = gym.spec(env_id).max_episode_steps
    episodes = math.ceil(ZOO_EVAL_STEPS / horizon)
    eval_env = make_vec_env(env_id, n_envs=1, seed=ZOO_EVAL_SEED)
    if normalize:
        eval_env = VecNormalize(eval_env, training=False, norm_reward=False)
        eval_env.obs_rms = env.obs_rms
    returns = []
    obs = eval_env.reset()
    while len(returns) < episodes:
        action, _ = model.predict(obs, deterministic=True)
        obs, _, dones, infos = eval_env.step(action)
        if dones[0]:
            returns.append(float(infos[0]["episode"]["r"]))
    return {
        "row": row,
        "seed": seed,
        "env_id": env_id,
        "algo": algo,
        "budget": budget,
        "num_timesteps": int(model.num_timesteps),
        "zoo_eval_episodes": episodes,
        "zoo_eval_return": float(np.mean(returns)),
        "zoo_eval_std": float(np.std(returns)),
        "fit_seconds": round(fit_s, 1),
        "settings": ROWS[row][5],
        "normalize": normalize,
        "when": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def write_report(data):
    lines = [
        "# rl-zoo's settings in SB3 / sb3-contrib here (`benchmarks/bench_zoo_sb3.py`)",
        "",
        "Deterministic, 150,000 / (step limit) episodes from seed 2000 per run (the `zoo eval`"
        " of `presets_zoo.md`); mean +/- std (population) over training seeds. Shared 2-core"
        " machine: fit seconds are not speed figures.",
        "",
        "| row | env | steps | seeds | SB3: mean +/- std | per seed | rl-zoo | fit s (mean) |",
        "|---|---|---:|---:|---:|---|---:|---:|",
    ]
    for row, (env_id, _, _, published, _, _) in ROWS.items():
        runs = sorted((r for r in data["runs"] if r["row"] == row), key=lambda r: r["seed"])
        if not runs:
            continue
        vals = [r["zoo_eval_return"] for r in runs]
        mean = sum(vals) / len(vals)
        std = (sum((v - mean) ** 2 for v in vals) / len(vals)) ** 0.5
        per_seed = ", ".join(f"{r['seed']}: {r['zoo_eval_return']:.1f}" for r in runs)
        fit = sum(r["fit_seconds"] for r in runs) / len(runs)
        lines.append(
            f"| {row} | {env_id} | {runs[0]['num_timesteps']} | {len(runs)} | "
            f"{mean:.1f} +/- {std:.1f} | {per_seed} | {published} | {fit:.0f} |"
        )
    with open(MD_PATH, "w") as f:
        f.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="+", default=["lunar-trpo", "lunarc-trpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    args = parser.parse_args(argv)
    for row in args.rows:
        for seed in args.seeds:
            record = run_one(row, seed)
            data = {"machine": platform.platform(), "runs": []}
            if os.path.exists(JSON_PATH):
                with open(JSON_PATH) as f:
                    data = json.load(f)
            data["runs"] = [r for r in data["runs"] if (r["row"], r["seed"]) != (row, seed)]
            data["runs"].append(record)
            with open(JSON_PATH, "w") as f:
                json.dump(data, f, indent=1)
            write_report(data)
            print(f"{row}/seed {seed}: {record['zoo_eval_return']:.1f}", flush=True)


if __name__ == "__main__":
    main()
