"""PPO on CartPole-v1 with the shipped preset, stock Keras callbacks and a checkpoint.

Run: python examples/ppo_cartpole.py [--timesteps 100000]
"""

import argparse
import os
import tempfile

import keras

import keras_trust as kt


def main(timesteps: int, out: str) -> None:
    agent = kt.presets.make_agent("ppo", "CartPole-v1")
    callbacks = [
        keras.callbacks.CSVLogger(os.path.join(out, "metrics.csv")),
        kt.callbacks.AgentCheckpoint(os.path.join(out, "agent.keras"), save_freq=20),
    ]
    agent.fit("CartPole-v1", timesteps, callbacks=callbacks, seed=0)
    print("evaluation:", agent.evaluate("CartPole-v1", episodes=10, seed=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--out", default=tempfile.mkdtemp(prefix="ppo_cartpole-"))
    args = parser.parse_args()
    main(args.timesteps, args.out)
