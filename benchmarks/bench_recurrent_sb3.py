"""Recurrent PPO: keras_trust against sb3-contrib's RecurrentPPO, steps per second.

CartPole-v1 with the velocities hidden (observation `[x, theta]`), rl-zoo's ppo_lstm
CartPoleNoVel-v1 settings in both libraries: 8 envs x 32 steps, one minibatch of 256
steps (whole sequences), 20 epochs, gamma 0.98, lambda 0.8, Adam with a learning rate
decaying linearly from 1e-3, clip range decaying linearly from 0.2, no entropy bonus,
observations normalized, separate policy and critic LSTMs of 64 units, each followed
by a 64-unit ReLU layer (sb3-contrib's `net_arch` comes after its LSTM: keras_trust's
`RecurrentTorso(decoder=...)`).

Each run is its own subprocess with its library's own Python (sb3-contrib lives in a
separate venv, never in keras_trust's), the libraries alternate, and the steps per
second are env steps over the wall time of the whole `fit` / `learn` call (tracing and
compilation included). On a shared machine read the ratios, not the absolute numbers.
Writes `benchmarks/results/recurrent_sb3.json` and `.md`.

    python benchmarks/bench_recurrent_sb3.py --sb3-python /work/venv-sb3/bin/python \\
        --timesteps 20480 --repeats 3
"""

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SETTINGS = dict(
    n_envs=8, n_steps=32, batch_size=256, epochs=20, gamma=0.98, gae_lambda=0.8, lr=1e-3, clip=0.2
)


def make_no_velocity_cartpole():
    """CartPole-v1 keeping `[x, theta]` (rl-zoo's CartPoleNoVel-v1 observation)."""
    import gymnasium as gym
    import numpy as np

    class NoVelocity(gym.ObservationWrapper):
        def __init__(self, env):
            super().__init__(env)
            low, high = env.observation_space.low, env.observation_space.high
            self.observation_space = gym.spaces.Box(low[[0, 2]], high[[0, 2]], dtype=np.float32)

        def observation(self, obs):
            return obs[[0, 2]].astype(np.float32)

    return NoVelocity(gym.make("CartPole-v1"))


# ------------------------------------------------------------------------ children
def run_keras_trust(timesteps, seed, threads):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    import keras_trust as kt

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)

    s = SETTINGS
    keras.utils.set_random_seed(seed)

    def lstm():
        decoder = keras.Sequential([keras.layers.Dense(64, activation="relu")])
        return kt.networks.RecurrentTorso(keras.layers.LSTMCell(64), decoder=decoder)

    shape = dict(n_envs=s["n_envs"], n_steps=s["n_steps"], batch_size=s["batch_size"])
    steps = kt.presets.optimizer_steps(kt.PPO(**shape, epochs=s["epochs"]), "optimizer", timesteps)
    agent = kt.PPO(
        policy=lstm(),
        value=lstm(),
        **shape,
        epochs=s["epochs"],
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clip_ratio=kt.schedules.LinearSchedule(s["clip"], steps),
        normalize_observations=True,
    )
    agent.compile(optimizer=keras.optimizers.Adam(kt.schedules.LinearSchedule(s["lr"], steps)))
    start, cpu = time.perf_counter(), time.process_time()
    agent.fit(make_no_velocity_cartpole, timesteps, verbose=0, seed=seed)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = agent.evaluate(make_no_velocity_cartpole, episodes=10, seed=1000)
    return seconds, cpu, int(agent.num_timesteps), result["mean_return"]


def run_sb3(timesteps, seed, threads):
    import numpy as np
    import torch
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    s = SETTINGS
    if threads:
        torch.set_num_threads(threads)

    def linear(value):
        return lambda progress_remaining: progress_remaining * value

    envs = VecNormalize(
        make_vec_env(make_no_velocity_cartpole, n_envs=s["n_envs"], seed=seed),
        norm_obs=True,
        norm_reward=False,
    )
    model = RecurrentPPO(
        "MlpLstmPolicy",
        envs,
        n_steps=s["n_steps"],
        batch_size=s["batch_size"],
        n_epochs=s["epochs"],
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        ent_coef=0.0,
        learning_rate=linear(s["lr"]),
        clip_range=linear(s["clip"]),
        policy_kwargs=dict(
            ortho_init=False,
            activation_fn=torch.nn.ReLU,
            lstm_hidden_size=64,
            enable_critic_lstm=True,
            net_arch=dict(pi=[64], vf=[64]),
        ),
        seed=seed,
        device="cpu",
    )
    start, cpu = time.perf_counter(), time.process_time()
    model.learn(timesteps)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    envs.training = False
    eval_env = VecNormalize(
        make_vec_env(make_no_velocity_cartpole, n_envs=1, seed=1000), norm_obs=True
    )
    eval_env.obs_rms, eval_env.training = envs.obs_rms, False
    returns, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return seconds, cpu, int(model.num_timesteps), float(np.mean(returns))


def child(library, timesteps, seed, threads):
    run = {"keras_trust": run_keras_trust, "sb3": run_sb3}[library]
    seconds, cpu, steps, mean_return = run(timesteps, seed, threads)
    print(
        json.dumps(
            {"seconds": seconds, "cpu_seconds": cpu, "steps": steps, "eval_return": mean_return}
        )
    )


# ------------------------------------------------------------------------ parent
def spawn(python, library, timesteps, seed, threads):
    cmd = [python, __file__, "--child", library, "--timesteps", str(timesteps), "--seed", str(seed)]
    cmd += ["--threads", str(threads)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{library} run failed:\n{out.stderr[-3000:]}")
    run = json.loads(out.stdout.strip().splitlines()[-1])
    run.update(library=library, seed=seed, steps_per_s=run["steps"] / run["seconds"])
    run["steps_per_cpu_s"] = run["steps"] / run["cpu_seconds"]
    run["load_after"] = os.getloadavg()[0]
    return run


def table(runs, timesteps):
    by = {lib: [r for r in runs if r["library"] == lib] for lib in ("keras_trust", "sb3")}
    pairs = list(zip(by["keras_trust"], by["sb3"]))
    lines = [
        "# Recurrent PPO (LSTM) vs sb3-contrib RecurrentPPO, CartPole-v1 without velocities, "
        f"{timesteps} steps per run",
        "",
        f"Settings (both): {SETTINGS}, linear lr and clip schedules, observations normalized, "
        "LSTM(64) then Dense(64, ReLU), separate critic LSTM. Steps/s: env steps over the wall "
        "time of the whole fit / learn call (tracing included); steps per CPU-s: over the "
        "process's CPU time in that call (less sensitive to other jobs on the machine). Runs "
        "alternate, each in its own process. Return: deterministic, 10 episodes (at this "
        "budget it only shows that both runs trained).",
        "",
        "| repeat | kt steps/s | sb3 steps/s | ratio | kt steps/CPU-s | sb3 steps/CPU-s | ratio "
        "| kt return | sb3 return | load after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for i, (k, s) in enumerate(pairs):
        lines.append(
            f"| {i} | {k['steps_per_s']:.0f} | {s['steps_per_s']:.0f} | "
            f"{k['steps_per_s'] / s['steps_per_s']:.2f}x | {k['steps_per_cpu_s']:.0f} | "
            f"{s['steps_per_cpu_s']:.0f} | {k['steps_per_cpu_s'] / s['steps_per_cpu_s']:.2f}x | "
            f"{k['eval_return']:.1f} | {s['eval_return']:.1f} | {s['load_after']:.1f} |"
        )

    def median(key):
        ratios = sorted(k[key] / s[key] for k, s in pairs)
        return ratios[len(ratios) // 2]

    medians = {"wall": median("steps_per_s"), "cpu": median("steps_per_cpu_s")}
    lines += [
        "",
        f"Median ratio (keras_trust / sb3-contrib): **{medians['wall']:.2f}x** wall, "
        f"**{medians['cpu']:.2f}x** CPU time.",
    ]
    return lines, medians


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", choices=["keras_trust", "sb3"])
    parser.add_argument("--timesteps", type=int, default=20_480)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kt-python", default=sys.executable)
    parser.add_argument("--sb3-python", default="/work/venv-sb3/bin/python")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="intra-op threads of torch and TensorFlow in both (0: each library's default); "
        "one thread each keeps a loaded machine's oversubscription out of the comparison",
    )
    parser.add_argument("--note", default="", help="machine load etc., written into the table")
    args = parser.parse_args()
    if args.child:
        child(args.child, args.timesteps, args.seed, args.threads)
        return
    runs = []
    for repeat in range(args.repeats):
        # Alternate which library goes first, so a drift in the machine's load hits both.
        order = ["keras_trust", "sb3"] if repeat % 2 == 0 else ["sb3", "keras_trust"]
        for library in order:
            python = args.kt_python if library == "keras_trust" else args.sb3_python
            runs.append(spawn(python, library, args.timesteps, args.seed + repeat, args.threads))
            r = runs[-1]
            print(library, repeat, f"{r['steps_per_s']:.0f} steps/s", r["eval_return"], flush=True)
    lines, medians = table(runs, args.timesteps)
    threads = f"{args.threads} intra-op thread(s) each" if args.threads else "default threads"
    lines += ["", f"Threads: {threads}." + (f" Machine: {args.note}" if args.note else "")]
    lines += [
        "",
        f"Host: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
    ]
    RESULTS.mkdir(exist_ok=True)
    record = {
        "settings": SETTINGS,
        "timesteps": args.timesteps,
        "runs": runs,
        "median_ratios": medians,
    }
    (RESULTS / "recurrent_sb3.json").write_text(json.dumps(record, indent=1))
    (RESULTS / "recurrent_sb3.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
