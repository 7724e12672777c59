"""Recurrent PPO on Pendulum-v1 with the angular velocity hidden (observation [cos, sin]).

rl-zoo reports -218 for sb3-contrib's RecurrentPPO (ppo_lstm) at 100k steps on its
PendulumNoVel. Here: PPO with GRU torsos (a Dense(64, tanh) encoder, GRUCell(64)) and the
PPO Pendulum preset's rollout shape, reward normalization, gamma 0.9. Writes
`benchmarks/results/recurrent_pendulum.json` and `.md`.

    python benchmarks/bench_recurrent_pendulum.py [--timesteps 100000] [--seeds 1]
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium as gym  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
SETTINGS = dict(n_envs=8, n_steps=256, batch_size=512, epochs=10, gamma=0.9, gae_lambda=0.95)


class NoVelocity(gym.ObservationWrapper):
    def __init__(self, env):
        super().__init__(env)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)

    def observation(self, obs):
        return obs[:2].astype(np.float32)


def make():
    return NoVelocity(gym.make("Pendulum-v1"))


def gru():
    encoder = keras.Sequential([keras.layers.Dense(64, activation="tanh")])
    return kt.networks.RecurrentTorso(keras.layers.GRUCell(64), encoder=encoder)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timesteps", type=int, default=100_000)
    parser.add_argument("--seeds", type=int, default=1)
    args = parser.parse_args()
    kt.performance.single_threaded_xla_cpu()
    runs = []
    for seed in range(args.seeds):
        agent = kt.PPO(policy=gru(), value=gru(), normalize_rewards=True, **SETTINGS)
        agent.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-5))
        start = time.perf_counter()
        history = agent.fit(make, args.timesteps, verbose=0, seed=seed)
        seconds = time.perf_counter() - start
        result = agent.evaluate(make, episodes=10, seed=1000)
        runs.append(
            {
                "seed": seed,
                "eval_return": result["mean_return"],
                "train_returns": history.history["episode_return"],
                "seconds": seconds,
            }
        )
        print(runs[-1]["seed"], runs[-1]["eval_return"], round(seconds, 1), flush=True)
    lines = [
        f"# Pendulum-v1 without the angular velocity, recurrent PPO (GRU), {args.timesteps} steps",
        "",
        f"Settings: {SETTINGS}, normalize_rewards, Adam 1e-3; rl-zoo's ppo_lstm: -218 at 100k.",
        "",
        "| seed | deterministic return (10 episodes) | fit time (s) |",
        "|---:|---:|---:|",
        *[f"| {r['seed']} | {r['eval_return']:.1f} | {r['seconds']:.0f} |" for r in runs],
    ]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "recurrent_pendulum.json").write_text(json.dumps(runs, indent=1))
    (RESULTS / "recurrent_pendulum.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
