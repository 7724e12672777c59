"""PPO on MuJoCo HalfCheetah-v5 with the shipped preset (the PPO paper's settings).

Observation and reward normalization live in the model, so the saved agent and the
exported policy need no wrapper. docs/benchmarks.md has the time and return of 1M steps
on a 2-core CPU. Needs `pip install "gymnasium[mujoco]"`.

Run: python examples/ppo_halfcheetah.py [--timesteps 1000000] [--out DIR]
"""

import argparse
import os
import tempfile

import keras

import keras_trust as kt


def main(timesteps: int, out: str) -> None:
    preset = kt.presets.get_preset("ppo", "HalfCheetah-v5")
    print("preset:", preset)
    agent = kt.presets.make_agent("ppo", "HalfCheetah-v5", preset=preset)
    callbacks = [
        keras.callbacks.CSVLogger(os.path.join(out, "metrics.csv")),
        keras.callbacks.TensorBoard(os.path.join(out, "tensorboard")),
    ]
    agent.fit("HalfCheetah-v5", timesteps, callbacks=callbacks, seed=0, verbose=2)
    agent.save(os.path.join(out, "agent.keras"))
    print("evaluation:", agent.evaluate("HalfCheetah-v5", episodes=5, seed=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=1_000_000)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="ppo_halfcheetah-"))
    args = parser.parse_args()
    main(args.timesteps, args.out)
