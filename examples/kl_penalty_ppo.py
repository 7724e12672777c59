"""PPO with the adaptive KL penalty instead of clipping (Schulman et al., 2017, Sec. 4).

Run: python examples/kl_penalty_ppo.py [--timesteps 100000]
"""

import argparse

import keras

import keras_trust as kt


def main(timesteps: int) -> None:
    penalty = kt.layers.KLPenalty(target_kl=0.01, initial_beta=1.0)
    agent = kt.PPO(clip_ratio=None, kl_penalty=penalty, n_envs=8, n_steps=64, batch_size=256)
    agent.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = agent.fit("CartPole-v1", timesteps, seed=0)
    print("beta over training:", [round(b, 4) for b in history.history["beta"][-5:]])
    print("evaluation:", agent.evaluate("CartPole-v1", episodes=5, seed=0))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=100_000)
    main(parser.parse_args().timesteps)
