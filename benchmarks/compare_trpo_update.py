"""One TRPO update of sb3-contrib and of keras_trust on the same batch from the same weights.

sb3-contrib collects a rollout on HalfCheetah-v5; its weights are copied into a keras_trust
TRPO agent; both update on sb3-contrib's batch (its observations, actions, log-probabilities,
advantages and returns); the policies' parameter changes and KLs are compared. Repeated for
a few updates, re-syncing the weights before each. Two keras_trust settings:

- `naive`: sb3-contrib's numbers as they read: `max_kl=0.01, cg_damping=0.1`.
- `converted`: `max_kl = d * 0.01`, `cg_damping = d * 0.1` (d = action dimensions) and
  `damped_step_length=True`: sb3-contrib's `kl_divergence(...).mean()` of a torch `Normal`
  averages the KL over action dimensions, so its constraint and Fisher products are the
  policies' divided by d, and it scales the step with the damped quadratic form.

The KL reported for both libraries is the same quantity, computed here in numpy: mean over
the batch of KL(pi_old || pi_new) of the whole action distribution (summed over dimensions).

With `--env LunarLander-v3` (discrete actions, rl-zoo's `cg_damping` 0.01 and 15 CG
steps) the distributions are Categorical: there is no per-dimension averaging (d = 1), so
`naive` and `converted` differ only by `damped_step_length`.

Usage: `python benchmarks/compare_trpo_update.py [--updates 3] [--env LunarLander-v3]`
(needs keras_trust and sb3-contrib in one venv); writes
`benchmarks/results/trpo_update.{json,md}` (HalfCheetah) or `trpo_update_<env>.{json,md}`.
"""

import argparse
import json
import os
import pathlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ENV_ID = "HalfCheetah-v5"


def gaussian_kl(mu0, log_std0, mu1, log_std1):
    """KL(N0 || N1) of diagonal Gaussians per row, summed over dimensions."""
    var0, var1 = np.exp(2 * log_std0), np.exp(2 * log_std1)
    per_dim = log_std1 - log_std0 + (var0 + (mu0 - mu1) ** 2) / (2 * var1) - 0.5
    return per_dim.sum(axis=-1)


def categorical_kl(logits0, logits1):
    """KL(Cat0 || Cat1) per row from logits."""
    logp0 = logits0 - np.logaddexp.reduce(logits0, axis=-1, keepdims=True)
    logp1 = logits1 - np.logaddexp.reduce(logits1, axis=-1, keepdims=True)
    return (np.exp(logp0) * (logp0 - logp1)).sum(axis=-1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=3)
    parser.add_argument("--env", default=ENV_ID)
    args = parser.parse_args()
    env_id = args.env

    import tensorflow as tf
    import torch
    from sb3_contrib import TRPO as SB3TRPO
    from stable_baselines3.common.env_util import make_vec_env

    import keras_trust as kt

    torch.manual_seed(0)
    venv = make_vec_env(env_id, n_envs=1, seed=0)
    discrete = not venv.action_space.shape
    d = 1 if discrete else venv.action_space.shape[0]
    damping, cg_steps = (0.01, 15) if discrete else (0.1, 25)
    sb3 = SB3TRPO(
        "MlpPolicy", venv, n_steps=2048, batch_size=128, cg_max_steps=cg_steps,
        cg_damping=damping, n_critic_updates=20, learning_rate=1e-3, seed=0, verbose=0,
        device="cpu",
    )  # fmt: skip
    _, callback = sb3._setup_learn(2048 * args.updates, None)
    callback.on_training_start(locals(), globals())
    policy = sb3.policy
    torch_actor = [policy.mlp_extractor.policy_net[0], policy.mlp_extractor.policy_net[2]]
    torch_critic = [policy.mlp_extractor.value_net[0], policy.mlp_extractor.value_net[2]]

    settings = {
        "naive": dict(max_kl=0.01, cg_damping=damping),
        "converted": dict(max_kl=0.01 * d, cg_damping=damping * d, damped_step_length=True),
    }
    agents = {}
    for name, kwargs in settings.items():
        agent = kt.TRPO(n_envs=1, n_steps=2048, batch_size=128, value_epochs=20)
        agent.compile(optimizer=kt.optimizers.TrustRegion(cg_iters=cg_steps, **kwargs))
        agent.prepare(venv.observation_space, venv.action_space, seed=0)
        agents[name] = (agent, tf.function(agent._train, autograph=False))

    def dense(model):
        return [layer for layer in model.layers if hasattr(layer, "kernel")]

    def copy_weights(agent):
        pairs = list(zip(dense(agent.policy_torso), torch_actor))
        pairs += list(zip(dense(agent.value_torso), torch_critic))
        pairs += [
            (agent.policy_head.dense, policy.action_net),
            (agent.value_head, policy.value_net),
        ]
        for layer, linear in pairs:
            layer.kernel.assign(linear.weight.detach().numpy().T)
            layer.bias.assign(linear.bias.detach().numpy())
        if not discrete:
            agent.policy_head.log_std.assign(policy.log_std.detach().numpy())

    def torch_actor_flat():
        tensors = [t for lin in [*torch_actor, policy.action_net] for t in (lin.weight.T, lin.bias)]
        tensors += [] if discrete else [policy.log_std]
        return np.concatenate([t.detach().numpy().ravel() for t in tensors])

    def keras_actor_flat(agent):
        layers = [*dense(agent.policy_torso), agent.policy_head.dense]
        values = [v for layer in layers for v in (layer.kernel, layer.bias)]
        values += [] if discrete else [agent.policy_head.log_std]
        return np.concatenate([np.asarray(v).ravel() for v in values])

    def torch_params(obs):
        with torch.no_grad():
            dist = policy.get_distribution(torch.as_tensor(obs)).distribution
            if discrete:
                return (dist.logits.numpy(),)
            return dist.loc.numpy(), np.log(dist.scale.numpy())

    kl = categorical_kl if discrete else gaussian_kl

    rows = []
    for update in range(args.updates):
        sb3.rollout_buffer.reset()
        sb3.collect_rollouts(sb3.env, callback, sb3.rollout_buffer, n_rollout_steps=sb3.n_steps)
        buf = sb3.rollout_buffer
        actions = buf.actions.reshape(2048).astype(np.int64) if discrete else buf.actions
        batch = [
            tf.constant(buf.observations.reshape(2048, -1).astype(np.float32)),
            tf.constant(actions if discrete else actions.reshape(2048, -1).astype(np.float32)),
        ] + [
            tf.constant(x.ravel().astype(np.float32))
            for x in (buf.log_probs, buf.advantages, buf.returns)
        ]
        obs = batch[0].numpy()
        theta0, old = torch_actor_flat(), torch_params(obs)
        for agent, _ in agents.values():
            copy_weights(agent)
            assert np.allclose(keras_actor_flat(agent), theta0)
        sb3.train()
        sb3_step = torch_actor_flat() - theta0
        row = {
            "update": update,
            "sb3": {
                "step_norm": float(np.linalg.norm(sb3_step)),
                "kl": float(np.mean(kl(*old, *torch_params(obs)))),
                "sb3_logged_kl": float(sb3.logger.name_to_value["train/kl_divergence_loss"]),
            },
        }
        for name, (agent, train) in agents.items():
            info = train(*batch, tf.ones([2048]), tf.constant([0, update], tf.int64))
            step = keras_actor_flat(agent) - theta0
            new = [p.numpy() for p in agent.policy_params(obs)]
            row[name] = {
                "step_norm": float(np.linalg.norm(step)),
                "cosine_to_sb3": float(
                    step @ sb3_step / np.linalg.norm(step) / np.linalg.norm(sb3_step)
                ),
                "kl": float(np.mean(kl(*old, *new))),
                "backtracks": int(info["backtracks"]),
            }
        # Both sides continue from sb3-contrib's weights (re-copied before each update).
        rows.append(row)
        print(json.dumps(row), flush=True)

    RESULTS.mkdir(exist_ok=True)
    stem = "trpo_update" if env_id == ENV_ID else f"trpo_update_{env_id.split('-')[0]}"
    (RESULTS / f"{stem}.json").write_text(
        json.dumps({"env": env_id, "action_dims": d, "rows": rows}, indent=1)
    )
    what = "Categorical" if discrete else f"d = {d} action dimensions"
    lines = [
        f"# One TRPO update, sb3-contrib vs keras_trust, same batch and weights ({env_id})",
        "",
        f"{what}; CG steps {cg_steps}, damping {damping} (sb3-contrib's units). KL: mean "
        "KL(pi_old || pi_new) of the whole action distribution, computed in numpy; step: "
        "norm of the policy parameters' change.",
        "",
        "| update | sb3-contrib step | sb3-contrib KL (its log) | naive step | naive cos "
        "| naive KL | converted step | converted cos | converted KL |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        s, n, c = r["sb3"], r["naive"], r["converted"]
        lines.append(
            f"| {r['update']} | {s['step_norm']:.4f} | {s['kl']:.4f} ({s['sb3_logged_kl']:.4f}) "
            f"| {n['step_norm']:.4f} | {n['cosine_to_sb3']:.4f} | {n['kl']:.4f} "
            f"| {c['step_norm']:.4f} | {c['cosine_to_sb3']:.6f} | {c['kl']:.4f} |"
        )
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
