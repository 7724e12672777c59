"""Cost of the per-env-step call: the designs we tried, side by side, and SB3's.

SB3's row needs stable-baselines3 in this interpreter (the `bench` extra); without it the
row is left out.

The rollout makes one compiled call per vector step, so for small networks its Python
dispatch, not the arithmetic, sets the speed. This measures one call (batch of 1
observation) in each design, interleaved round by round so machine noise hits all alike,
and writes `benchmarks/results/act.json` and `act.md`.

    python benchmarks/bench_act.py [--calls 3000] [--rounds 5]
"""

import argparse
import json
import os
import pathlib
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_trust as kt  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def designs(agent, obs_dim, noise_shape):
    """name -> zero-argument callable making one step's call, as each design made it."""
    obs_spec = tf.TensorSpec((None, obs_dim), tf.float32)
    noise_spec = tf.TensorSpec((None, *noise_shape), tf.float32)

    def act_with_noise(obs, noise):
        params = agent.policy_params(obs)
        dist = agent.action_distribution
        action = dist.sample(params, noise)
        return (
            action,
            dist.env_action(action),
            dist.log_prob(params, action),
            agent.value_estimate(obs),
        )

    poly = tf.function(act_with_noise, input_signature=[obs_spec, noise_spec])
    concrete = poly.get_concrete_function()
    xla = tf.function(
        act_with_noise, input_signature=[obs_spec, noise_spec], jit_compile=True
    ).get_concrete_function()
    policy = agent.acting
    policy.start_rollout(np.zeros((10**6, 1, *noise_shape), np.float32))
    in_graph = tf.function(
        policy._act, input_signature=[obs_spec], jit_compile=True, autograph=False
    )
    in_graph = in_graph.get_concrete_function()
    obs = np.zeros((1, obs_dim), np.float32)
    noise = np.zeros((1, *noise_shape), np.float32)
    host = policy.rollout(np.zeros((10**6, 1, *noise_shape), np.float32))

    def host_act():
        if host.t >= len(host.noise):
            host.t = 0
        return host.act(obs)

    def numpy_out(outputs):
        return [o.numpy() for o in outputs]

    return {
        "tf.function(obs, noise)": lambda: numpy_out(poly(obs, noise)),
        "concrete(obs, noise)": lambda: numpy_out(concrete(obs, noise)),
        "concrete+XLA(obs, noise)": lambda: numpy_out(xla(obs, noise)),
        "concrete+XLA(obs), noise in graph": lambda: numpy_out(in_graph(tf.constant(obs))),
        "keras_trust act(obs): the same graph called directly (flat_caller)": lambda: policy.act(
            obs
        ),
        "keras_trust rollout now: NumPy copy of the networks (HostRollout.act)": host_act,
    }


def sb3_step(env_id):
    """SB3's per-step work in `collect_rollouts`: obs to tensor, policy forward, to numpy."""
    try:
        import torch
        from stable_baselines3 import PPO
        from stable_baselines3.common.utils import obs_as_tensor
    except ImportError:
        return None
    torch.set_num_threads(2)
    model = PPO("MlpPolicy", env_id, device="cpu")
    obs = np.zeros((1, *model.observation_space.shape), np.float32)

    def call():
        with torch.no_grad():
            actions, values, log_probs = model.policy(obs_as_tensor(obs, model.device))
        return actions.cpu().numpy(), values.cpu().numpy(), log_probs.cpu().numpy()

    return call


def measure(fns, calls, rounds):
    times = {name: [] for name in fns}
    for fn in fns.values():
        for _ in range(100):
            fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: float(np.median(t)) for name, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = {}
    for env_id in ("CartPole-v1", "HalfCheetah-v5"):
        env = gym.make(env_id)
        agent = kt.PPO()
        agent.prepare(env.observation_space, env.action_space, seed=0)
        fns = designs(agent, env.observation_space.shape[0], agent.action_distribution.noise_shape)
        sb3 = sb3_step(env_id)
        if sb3 is not None:
            fns["SB3 policy forward (torch, no_grad)"] = sb3
        results[env_id] = measure(fns, args.calls, args.rounds)
        env.close()
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "act.json").write_text(json.dumps(results, indent=1))
    lines = [
        "# Per-step call cost (microseconds, median of rounds; batch of one observation)",
        "",
        "| design | " + " | ".join(results) + " |",
        "|---|" + "---:|" * len(results),
    ]
    for name in next(iter(results.values())):
        lines.append(f"| {name} | " + " | ".join(f"{r[name]:.0f}" for r in results.values()) + " |")
    (RESULTS / "act.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
