"""Rollout memory of an 84x84x4 uint8 Atari env (Pong, AtariPreprocessing + 4-frame stack).

Collects one rollout of `--steps` steps on `--envs` envs with an untrained PPO agent and
reports the bytes of the stored observations and the peak traced allocation during the
collection (`tracemalloc`, which NumPy reports to). Run it in two checkouts to compare
(`PYTHONPATH=/path/to/checkout`); results for before/after #14 are in
`benchmarks/results/image_memory.md`.

    python benchmarks/bench_image_memory.py [--envs 8] [--steps 128]
"""

import argparse
import json
import os
import tracemalloc

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import ale_py  # noqa: E402
import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import keras_trust as kt  # noqa: E402
from keras_trust.rollout import InProcessSampler  # noqa: E402

gym.register_envs(ale_py)


def pong():
    env = gym.wrappers.AtariPreprocessing(gym.make("ALE/Pong-v5", frameskip=1), frame_skip=4)
    return gym.wrappers.FrameStackObservation(env, 4)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=128)
    args = parser.parse_args()
    agent = kt.PPO(n_envs=args.envs, n_steps=args.steps, batch_size=args.steps)
    sampler = InProcessSampler()
    spaces = sampler.start(pong, args.envs, seed=0)
    agent.prepare(*spaces, seed=0)
    sampler.collect(agent, 4, 0)  # trace the act step outside the measurement
    tracemalloc.start()
    rollout = sampler.collect(agent, args.steps, 1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    sampler.close()
    obs = rollout.observations
    print(
        json.dumps(
            {
                "keras_trust": kt.__file__,
                "envs": args.envs,
                "steps": args.steps,
                "obs_dtype": str(np.asarray(obs).dtype),
                "obs_bytes": int(np.asarray(obs).nbytes),
                "peak_traced_bytes": int(peak),
            }
        )
    )


if __name__ == "__main__":
    main()
