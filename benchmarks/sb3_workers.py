"""The workers of `bench_sb3.py`: one training run of one library, in its own interpreter.

Run as `python sb3_workers.py SPEC_JSON` by the driver, in keras_trust's interpreter or in
an SB3 / SBX venv: a worker imports numpy, gymnasium and its own library only (never
keras_trust for SB3/SBX), and prints one JSON record (steps/s, the learning curve, the
final return, peak memory, versions). `sb3_kl_terms` / `sb3_kwargs` translate keras_trust
presets into SB3's constructor arguments (the driver calls them; the SB3 worker receives
the result as JSON). `SBX_NOTES` says what still differs between SBX's PPO and SB3's.
"""

import json
import resource
import sys
import time

import numpy as np

# What differs between SBX's PPO and SB3's after the harness's settings (see `_run_sbx`).
SBX_NOTES = [
    "SBX gets SB3's PPO arguments (defaults: lr 3e-4, n_steps 2048, batch 64, 10 epochs, "
    "clip 0.2, gamma 0.99, GAE 0.95, ent 0, vf_coef 0.5, max_grad_norm 0.5, Adam eps 1e-5, "
    "separate 64-64 tanh actor and critic, log-std 0) and SB3's init (orthogonal, gain "
    "sqrt(2) hidden, 0.01 action head, 1 value head, zero biases) through its `actor_class` "
    "/ `critic_class`; stock SBX initialises with Flax's lecun-normal and a full-scale "
    "action head (its `ortho_init=True` only shrinks the action head).",
    "Left different: SBX steps the actor and the critic with two Adams, each clipping its "
    "own gradient norm to max_grad_norm; SB3 clips the joint gradient of "
    "policy + vf_coef * value loss (one Adam; the parameters are disjoint, so only the "
    "clip differs). SBX normalizes advantages with the population std (ddof 0), SB3 "
    "with torch's sample std. Random streams differ (JAX PRNG), so equal seeds give other "
    "runs.",
    "SBX runs on JAX's CPU backend (`JAX_PLATFORMS=cpu`, XLA's default threads); SB3 on "
    "torch CPU with 2 threads. Both use SB3's `make_vec_env`, `Monitor`, rollout buffer "
    "and `evaluate_policy`.",
]


# ----------------------------------------------------------------------- workers
def versions(*dists):
    """The installed version of each distribution in `dists` that is installed."""
    from importlib import metadata

    found = {}
    for name in dists:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def env_throughput(env_id, n_envs, steps=20_000):
    """Random-action steps per second of the same vector env (the ceiling for fit)."""
    import gymnasium as gym

    envs = gym.make_vec(env_id, num_envs=n_envs, vectorization_mode="sync")
    envs.reset(seed=0)
    envs.action_space.seed(0)
    start = time.perf_counter()
    for _ in range(steps // n_envs):
        envs.step(envs.action_space.sample())
    elapsed = time.perf_counter() - start
    envs.close()
    return (steps // n_envs) * n_envs / elapsed


def _run_keras_trust(spec):
    import keras

    import keras_trust as kt

    algo, env_id, n_envs, seed = spec["algo"], spec["env"], spec["n_envs"], spec["seed"]
    if spec["hparams"] == "preset":
        agent = kt.presets.make_agent(algo, env_id)
    elif algo == "ppo":
        agent = kt.PPO(n_envs=n_envs)  # = SB3 PPO defaults
    else:
        # = sb3-contrib's TRPO defaults: KL 0.01 and damping 0.1 per KL term
        # (sb3_kl_terms), its damped step-length rule.
        d = sb3_kl_terms(env_id)
        agent = kt.TRPO(n_envs=n_envs)
        agent.compile(
            optimizer=kt.optimizers.TrustRegion(
                max_kl=0.01 * d, cg_iters=15, cg_damping=0.1 * d, damped_step_length=True
            )
        )
    curve = []

    class Curve(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append((logs["timesteps"], logs["episode_return"], time.perf_counter() - start))

    start = time.perf_counter()
    agent.fit(env_id, spec["timesteps"], verbose=0, seed=seed, callbacks=[Curve()])
    train_time = time.perf_counter() - start
    result = agent.evaluate(env_id, episodes=10, seed=10_000 + seed)
    found = versions("keras-trust", "tensorflow", "keras", "gymnasium")
    return train_time, agent.num_timesteps, curve, result["mean_return"], agent.n_envs, found


def sb3_kl_terms(env_id):
    """How many KL terms per sample sb3-contrib's TRPO averages over, for `env_id`.

    sb3-contrib takes `kl_divergence(...).mean()` of a torch `Normal`, whose KL is per
    action dimension: for a `d`-dim Box its "KL" is the policies' KL divided by `d`, and
    its Fisher products are `F / d`. keras_trust's `max_kl` is the KL between the policies
    (the action's joint distribution), so equal settings are `max_kl = d * target_kl` and
    `cg_damping = d * sb3_cg_damping` (`benchmarks/compare_trpo_update.py` checks it).
    Categorical KLs are one term per sample. sb3-contrib scales its step with the damped
    quadratic form: keras_trust's `damped_step_length=True`.
    """
    import gymnasium as gym

    env = gym.make(env_id)
    space = env.action_space
    env.close()
    return int(np.prod(space.shape)) if isinstance(space, gym.spaces.Box) else 1


def sb3_kwargs(algo, preset, kl_terms=1):
    """The SB3 / sb3-contrib constructor arguments equal to a keras_trust preset.

    `kl_terms`: `sb3_kl_terms` of the env (TRPO only).
    """
    a, opt = dict(preset["agent"]), preset["optimizer"]
    hidden = list(a.pop("hidden_sizes", [64, 64]))
    kwargs = {
        "n_steps": a["n_steps"],
        "batch_size": a["batch_size"],
        "gamma": a.get("gamma", 0.99),
        "gae_lambda": a.get("gae_lambda", 0.95),
        "policy_kwargs": {
            "net_arch": {"pi": hidden, "vf": hidden},
            "log_std_init": a.get("log_std_init", 0.0),
        },
    }
    if algo == "ppo":
        kwargs.update(
            n_epochs=a.get("epochs", 10),
            clip_range=a.get("clip_ratio", 0.2),
            ent_coef=a.get("ent_coef", 0.0),
            vf_coef=a.get("vf_coef", 0.5),
            max_grad_norm=a.get("max_grad_norm", 0.5),
            learning_rate=opt["learning_rate"],
        )
        kwargs["policy_kwargs"]["optimizer_kwargs"] = {"eps": opt.get("epsilon", 1e-5)}
    else:
        if not opt.get("damped_step_length", False):
            print(
                "note: sb3-contrib scales its TRPO step like damped_step_length=True; this "
                "preset does not, so the two steps differ in length",
                file=sys.stderr,
            )
        if preset["value_optimizer"].get("epsilon") != 1e-5:
            print(
                "note: sb3-contrib's critic Adam uses eps=1e-5; this preset's does not",
                file=sys.stderr,
            )
        kwargs.update(
            n_critic_updates=a.get("value_epochs", 10),
            target_kl=opt.get("max_kl", 0.01) / kl_terms,
            cg_max_steps=opt.get("cg_iters", 15),
            cg_damping=opt.get("cg_damping", 0.1) / kl_terms,
            learning_rate=preset["value_optimizer"]["learning_rate"],
        )
    normalize = {
        "norm_obs": a.get("normalize_observations", False),
        "norm_reward": a.get("normalize_rewards", False),
        "gamma": kwargs["gamma"],
    }
    return a["n_envs"], kwargs, normalize


def _sb3_learn_and_evaluate(make_model, spec):
    """Shared by the SB3 and SBX workers (SBX is built on SB3's env, buffer and callbacks).

    `make_model(env, kwargs)` builds the model; `spec["sb3"]` (preset mode) holds the
    constructor arguments and normalization `sb3_kwargs` gave in the driver.
    """
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.vec_env import VecNormalize

    env_id, n_envs, seed = spec["env"], spec["n_envs"], spec["seed"]
    curve = []

    class Curve(BaseCallback):
        def _on_step(self):
            return True

        def _on_rollout_end(self):
            buf = self.model.ep_info_buffer
            ret = float(np.mean([e["r"] for e in buf])) if buf else float("nan")
            curve.append((float(self.num_timesteps), ret, time.perf_counter() - start))

    kwargs, normalize = {}, None
    if spec.get("sb3"):
        n_envs = spec["sb3"]["n_envs"]
        kwargs, normalize = spec["sb3"]["kwargs"], spec["sb3"]["normalize"]
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed)
    if normalize and (normalize["norm_obs"] or normalize["norm_reward"]):
        env = VecNormalize(env, **normalize)
    model = make_model(env, kwargs)
    start = time.perf_counter()
    model.learn(spec["timesteps"], callback=Curve())
    train_time = time.perf_counter() - start
    eval_env = make_vec_env(env_id, n_envs=1, seed=10_000 + seed)
    if isinstance(env, VecNormalize):
        eval_env = VecNormalize(
            eval_env,
            training=False,
            norm_reward=False,
            **{k: v for k, v in normalize.items() if k != "norm_reward"},
        )
        eval_env.obs_rms = env.obs_rms
    mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=10, deterministic=True)
    return train_time, int(model.num_timesteps), curve, float(mean), n_envs


def _run_sb3(spec):
    import torch
    from sb3_contrib import TRPO
    from stable_baselines3 import PPO

    torch.set_num_threads(2)
    cls = PPO if spec["algo"] == "ppo" else TRPO

    def make_model(env, kwargs):
        return cls("MlpPolicy", env, seed=spec["seed"], device="cpu", verbose=0, **kwargs)

    found = versions("stable_baselines3", "sb3_contrib", "torch", "gymnasium")
    return _sb3_learn_and_evaluate(make_model, spec) + (found,)


def _sbx_sb3_init_modules():
    """SBX's actor and critic with SB3's `ortho_init=True` init (`ActorCriticPolicy`).

    SB3: orthogonal weights, gain sqrt(2) in the hidden layers, 0.01 for the action head
    and 1 for the value head, zero biases. Stock SBX: Flax's lecun-normal everywhere (its
    `ortho_init=True` changes the action head only). The layers, activations and
    distributions are SBX's own (`sbx.ppo.policies.Actor` / `Critic`).
    """
    import flax.linen as nn
    import jax.numpy as jnp
    from sbx.common.policies import Flatten
    from sbx.ppo.policies import Actor, Critic, tfd

    hidden_init = nn.initializers.orthogonal(scale=float(np.sqrt(2)))
    zeros = nn.initializers.zeros

    def hidden_layers(module, x):
        """SB3's hidden stack: orthogonal (gain sqrt 2) Dense layers, zero biases."""
        x = Flatten()(x)
        for n_units in module.net_arch:
            x = module.activation_fn(nn.Dense(n_units, kernel_init=hidden_init, bias_init=zeros)(x))
        return x

    class SB3InitActor(Actor):
        @nn.compact
        def __call__(self, x):
            if self.features_extractor is not None:
                raise NotImplementedError("MlpPolicy only")
            x = hidden_layers(self, x)
            head = nn.initializers.orthogonal(scale=0.01)
            logits = nn.Dense(self.action_dim, kernel_init=head, bias_init=zeros)(x)
            if self.num_discrete_choices is None:
                log_std = self.param(
                    "log_std", nn.initializers.constant(self.log_std_init), (self.action_dim,)
                )
                return tfd.MultivariateNormalDiag(loc=logits, scale_diag=jnp.exp(log_std))
            if isinstance(self.num_discrete_choices, int):
                return tfd.Categorical(logits=logits)
            raise NotImplementedError("Box and Discrete actions only")

    class SB3InitCritic(Critic):
        @nn.compact
        def __call__(self, x):
            if self.features_extractor is not None:
                raise NotImplementedError("MlpPolicy only")
            x = hidden_layers(self, x)
            head = nn.initializers.orthogonal(scale=1.0)
            return nn.Dense(1, kernel_init=head, bias_init=zeros)(x)

    return SB3InitActor, SB3InitCritic


def _run_sbx(spec):
    import torch
    from sbx import PPO

    if spec["algo"] != "ppo":
        raise ValueError("SBX has PPO only")
    torch.set_num_threads(2)  # SBX keeps SB3's torch rollout buffer
    actor_class, critic_class = _sbx_sb3_init_modules()

    def make_model(env, kwargs):
        kwargs = dict(kwargs)
        policy_kwargs = dict(kwargs.pop("policy_kwargs", {}))
        # SB3's MlpPolicy defaults, spelled out (SBX's defaults equal them except the init).
        policy_kwargs.setdefault("net_arch", {"pi": [64, 64], "vf": [64, 64]})
        policy_kwargs.setdefault("optimizer_kwargs", {"eps": 1e-5})
        policy_kwargs.update(ortho_init=True, actor_class=actor_class, critic_class=critic_class)
        return PPO(
            "MlpPolicy",
            env,
            seed=spec["seed"],
            device="cpu",
            verbose=0,
            policy_kwargs=policy_kwargs,
            **kwargs,
        )

    found = versions(
        "sbx-rl", "jax", "jaxlib", "flax", "optax", "stable_baselines3", "torch", "gymnasium"
    )
    return _sb3_learn_and_evaluate(make_model, spec) + (found,)


def _peak_rss_mb():
    """This process's peak resident memory, in MB.

    `/proc/self/status`'s VmHWM (Linux): `ru_maxrss` starts from the parent's peak (Linux
    keeps it across fork and exec), so a worker spawned by a driver that had imported
    TensorFlow (`--hparams preset`) reported the driver's ~750 MB as its own peak.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WORKERS = {"keras_trust": _run_keras_trust, "sb3": _run_sb3, "sbx": _run_sbx}


def worker(spec):
    train_time, steps, curve, final, n_envs, found = WORKERS[spec["lib"]](spec)
    print(
        json.dumps(
            {
                "lib": spec["lib"],
                "algo": spec["algo"],
                "env": spec["env"],
                "n_envs": n_envs,
                "hparams": spec["hparams"],
                "seed": spec["seed"],
                "budget": spec["timesteps"],
                "timesteps": steps,
                "train_seconds": train_time,
                "fps": steps / train_time,
                "final_return": final,
                "curve": curve,
                "peak_rss_mb": _peak_rss_mb(),
                "python": sys.executable,
                "versions": found,
            }
        )
    )


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]))
