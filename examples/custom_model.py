"""Your own Keras model as the policy: a functional model with a shared torso.

The agent adds the distribution head to `policy` and the value head to `value`; passing
one model for both shares its layers between actor and critic (PPO trains them jointly).

Run: python examples/custom_model.py [--timesteps 50000]
"""

import argparse

import keras

import keras_trust as kt


def shared_torso(obs_dim: int) -> keras.Model:
    inputs = keras.Input((obs_dim,))
    x = keras.layers.Dense(64, activation="tanh")(inputs)
    x = keras.layers.LayerNormalization()(x)
    x = keras.layers.Dense(64, activation="tanh")(x)
    return keras.Model(inputs, x, name="shared_torso")


def main(timesteps: int) -> None:
    torso = shared_torso(4)
    agent = kt.PPO(policy=torso, value=torso, n_envs=8, n_steps=64, batch_size=128, epochs=10)
    agent.compile(optimizer=keras.optimizers.Adam(1e-3))
    agent.fit("CartPole-v1", timesteps, seed=0)
    print("evaluation:", agent.evaluate("CartPole-v1", episodes=5, seed=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=50_000)
    main(parser.parse_args().timesteps)
