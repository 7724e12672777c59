"""keras_trust versus Stable-Baselines3 / sb3-contrib, side by side on this machine.

Both libraries run with identical hyperparameters (SB3's PPO defaults; sb3-contrib's TRPO
defaults: the keras_trust defaults were chosen to equal them, and `sb3_kl_terms` converts
sb3-contrib's per-dimension KL), alternately, each run in
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


def _run_keras_trust(algo, env_id, n_envs, seed, timesteps, hparams):
    import keras

    import keras_trust as kt

    if hparams == "preset":
        agent = kt.presets.make_agent(algo, env_id)
    elif algo == "ppo":
        agent = kt.PPO(n_envs=n_envs)  # = SB3 PPO defaults
    else:
        # = sb3-contrib's TRPO defaults: KL 0.01 and damping 0.1 per KL term
        # (sb3_kl_terms), its damped step-length rule.
        d = sb3_kl_terms(env_id)
        agent = kt.TRPO(n_envs=n_envs)
        agent.compile(
            optimizer=kt.optimizers.TrustRegion(
                max_kl=0.01 * d, cg_iters=15, cg_damping=0.1 * d, damped_step_length=True
            )
        )
    curve = []

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append((logs["timesteps"], logs["episode_return"], time.perf_counter() - start))

    start = time.perf_counter()
    agent.fit(env_id, timesteps, verbose=0, seed=seed, callbacks=[Curve()])
    train_time = time.perf_counter() - start
    result = agent.evaluate(env_id, episodes=10, seed=10_000 + seed)
    return train_time, agent.num_timesteps, curve, result["mean_return"], agent.n_envs


def sb3_kl_terms(env_id):
    """How many KL terms per sample sb3-contrib's TRPO averages over, for `env_id`.

    sb3-contrib takes `kl_divergence(...).mean()` of a torch `Normal`, whose KL is per
    action dimension: for a `d`-dim Box its "KL" is the policies' KL divided by `d`, and
    its Fisher products are `F / d`. keras_trust's `max_kl` is the KL between the policies
    (the action's joint distribution), so equal settings are `max_kl = d * target_kl` and
    `cg_damping = d * sb3_cg_damping` (`benchmarks/compare_trpo_update.py` checks it).
    Categorical KLs are one term per sample. sb3-contrib scales its step with the damped
    quadratic form: keras_trust's `damped_step_length=True`.
    """
    import gymnasium as gym

    env = gym.make(env_id)
    space = env.action_space
    env.close()
    return int(np.prod(space.shape)) if isinstance(space, gym.spaces.Box) else 1


def sb3_kwargs(algo, preset, kl_terms=1):
    """The SB3 / sb3-contrib constructor arguments equal to a keras_trust preset.

    `kl_terms`: `sb3_kl_terms` of the env (TRPO only).
    """
    a, opt = dict(preset["agent"]), preset["optimizer"]
    hidden = list(a.pop("hidden_sizes", [64, 64]))
    kwargs = {
        "n_steps": a["n_steps"],
        "batch_size": a["batch_size"],
        "gamma": a.get("gamma", 0.99),
        "gae_lambda": a.get("gae_lambda", 0.95),
        "policy_kwargs": {
            "net_arch": {"pi": hidden, "vf": hidden},
            "log_std_init": a.get("log_std_init", 0.0),
        },
    }
    if algo == "ppo":
        kwargs.update(
            n_epochs=a.get("epochs", 10),
            clip_range=a.get("clip_ratio", 0.2),
            ent_coef=a.get("ent_coef", 0.0),
            vf_coef=a.get("vf_coef", 0.5),
            max_grad_norm=a.get("max_grad_norm", 0.5),
            learning_rate=opt["learning_rate"],
        )
        kwargs["policy_kwargs"]["optimizer_kwargs"] = {"eps": opt.get("epsilon", 1e-5)}
    else:
        if not opt.get("damped_step_length", False):
            print(
                "note: sb3-contrib scales its TRPO step like damped_step_length=True; this "
                "preset does not, so the two steps differ in length",
                file=sys.stderr,
            )
        if preset["value_optimizer"].get("epsilon") != 1e-5:
            print(
                "note: sb3-contrib's critic Adam uses eps=1e-5; this preset's does not",
                file=sys.stderr,
            )
        kwargs.update(
            n_critic_updates=a.get("value_epochs", 10),
            target_kl=opt.get("max_kl", 0.01) / kl_terms,
            cg_max_steps=opt.get("cg_iters", 15),
            cg_damping=opt.get("cg_damping", 0.1) / kl_terms,
            learning_rate=preset["value_optimizer"]["learning_rate"],
        )
    normalize = {
        "norm_obs": a.get("normalize_observations", False),
        "norm_reward": a.get("normalize_rewards", False),
        "gamma": kwargs["gamma"],
    }
    return a["n_envs"], kwargs, normalize


def _run_sb3(algo, env_id, n_envs, seed, timesteps, hparams):
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    import keras_trust as kt

    torch.set_num_threads(2)
    curve = []

    class Curve(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buf = self.model.ep_info_buffer
            ret = float(np.mean([e["r"] for e in buf])) if buf else float("nan")
            curve.append((float(self.num_timesteps), ret, time.perf_counter() - start))

    kwargs, normalize = {}, None
    if hparams == "preset":
        preset = kt.presets.get_preset(algo, env_id)
        n_envs, kwargs, normalize = sb3_kwargs(algo, preset, sb3_kl_terms(env_id))
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize and (normalize["norm_obs"] or normalize["norm_reward"]):
        env = VecNormalize(env, **normalize)
    cls = PPO if algo == "ppo" else TRPO
    model = cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **kwargs)
    start = time.perf_counter()
    model.learn(timesteps, callback=Curve())
    train_time = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    if isinstance(env, VecNormalize):
        eval_env = VecNormalize(
            eval_env,
            training=False,
            norm_reward=False,
            **{k: v for k, v in normalize.items() if k != "norm_reward"},
        )
        eval_env.obs_rms = env.obs_rms
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return train_time, int(model.num_timesteps), curve, float(mean), n_envs


def worker(lib, algo, env_id, n_envs, seed, timesteps, hparams):
    run = _run_keras_trust if lib == "keras_trust" else _run_sb3
    train_time, steps, curve, final, n_envs = run(algo, env_id, n_envs, seed, timesteps, hparams)
    print(
        json.dumps(
            {
                "lib": lib,
                "algo": algo,
                "env": env_id,
                "n_envs": n_envs,
                "hparams": hparams,
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
# Returns that count as "reached" for seconds-to-threshold (mean of the last 100 episodes).
THRESHOLDS = {
    "CartPole-v1": 450.0,
    "Pendulum-v1": -400.0,
    "Acrobot-v1": -100.0,
    "HalfCheetah-v5": 1500.0,
    "Hopper-v5": 1500.0,
    "Walker2d-v5": 1500.0,
}


def _spawn(lib, algo, env_id, n_envs, seed, timesteps, hparams):
    cmd = [sys.executable, __file__, "--worker", lib, algo, env_id]
    cmd += [str(n_envs), str(seed), str(timesteps), hparams]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{lib} {algo} {env_id} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds_to_threshold(run):
    """Training seconds until the running episode return first reached the threshold."""
    threshold = THRESHOLDS.get(run["env"])
    for point in run["curve"]:
        if threshold is not None and len(point) > 2 and point[1] >= threshold:
            return float(point[2])
    return None


def _summary(runs):
    rows = {}
    for r in runs:
        key = (r["env"], r["n_envs"], r["algo"], r.get("hparams", "defaults"), r["lib"])
        rows.setdefault(key, []).append(r)
    table = []
    for (env, n_envs, algo, hparams, lib), rs in sorted(rows.items()):
        reached = [seconds_to_threshold(r) for r in rs]
        reached = [t for t in reached if t is not None]
        table.append(
            {
                "env": env,
                "n_envs": n_envs,
                "algo": algo,
                "hparams": hparams,
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
    lines = [
        "# keras_trust vs Stable-Baselines3 (same machine, same hyperparameters)",
        "",
        f"Machine: {meta['machine']}; {meta['date']}. Runs alternate between the libraries, "
        "each in its own process. Returns: deterministic policy, 10 evaluation episodes per "
        "seed, mean +/- std over seeds. Threshold seconds: training time until the mean "
        "return of the last 100 training episodes first reached the threshold "
        f"({', '.join(f'{k} {v:g}' for k, v in THRESHOLDS.items())}); "
        "the count of seeds that reached it is in brackets.",
        "",
        "| env | n_envs | algo | hparams | steps | keras_trust fps | SB3 fps | fps ratio "
        "| random-action env fps | keras_trust return | SB3 return "
        "| threshold s (keras_trust / SB3) | peak MB (keras_trust / SB3) |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def secs(row):
        t = row["seconds_to_threshold"]
        return ("-" if t is None else f"{t:.0f}") + f" [{row['reached']}]"

    by_key = {(r["env"], r["n_envs"], r["algo"], r["hparams"], r["lib"]): r for r in table}
    cases = sorted({(r["env"], r["n_envs"], r["algo"], r["hparams"]) for r in table})
    for env, n_envs, algo, hparams in cases:
        kt_row = by_key.get((env, n_envs, algo, hparams, "keras_trust"))
        sb_row = by_key.get((env, n_envs, algo, hparams, "sb3"))
        if not (kt_row and sb_row):
            continue
        env_rate = env_fps.get(f"{env}:{n_envs}")
        lines.append(
            f"| {env} | {n_envs} | {algo} | {hparams} | {kt_row['timesteps']} | "
            f"{kt_row['fps']:.0f} | {sb_row['fps']:.0f} | {kt_row['fps'] / sb_row['fps']:.2f}x | "
            + ("-" if env_rate is None else f"{env_rate:.0f}")
            + f" | {kt_row['final_mean']:.1f} +/- {kt_row['final_std']:.1f} | "
            f"{sb_row['final_mean']:.1f} +/- {sb_row['final_std']:.1f} | "
            f"{secs(kt_row)} / {secs(sb_row)} | "
            f"{kt_row['peak_rss_mb']:.0f} / {sb_row['peak_rss_mb']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def _plots(runs, prefix):
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
            x, y = [p[0] for p in r["curve"]], [p[1] for p in r["curve"]]
            style = "-" if r["lib"] == "keras_trust" else "--"
            label = f"{r['lib']} n_envs={r['n_envs']} seed={r['seed']}"
            ax.plot(x, y, style, label=label)
        ax.set(title=f"{algo.upper()} on {env}", xlabel="env steps", ylabel="episode return")
        ax.legend(fontsize=6)
        fig.tight_layout()
        fig.savefig(f"{prefix}_{env}_{algo}.png", dpi=100)
        plt.close(fig)


def report(runs, env_fps, out):
    """Writes `out`.json, `out`.md and `out`_<env>_<algo>.png from the runs."""
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
    }
    table = _summary(runs)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "env_fps": env_fps, "summary": table, "runs": runs}, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write(_markdown(table, env_fps, meta))
    _plots(runs, out)


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
    parser.add_argument("--timesteps", type=int, default=50_000)
    parser.add_argument(
        "--hparams",
        choices=["defaults", "preset"],
        default="defaults",
        help="defaults: SB3's PPO / sb3-contrib's TRPO defaults in both libraries; "
        "preset: keras_trust's preset for the env, translated to SB3 arguments",
    )
    parser.add_argument("--out", default=str(RESULTS / "sb3"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in OUT.jsonl and add to them"
    )
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    log = pathlib.Path(args.out + ".jsonl")
    runs = [json.loads(line) for line in log.read_text().splitlines()] if args.resume else []
    if not args.resume:
        log.write_text("")
    env_fps = {}
    for case in args.cases:
        env_id, _, n_envs = case.partition(":")
        for algo in args.algos:
            if args.hparams == "preset":
                import keras_trust as kt

                n_envs = kt.presets.get_preset(algo, env_id)["agent"]["n_envs"]
            n_envs = int(n_envs or 1)
            if f"{env_id}:{n_envs}" not in env_fps:
                env_fps[f"{env_id}:{n_envs}"] = _env_throughput(env_id, n_envs)
            for i, seed in enumerate(args.seeds):
                order = ["keras_trust", "sb3"] if i % 2 == 0 else ["sb3", "keras_trust"]
                for lib in order:
                    done = [
                        r
                        for r in runs
                        if (r["lib"], r["algo"], r["env"], r["n_envs"], r["seed"])
                        == (lib, algo, env_id, n_envs, seed)
                        and r.get("hparams", "defaults") == args.hparams
                    ]
                    if done:
                        continue
                    run = _spawn(lib, algo, env_id, n_envs, seed, args.timesteps, args.hparams)
                    print(
                        f"{lib:12s} {algo} {env_id} x{run['n_envs']} seed {seed}: "
                        f"{run['fps']:.0f} fps, return {run['final_return']:.1f}",
                        flush=True,
                    )
                    runs.append(run)
                    with log.open("a") as f:
                        f.write(json.dumps(run) + "\n")
    report(runs, env_fps, args.out)
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        lib, algo, env_id, n_envs, seed, timesteps = sys.argv[2:8]
        hparams = sys.argv[8] if len(sys.argv) > 8 else "defaults"
        worker(lib, algo, env_id, int(n_envs), int(seed), int(timesteps), hparams)
    else:
        main()
