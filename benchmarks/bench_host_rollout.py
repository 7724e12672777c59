"""Rollouts in NumPy (`agents/host_policy.py`) against rollouts through the compiled graph.

Each run is a fresh process that fits one agent (SB3's PPO defaults, or sb3-contrib's
TRPO defaults as in `bench_sb3.py`) for a budget, warm-up included, with
`agent.acting.use_host` on (NumPy rollouts, the default) or off (the XLA-compiled act
called per step, as before). The two modes alternate run by run, so a drift of the shared
machine hits both. Written to `benchmarks/results/host_rollout.json` and `.md`.

    python benchmarks/bench_host_rollout.py --cases ppo:CartPole-v1 trpo:HalfCheetah-v5 \\
        --timesteps 20000 100000 --repeats 3
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def worker(algo, env_id, timesteps, use_host):
    """One fit in this process; prints `RESULT {json}`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    import keras_trust as kt

    if algo == "ppo":
        agent = kt.PPO()
    else:
        import gymnasium as gym

        env = gym.make(env_id)
        d = env.action_space.shape[0] if isinstance(env.action_space, gym.spaces.Box) else 1
        env.close()
        agent = kt.TRPO()
        agent.compile(
            optimizer=kt.optimizers.TrustRegion(
                max_kl=0.01 * d, cg_iters=15, cg_damping=0.1 * d, damped_step_length=True
            )
        )

    class Mode(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            agent.acting.use_host = use_host

    start = time.perf_counter()
    agent.fit(env_id, timesteps, verbose=0, seed=0, callbacks=[Mode()])
    seconds = time.perf_counter() - start
    record = {"steps": agent.num_timesteps, "seconds": seconds}
    print("RESULT " + json.dumps(record), flush=True)


def run(algo, env_id, timesteps, use_host):
    cmd = [sys.executable, __file__, "--worker", algo, env_id, str(timesteps), str(int(use_host))]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1]
    return json.loads(line[len("RESULT ") :])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["ppo:CartPole-v1", "trpo:HalfCheetah-v5"])
    parser.add_argument("--timesteps", nargs="+", type=int, default=[20_000, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        algo, env_id, timesteps, use_host = args.worker
        worker(algo, env_id, int(timesteps), use_host == "1")
        return
    rows = []
    for case in args.cases:
        algo, env_id = case.split(":")
        for timesteps in args.timesteps:
            fps = {True: [], False: []}
            for i in range(args.repeats):
                for use_host in (True, False) if i % 2 == 0 else (False, True):
                    r = run(algo, env_id, timesteps, use_host)
                    fps[use_host].append(r["steps"] / r["seconds"])
                    print(
                        f"{case} {timesteps} host={use_host}: {fps[use_host][-1]:.0f} fps",
                        flush=True,
                    )
            rows.append(
                {
                    "case": case,
                    "timesteps": timesteps,
                    "numpy_fps": fps[True],
                    "graph_fps": fps[False],
                    "ratio": statistics.median(fps[True]) / statistics.median(fps[False]),
                }
            )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "host_rollout.json").write_text(json.dumps(rows, indent=1))
    lines = [
        "# Rollouts in NumPy vs through the compiled graph (`bench_host_rollout.py`)",
        "",
        f"Env steps per second of the whole `fit` in a fresh process (warm-up included), "
        f"median of {args.repeats} runs per mode, modes alternating; 1 env, SB3's PPO / "
        "sb3-contrib's TRPO defaults, seed 0.",
        "",
        "| case | steps | NumPy rollouts fps | graph rollouts fps | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['timesteps']} | {statistics.median(r['numpy_fps']):.0f} "
            f"| {statistics.median(r['graph_fps']):.0f} | {r['ratio']:.2f}x |"
        )
    (RESULTS / "host_rollout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
