"""Warm-up: from `fit` to the first env step and to the end of the first update, per process.

Each run is a fresh process (tracing and XLA compilation are per process) that imports
keras_trust, builds an agent and fits it for two epochs. It reports the import time, the
time from the `fit` call to the first `env.step` (building the envs and the networks,
tracing and compiling the act step), to the end of the first epoch (tracing and
compiling the update) and the whole `fit`. Modes alternate within every round so a busy
machine affects them alike:

- `plain`: no cache;
- `cache`: `kt.performance.persistent_compilation_cache(DIR)`, with DIR filled by one
  untimed run first (what every run after a user's first one gets);
- `graph`: no cache, and rollouts through the compiled act (`agent.acting.use_host =
  False`), as before rollouts ran in NumPy: the act step is then traced and compiled.

    python benchmarks/bench_warmup.py --repeat 3 --out benchmarks/results/warmup.json
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

CASES = [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1"), ("ppo", "Pendulum-v1")]
MODES = ("plain", "cache", "graph")

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import gymnasium as gym
import keras
import keras_trust as kt
imported = time.perf_counter()
algo, env_id, cache, use_host = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
if cache != "-":
    kt.performance.persistent_compilation_cache(cache)
marks = {}

class FirstStep(gym.Wrapper):
    def step(self, action):
        marks.setdefault("first_step", time.perf_counter())
        return self.env.step(action)

class FirstEpoch(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        agent.acting.use_host = use_host

    def on_epoch_end(self, epoch, logs=None):
        marks.setdefault("first_epoch", time.perf_counter())

cls = {"ppo": kt.PPO, "trpo": kt.TRPO}[algo]
agent = cls(n_envs=2, n_steps=256, batch_size=64)
begin = time.perf_counter()
agent.fit(lambda: FirstStep(gym.make(env_id)), 2 * 2 * 256, verbose=0, seed=0,
          callbacks=[FirstEpoch()])
end = time.perf_counter()
print(json.dumps({
    "import_s": imported - start,
    "to_first_step_s": marks["first_step"] - begin,
    "to_first_update_end_s": marks["first_epoch"] - begin,
    "fit_s": end - begin,
}))
"""


def run(algo, env_id, cache, use_host=True):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("TF_XLA_FLAGS", None)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, algo, env_id, cache or "-", str(int(use_host))],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--note", default="")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for algo, env_id in CASES:
            run(algo, env_id, cache)  # fills the cache for this case (untimed)
        for r in range(args.repeat):
            for algo, env_id in CASES:
                for mode in MODES if r % 2 == 0 else MODES[::-1]:
                    timing = run(algo, env_id, cache if mode == "cache" else None, mode != "graph")
                    results.setdefault(f"{algo} {env_id} {mode}", []).append(timing)
                    print(algo, env_id, mode, timing, flush=True)
    summary = {
        case: {key: median([t[key] for t in runs]) for key in runs[0]}
        for case, runs in results.items()
    }
    table = [
        "| case | mode | import s | fit -> first env step s | fit -> end of first update s "
        "| fit (2 epochs) s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case, s in summary.items():
        algo, env_id, mode = case.split()
        table.append(
            f"| {algo} {env_id} | {mode} | {s['import_s']:.2f} | {s['to_first_step_s']:.2f} "
            f"| {s['to_first_update_end_s']:.2f} | {s['fit_s']:.2f} |"
        )
    print("\n".join(table))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"note": args.note, "runs": results, "median": summary}, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write(f"# Warm-up (`bench_warmup.py`, median of {args.repeat})\n\n")
            f.write((args.note + "\n\n") if args.note else "")
            f.write("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
