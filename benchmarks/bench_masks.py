"""Action masks on Taxi-v4: masked PPO against unmasked PPO at the same budget.

Taxi-v4 gives `info["action_mask"]` (the moves into walls and the illegal pickups and
drop-offs, which cost -10, are masked). The same PPO settings train with masks
(`use_action_masks=True`, the default) and without (`False`), seeds alternating; the
deterministic evaluation return (20 episodes, truncation at 200 steps) is reported per
seed. Writes `benchmarks/results/masks.json` and `.md`.

    python benchmarks/bench_masks.py [--timesteps 100000] [--seeds 3]
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SETTINGS = dict(n_envs=8, n_steps=128, batch_size=256, epochs=4, gamma=0.99, ent_coef=0.01)


def run(masked, timesteps, seed):
    agent = kt.PPO(**SETTINGS, use_action_masks=masked)
    agent.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-5))
    start = time.perf_counter()
    history = agent.fit("Taxi-v4", timesteps, verbose=0, seed=seed)
    seconds = time.perf_counter() - start
    result = agent.evaluate("Taxi-v4", episodes=20, seed=1000 + seed)
    return {
        "seed": seed,
        "eval_return": result["mean_return"],
        "train_return_last": history.history["episode_return"][-1],
        "seconds": seconds,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    kt.performance.single_threaded_xla_cpu()
    results = {"masked": [], "unmasked": []}
    for seed in range(args.seeds):
        for name in results:
            results[name].append(run(name == "masked", args.timesteps, seed))
            print(name, results[name][-1], flush=True)
    lines = [
        f"# Taxi-v4, PPO, {args.timesteps} steps: deterministic return (20 episodes)",
        "",
        f"Settings: {SETTINGS}, Adam 1e-3.",
        "",
        "| | " + " | ".join(f"seed {s}" for s in range(args.seeds)) + " | mean |",
        "|---|" + "---:|" * (args.seeds + 1),
    ]
    for name, runs in results.items():
        values = [r["eval_return"] for r in runs]
        cells = " | ".join(f"{v:.1f}" for v in values)
        lines.append(f"| {name} | {cells} | {np.mean(values):.1f} |")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "masks.json").write_text(json.dumps({"settings": SETTINGS, **results}, indent=1))
    (RESULTS / "masks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
