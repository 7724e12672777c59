"""Warm-up of the compiled functions: time of the first update (tracing + run) vs the second.

Each case runs in a fresh process (TensorFlow's trace caches are per process), trains two
epochs and reads `fit`'s own per-epoch `update_time` and `rollout_time` logs: epoch 1 pays
for tracing the update (and the act step), epoch 2 only runs them. Cases alternate over
`--repeat` rounds, and with `--checkout LABEL=PATH` (repeatable) so do the checkouts
compared (each case runs with `PYTHONPATH=PATH`), so a busy machine affects all alike.

    python benchmarks/bench_tracing.py --repeat 3
    git worktree add /tmp/before <rev>
    python benchmarks/bench_tracing.py --checkout before=/tmp/before --checkout after=. \
        --out benchmarks/results/tracing.json
"""

import argparse
import json
import os
import subprocess
import sys

CASES = [
    ("ppo", "CartPole-v1"),
    ("trpo", "CartPole-v1"),
    ("ppo", "Pendulum-v1"),
    ("trpo", "Pendulum-v1"),
]

CHILD = """
import json, sys
import keras_trust as kt
algo, env_id = sys.argv[1], sys.argv[2]
cls = {"ppo": kt.PPO, "trpo": kt.TRPO}[algo]
agent = cls(n_envs=2, n_steps=256, batch_size=64)
h = agent.fit(env_id, 2 * 2 * 256, verbose=0, seed=0).history
print(json.dumps({k: h[k] for k in ("update_time", "rollout_time")}))
"""


def run_case(algo, env_id, path=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if path is not None:
        env["PYTHONPATH"] = os.path.abspath(path)
    out = subprocess.run(
        [sys.executable, "-c", CHILD, algo, env_id],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def summarize(runs):
    def median(values):
        return sorted(values)[len(values) // 2]

    return {
        "first_update_s": median([r["update_time"][0] for r in runs]),
        "second_update_s": median([r["update_time"][1] for r in runs]),
        "first_rollout_extra_s": median(
            [r["rollout_time"][0] - r["rollout_time"][1] for r in runs]
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--checkout", action="append", default=[], help="LABEL=PATH")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    checkouts = dict(c.split("=", 1) for c in args.checkout) or {"this checkout": None}
    runs = {label: {f"{a} {e}": [] for a, e in CASES} for label in checkouts}
    for _ in range(args.repeat):
        for algo, env_id in CASES:
            for label, path in checkouts.items():
                runs[label][f"{algo} {env_id}"].append(run_case(algo, env_id, path))
    summary = {
        label: {case: summarize(r) for case, r in cases.items()} for label, cases in runs.items()
    }
    lines = [
        f"# Warm-up: first update (tracing + run) and second update, median of {args.repeat}",
        "",
        "| case | " + " | ".join(f"{label}: first / second (s)" for label in checkouts) + " |",
        "|---|" + "---:|" * len(checkouts),
    ]
    for case in runs[next(iter(checkouts))]:
        cells = [
            f"{summary[label][case]['first_update_s']:.2f} / "
            f"{summary[label][case]['second_update_s']:.3f}"
            for label in checkouts
        ]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "runs": runs}, f, indent=1)
        with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
