"""Export a policy as a SavedModel and serve it with TensorFlow alone.

The serving process below never imports keras_trust: the SavedModel carries the network,
the observation normalization and the deterministic action rule.

Run: python examples/export_and_serve.py [--timesteps 20000]
"""

import argparse
import subprocess
import sys
import tempfile

import keras_trust as kt

SERVE = """
import sys
import gymnasium as gym
import numpy as np
import tensorflow as tf
policy = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
env = gym.make("CartPole-v1")
obs, _ = env.reset(seed=0)
total, done = 0.0, False
while not done:
    action = policy(observation=tf.constant(obs[None], tf.float32))["output_0"].numpy()[0]
    obs, reward, terminated, truncated, _ = env.step(int(action))
    total, done = total + reward, terminated or truncated
print("served episode return:", total, "| keras_trust imported:", "keras_trust" in sys.modules)
"""


def main(timesteps: int) -> None:
    agent = kt.PPO(n_envs=8, n_steps=32, batch_size=256, epochs=20, normalize_observations=True)
    agent.fit("CartPole-v1", timesteps, seed=0, verbose=0)
    path = tempfile.mkdtemp(prefix="policy-")
    agent.export(path)
    subprocess.run([sys.executable, "-c", SERVE, path], check=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=20_000)
    main(parser.parse_args().timesteps)
