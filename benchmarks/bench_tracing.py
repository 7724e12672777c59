"""Warm-up of the compiled functions: time of the first update (tracing + run) vs the second.

Each case runs in a fresh process (TensorFlow's trace caches are per process), trains two
epochs and reads `fit`'s own per-epoch `update_time` and `rollout_time` logs: epoch 1 pays
for tracing the update (and the act step), epoch 2 only runs them. Cases alternate over
`--repeat` rounds so a busy machine affects all of them alike.

    python benchmarks/bench_tracing.py --repeat 3 --out benchmarks/results/tracing.json
    PYTHONPATH=/path/to/other/checkout python benchmarks/bench_tracing.py ...   # compare
"""

import argparse
import json
import os
import subprocess
import sys

CASES = [("ppo", "CartPole-v1"), ("trpo", "CartPole-v1"), ("ppo", "Pendulum-v1"),
         ("trpo", "Pendulum-v1")]

CHILD = """
import json, sys
import keras_trust as kt
algo, env_id = sys.argv[1], sys.argv[2]
cls = {"ppo": kt.PPO, "trpo": kt.TRPO}[algo]
agent = cls(n_envs=2, n_steps=256, batch_size=64)
h = agent.fit(env_id, 2 * 2 * 256, verbose=0, seed=0).history
print(json.dumps({k: h[k] for k in ("update_time", "rollout_time")}))
"""


def run_case(algo, env_id):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", CHILD, algo, env_id], capture_output=True,
                         text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None)
    parser.add_argument("--label", default="this checkout")
    args = parser.parse_args()
    results = {f"{a} {e}": [] for a, e in CASES}
    for _ in range(args.repeat):
        for algo, env_id in CASES:
            results[f"{algo} {env_id}"].append(run_case(algo, env_id))
    summary = {}
    for case, runs in results.items():
        first = sorted(r["update_time"][0] for r in runs)
        warm = sorted(r["update_time"][1] for r in runs)
        roll = sorted(r["rollout_time"][0] - r["rollout_time"][1] for r in runs)
        summary[case] = {
            "first_update_s": first[len(first) // 2],
            "second_update_s": warm[len(warm) // 2],
            "first_rollout_extra_s": roll[len(roll) // 2],
        }
        print(f"{case:20s} first update {summary[case]['first_update_s']:.2f} s, second "
              f"{summary[case]['second_update_s']:.3f} s, first rollout +"
              f"{summary[case]['first_rollout_extra_s']:.2f} s (median of {len(runs)})")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"label": args.label, "summary": summary, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
