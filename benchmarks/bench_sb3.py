"""keras_trust versus Stable-Baselines3 / sb3-contrib and SBX, side by side on this machine.

All libraries run with identical hyperparameters (SB3's PPO defaults; sb3-contrib's TRPO
defaults: the keras_trust defaults were chosen to equal them, and `sb3_kl_terms` converts
sb3-contrib's per-dimension KL), alternately, each run in its own subprocess (so peak memory
is per run), over several seeds. SBX (`sbx-rl`, Stable-Baselines-Jax) has PPO only: it gets
SB3's PPO arguments and SB3's weight init (`_sbx_sb3_init_modules`); what still differs is
in `SBX_NOTES` (and in the Markdown). Written to `benchmarks/results/sb3.json`, `sb3.md` and
`sb3_<env>_<algo>.png`, or to the `--out` prefix.

Each library's worker runs in its own interpreter: keras_trust's in this one
(`sys.executable`), SB3's in `--sb3-python`, SBX's in `--sbx-python`. A worker imports numpy,
gymnasium and its own library only (never keras_trust for SB3/SBX): the driver translates
presets into SB3 arguments (`sb3_kwargs`) here and hands them over as JSON.

Usage (needs the `bench` extra: `pip install -e ".[bench]"`, or an SB3 venv; SBX:
`python3.11 -m venv /work/venv-sbx && /work/venv-sbx/bin/pip install "torch==2.13.0+cpu"
sbx-rl "gymnasium[mujoco]"`):

    python benchmarks/bench_sb3.py --cases CartPole-v1:1 CartPole-v1:8 Pendulum-v1:1 \\
        --algos ppo trpo --seeds 0 1 --timesteps 20000 100000
"""

import argparse
import json
import os
import pathlib
import platform
import resource
import subprocess
import sys
import time

import numpy as np

RESULTS = pathlib.Path(__file__).resolve().parent / "results"

LIBS = ("keras_trust", "sb3", "sbx")
LABELS = {"keras_trust": "keras_trust", "sb3": "SB3", "sbx": "SBX"}
TITLES = {"sb3": "Stable-Baselines3", "sbx": "SBX (Stable-Baselines-Jax)"}
# Which algorithms each library has (SBX: PPO only; it has no TRPO).
ALGOS = {"keras_trust": ("ppo", "trpo"), "sb3": ("ppo", "trpo"), "sbx": ("ppo",)}
DEFAULT_SB3_PYTHON = "/work/venv-sb3/bin/python"
DEFAULT_SBX_PYTHON = "/work/venv-sbx/bin/python"

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
def _versions(*dists):
    from importlib import metadata

    found = {}
    for name in dists:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def _env_throughput(env_id, n_envs, steps=20_000):
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
    versions = _versions("keras-trust", "tensorflow", "keras", "gymnasium")
    return train_time, agent.num_timesteps, curve, result["mean_return"], agent.n_envs, versions


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

    versions = _versions("stable_baselines3", "sb3_contrib", "torch", "gymnasium")
    return _sb3_learn_and_evaluate(make_model, spec) + (versions,)


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

    versions = _versions(
        "sbx-rl", "jax", "jaxlib", "flax", "optax", "stable_baselines3", "torch", "gymnasium"
    )
    return _sb3_learn_and_evaluate(make_model, spec) + (versions,)


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
    train_time, steps, curve, final, n_envs, versions = WORKERS[spec["lib"]](spec)
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
                "versions": versions,
            }
        )
    )


# --------------------------------------------------------------------- the driver
# Returns that count as "reached" for seconds-to-threshold (mean of the last 100 episodes).
THRESHOLDS = {
    "CartPole-v1": 450.0,
    "Pendulum-v1": -400.0,
    "Acrobot-v1": -100.0,
    "HalfCheetah-v5": 1500.0,
    "Hopper-v5": 1500.0,
    "Walker2d-v5": 1500.0,
}


def _spawn(python, spec):
    cmd = [python, __file__, "--worker", json.dumps(spec)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if spec["lib"] == "sbx":
        env.setdefault("JAX_PLATFORMS", "cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(
            f"{spec['lib']} {spec['algo']} {spec['env']} failed ({python}):\n{out.stderr[-4000:]}"
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def seconds_to_threshold(run):
    """Training seconds until the running episode return first reached the threshold."""
    threshold = THRESHOLDS.get(run["env"])
    for point in run["curve"]:
        if threshold is not None and len(point) > 2 and point[1] >= threshold:
            return float(point[2])
    return None


def _case_key(r):
    """(env, n_envs, algo, hparams, budget); runs from before `budget` was recorded: 0."""
    return (r["env"], r["n_envs"], r["algo"], r.get("hparams", "defaults"), r.get("budget") or 0)


def _summary(runs):
    rows = {}
    for r in runs:
        rows.setdefault(_case_key(r) + (r["lib"],), []).append(r)
    table = []
    for (env, n_envs, algo, hparams, budget, lib), rs in sorted(rows.items()):
        reached = [seconds_to_threshold(r) for r in rs]
        reached = [t for t in reached if t is not None]
        table.append(
            {
                "env": env,
                "n_envs": n_envs,
                "algo": algo,
                "hparams": hparams,
                "budget": budget,
                "lib": lib,
                "seeds": len(rs),
                "timesteps": int(np.mean([r["timesteps"] for r in rs])),
                "fps": float(np.mean([r["fps"] for r in rs])),
                "final_mean": float(np.mean([r["final_return"] for r in rs])),
                "final_std": float(np.std([r["final_return"] for r in rs])),
                "seconds_to_threshold": float(np.mean(reached)) if reached else None,
                "reached": f"{len(reached)}/{len(rs)}",
                "peak_rss_mb": float(np.max([r["peak_rss_mb"] for r in rs])),
            }
        )
    return table


def _markdown(table, env_fps, meta):
    libs = [lib for lib in LIBS if any(r["lib"] == lib for r in table)]
    others = [lib for lib in libs if lib != "keras_trust"]
    title = " and ".join(TITLES[lib] for lib in others) or TITLES["sb3"]
    lines = [
        f"# keras_trust vs {title} (same machine, same hyperparameters)",
        "",
        f"Machine: {meta['machine']}; {meta['date']}. Runs alternate between the libraries, "
        "each in its own process. Returns: deterministic policy, 10 evaluation episodes per "
        "seed, mean +/- std over seeds. Threshold seconds: training time until the mean "
        "return of the last 100 training episodes first reached the threshold "
        f"({', '.join(f'{k} {v:g}' for k, v in THRESHOLDS.items())}); "
        "the count of seeds that reached it is in brackets. fps: env steps over the wall "
        "time of the whole training call, warm-up included. '-': not run (SBX has no TRPO).",
        "",
    ]
    if meta.get("versions"):
        lines += [
            "Versions: "
            + "; ".join(
                f"{LABELS.get(lib, lib)}: " + ", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                for lib, vs in meta["versions"].items()
            )
            + ".",
            "",
        ]
    if "sbx" in libs:
        lines += ["SBX settings:", ""] + [f"- {note}" for note in SBX_NOTES] + [""]
    names = [LABELS[lib] for lib in libs]
    cols = ["env", "n_envs", "algo", "hparams", "steps"]
    cols += [f"{n} fps" for n in names]
    cols += [f"fps ratio keras_trust/{LABELS[lib]}" for lib in others]
    cols += ["random-action env fps"] + [f"{n} return" for n in names]
    cols += [f"threshold s ({' / '.join(names)})", f"peak MB ({' / '.join(names)})"]
    aligns = ["---", "---:", "---", "---"] + ["---:"] * (len(cols) - 4)
    lines += ["| " + " | ".join(cols) + " |", "|" + "|".join(aligns) + "|"]

    def secs(row):
        if row is None:
            return "-"
        t = row["seconds_to_threshold"]
        return ("-" if t is None else f"{t:.0f}") + f" [{row['reached']}]"

    def fmt(row, text):
        return "-" if row is None else text(row)

    by_key = {
        (r["env"], r["n_envs"], r["algo"], r["hparams"], r["budget"], r["lib"]): r for r in table
    }
    cases = sorted({(r["env"], r["n_envs"], r["algo"], r["hparams"], r["budget"]) for r in table})
    for case in cases:
        row = {lib: by_key.get(case + (lib,)) for lib in libs}
        kt_row = row.get("keras_trust")
        if kt_row is None or not any(row[lib] for lib in others):
            continue
        env, n_envs, algo, hparams, _ = case
        env_rate = env_fps.get(f"{env}:{n_envs}")
        cells = [env, str(n_envs), algo, hparams, str(kt_row["timesteps"])]
        cells += [fmt(row[lib], lambda r: f"{r['fps']:.0f}") for lib in libs]
        kt_fps = kt_row["fps"]
        cells += [fmt(row[lib], lambda r, f=kt_fps: f"{f / r['fps']:.2f}x") for lib in others]
        cells += ["-" if env_rate is None else f"{env_rate:.0f}"]
        cells += [
            fmt(row[lib], lambda r: f"{r['final_mean']:.1f} +/- {r['final_std']:.1f}")
            for lib in libs
        ]
        cells += [" / ".join(secs(row[lib]) for lib in libs)]
        cells += [" / ".join(fmt(row[lib], lambda r: f"{r['peak_rss_mb']:.0f}") for lib in libs)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _plots(runs, prefix):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    styles = {"keras_trust": "-", "sb3": "--", "sbx": ":"}
    budgets = sorted({r.get("budget") or 0 for r in runs})
    for env, algo, budget in sorted({(r["env"], r["algo"], r.get("budget") or 0) for r in runs}):
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in runs:
            if (r["env"], r["algo"], r.get("budget") or 0) != (env, algo, budget):
                continue
            if not r["curve"]:
                continue
            x, y = [p[0] for p in r["curve"]], [p[1] for p in r["curve"]]
            label = f"{r['lib']} n_envs={r['n_envs']} seed={r['seed']}"
            ax.plot(x, y, styles.get(r["lib"], "-."), label=label)
        ax.set(title=f"{algo.upper()} on {env}", xlabel="env steps", ylabel="episode return")
        ax.legend(fontsize=6)
        fig.tight_layout()
        # One budget: the old names; several: one figure per budget.
        suffix = f"_{budget // 1000}k" if len(budgets) > 1 else ""
        fig.savefig(f"{prefix}_{env}_{algo}{suffix}.png", dpi=100)
        plt.close(fig)


def report(runs, env_fps, out):
    """Writes `out`.json, `out`.md and `out`_<env>_<algo>.png from the runs."""
    versions = {}
    for r in runs:
        if r.get("versions"):
            versions[r["lib"]] = r["versions"]
    meta = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d"),
        "versions": {lib: versions[lib] for lib in LIBS if lib in versions},
    }
    if any(r["lib"] == "sbx" for r in runs):
        meta["sbx_notes"] = SBX_NOTES
    table = _summary(runs)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "env_fps": env_fps, "summary": table, "runs": runs}, f, indent=1)
    with open(out + ".md", "w") as f:
        f.write(_markdown(table, env_fps, meta))
    _plots(runs, out)


def _pythons(args):
    """The interpreter of each library's worker (an absent default SB3 venv: this one)."""
    sb3 = args.sb3_python
    if sb3 is None:
        sb3 = DEFAULT_SB3_PYTHON if os.path.exists(DEFAULT_SB3_PYTHON) else sys.executable
    sbx = args.sbx_python or DEFAULT_SBX_PYTHON
    return {"keras_trust": sys.executable, "sb3": sb3, "sbx": sbx}


def _libs(args, pythons):
    """The libraries to run (in this order); the default adds SBX only if its python exists."""
    if args.libs:
        for lib in args.libs:
            if not os.path.exists(pythons[lib]):
                raise SystemExit(f"--libs {lib}: no interpreter at {pythons[lib]}")
        return list(args.libs)
    libs = ["keras_trust", "sb3"]
    if "ppo" in args.algos:
        if os.path.exists(pythons["sbx"]):
            libs.append("sbx")
        else:
            print(f"note: no SBX interpreter at {pythons['sbx']}; SBX skipped", file=sys.stderr)
    return libs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases",
        nargs="+",
        default=["CartPole-v1:1", "CartPole-v1:8"],
        help="ENV_ID:N_ENVS pairs (with --hparams preset, N_ENVS comes from the preset)",
    )
    parser.add_argument("--algos", nargs="+", default=["ppo", "trpo"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument(
        "--timesteps",
        "--steps-list",
        nargs="+",
        type=int,
        default=[50_000],
        help="training budget(s) per run; several (e.g. 20000 100000) run one after the "
        "other into the same --out, one table row per budget",
    )
    parser.add_argument(
        "--libs",
        nargs="+",
        choices=LIBS,
        default=None,
        help="libraries to compare (keras_trust must be one; default: keras_trust sb3, and "
        "sbx when --algos has ppo and the --sbx-python interpreter exists). SBX runs PPO "
        "only; its TRPO cells are '-'",
    )
    parser.add_argument(
        "--sb3-python",
        default=None,
        help=f"interpreter with stable-baselines3 + sb3-contrib (default: {DEFAULT_SB3_PYTHON} "
        "if it exists, else this one)",
    )
    parser.add_argument(
        "--sbx-python",
        default=None,
        help=f"interpreter with sbx-rl (default: {DEFAULT_SBX_PYTHON})",
    )
    parser.add_argument(
        "--hparams",
        choices=["defaults", "preset"],
        default="defaults",
        help="defaults: SB3's PPO / sb3-contrib's TRPO defaults in all libraries; "
        "preset: keras_trust's preset for the env, translated to SB3 (and SBX) arguments",
    )
    parser.add_argument("--out", default=str(RESULTS / "sb3"))
    parser.add_argument(
        "--resume", action="store_true", help="keep the runs already in OUT.jsonl and add to them"
    )
    args = parser.parse_args()
    pythons = _pythons(args)
    libs = _libs(args, pythons)
    if "keras_trust" not in libs:
        parser.error("--libs must include keras_trust (the tables are ratios to it)")
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    log = pathlib.Path(args.out + ".jsonl")
    runs = [json.loads(line) for line in log.read_text().splitlines()] if args.resume else []
    for r in runs:
        # Runs logged before the budget was recorded ran with the one --timesteps given.
        if "budget" not in r and len(args.timesteps) == 1:
            r["budget"] = args.timesteps[0]
    if not args.resume:
        log.write_text("")
    env_fps = {}
    for budget in args.timesteps:
        for case in args.cases:
            env_id, _, n_envs = case.partition(":")
            for algo in args.algos:
                sb3_preset = None
                if args.hparams == "preset":
                    import keras_trust as kt

                    preset = kt.presets.get_preset(algo, env_id)
                    n_envs = preset["agent"]["n_envs"]
                    sb3_n_envs, kwargs, normalize = sb3_kwargs(algo, preset, sb3_kl_terms(env_id))
                    sb3_preset = {"n_envs": sb3_n_envs, "kwargs": kwargs, "normalize": normalize}
                n_envs = int(n_envs or 1)
                if f"{env_id}:{n_envs}" not in env_fps:
                    env_fps[f"{env_id}:{n_envs}"] = _env_throughput(env_id, n_envs)
                algo_libs = [lib for lib in libs if algo in ALGOS[lib]]
                for lib in sorted(set(libs) - set(algo_libs)):
                    print(f"note: {LABELS[lib]} has no {algo.upper()}; skipped", flush=True)
                for i, seed in enumerate(args.seeds):
                    # Rotate the order per seed: each library goes first as often as the others.
                    k = i % len(algo_libs)
                    for lib in algo_libs[k:] + algo_libs[:k]:
                        done = [
                            r
                            for r in runs
                            if (r["lib"], r["algo"], r["env"], r["n_envs"], r["seed"])
                            == (lib, algo, env_id, n_envs, seed)
                            and r.get("hparams", "defaults") == args.hparams
                            and r.get("budget") == budget
                        ]
                        if done:
                            continue
                        spec = {
                            "lib": lib,
                            "algo": algo,
                            "env": env_id,
                            "n_envs": n_envs,
                            "seed": seed,
                            "timesteps": budget,
                            "hparams": args.hparams,
                        }
                        if sb3_preset and lib != "keras_trust":
                            spec["sb3"] = sb3_preset
                        run = _spawn(pythons[lib], spec)
                        print(
                            f"{lib:12s} {algo} {env_id} x{run['n_envs']} seed {seed} "
                            f"budget {budget}: {run['fps']:.0f} fps, "
                            f"return {run['final_return']:.1f}",
                            flush=True,
                        )
                        runs.append(run)
                        with log.open("a") as f:
                            f.write(json.dumps(run) + "\n")
        report(runs, env_fps, args.out)
    print(open(args.out + ".md").read())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(json.loads(sys.argv[2]))
    else:
        main()
