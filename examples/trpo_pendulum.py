"""TRPO on Pendulum-v1 (continuous actions, diagonal Gaussian policy) with its preset.

Run: python examples/trpo_pendulum.py [--timesteps 300000]
"""

import argparse

import keras_trust as kt


def main(timesteps: int) -> None:
    agent = kt.presets.make_agent("trpo", "Pendulum-v1")
    history = agent.fit("Pendulum-v1", timesteps, seed=0)
    print("accepted steps:", sum(history.history["accepted"]), "of", len(history.epoch))
    print("evaluation:", agent.evaluate("Pendulum-v1", episodes=10, seed=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=300_000)
    main(parser.parse_args().timesteps)
