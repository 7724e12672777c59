"""The act step's cost by batch size: XLA's multi-threaded CPU matmuls on and off, and no XLA.

Each setting runs in its own process (XLA reads `XLA_FLAGS` once). Importing keras_trust
sets no flag; `kt.performance.single_threaded_xla_cpu()` (which the `keras-trust` command
calls) opts in to `--xla_cpu_multi_thread_eigen=false`. The third row is the design that
needs no flag: the act step not XLA-compiled (`compile(jit_compile=False)`).
Writes `benchmarks/results/xla_threads.json` and `.md`.

    python benchmarks/bench_xla_threads.py
"""

import json
import os
import pathlib
import subprocess
import sys

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SETTINGS = {  # name -> (XLA_FLAGS, jit_compile)
    "XLA, multi-threaded (XLA's default; import keras_trust)": (
        "--xla_cpu_multi_thread_eigen=true",
        "True",
    ),
    "XLA, single-threaded (kt.performance opt-in; the CLI)": (
        "--xla_cpu_multi_thread_eigen=false",
        "True",
    ),
    "no XLA (jit_compile=False)": ("", "False"),
}
CHILD = r"""
import json, os, time
import gymnasium as gym, numpy as np
import keras_trust as kt
env = gym.make("HalfCheetah-v5")
out = {}
for n in (1, 2, 8, 64):
    agent = kt.TRPO()
    agent.compile(jit_compile=os.environ["KT_JIT"] == "True")
    agent.prepare(env.observation_space, env.action_space, seed=0)
    agent.acting.start_rollout(np.zeros((20_000, n, 6), np.float32))
    obs = np.zeros((n, 17), np.float32)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(2000):
            agent.acting.act(obs)
        times.append((time.perf_counter() - start) / 2000 * 1e6)
        agent.acting.start_rollout(np.zeros((20_000, n, 6), np.float32))
    out[n] = float(np.median(times))
print(json.dumps(out))
"""


def main():
    results = {}
    for name, (flags, jit) in SETTINGS.items():
        env = dict(os.environ, XLA_FLAGS=flags, KT_JIT=jit, TF_CPP_MIN_LOG_LEVEL="3")
        out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise RuntimeError(out.stderr[-3000:])
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "xla_threads.json").write_text(json.dumps(results, indent=1))
    batches = list(next(iter(results.values())))
    lines = [
        "# Act step (HalfCheetah, TRPO default MLP): microseconds per call",
        "",
        "| act step | " + " | ".join(f"batch {b}" for b in batches) + " |",
        "|---|" + "---:|" * len(batches),
    ]
    for name, row in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[b]:.0f}" for b in batches) + " |")
    (RESULTS / "xla_threads.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
