"""Tuned hyperparameters per (environment, algorithm), shipped with the package.

The presets live in `presets.json` beside this module; the benchmarks, the command
line and the learning tests all use them, so what is documented is what is run.

A learning rate may be written as rl-zoo's `"lin_3e-4"` (linear decay to 0 over the
run): `make_agent` turns it into a `kt.schedules.LinearSchedule` over the optimizer
steps of the run's `total_timesteps`.

Example:
>>> sorted(available())[:1]
[('CartPole-v1', 'ppo')]
>>> agent = make_agent("ppo", "CartPole-v1")  # doctest: +SKIP
"""

import copy
import json
import math
from importlib import resources

import keras

from keras_trust import schedules

# Preset keys and the agent class each one builds.
ALGORITHMS = {"ppo": "PPO", "ppo_kl": "PPO", "trpo": "TRPO", "npg": "TRPO"}


def _load() -> dict:
    with resources.files("keras_trust").joinpath("presets.json").open() as f:
        return json.load(f)


def available() -> list[tuple[str, str]]:
    """`(env_id, algorithm)` pairs that have a preset."""
    return [(env, algo) for env, algos in _load().items() for algo in algos]


def get_preset(algo: str, env_id: str) -> dict:
    """The preset for `algo` on `env_id` (a copy), or `ValueError` naming what exists."""
    algo = algo.lower()
    presets = _load()
    if env_id not in presets or algo not in presets[env_id]:
        names = ", ".join(f"{e}/{a}" for e, a in available())
        raise ValueError(f"No preset for {algo} on {env_id}. Available: {names}")
    return copy.deepcopy(presets[env_id][algo])


def preset_for(algo: str, env_id: str) -> tuple[dict, str]:
    """The preset `algo` trains with on `env_id`, and a note of where it came from.

    An algorithm's own preset comes first (`npg` on CartPole-v1 has one, tuned for
    NPG). For `npg` on an env with only a `trpo` preset, the TRPO preset's optimizer
    becomes a `NaturalGradient` with the same `max_kl` and CG settings (no line search).

    Returns:
        `(preset, source)`, `source` like `"CartPole-v1/npg"` or
        `"Pendulum-v1/trpo as npg"`.
    """
    algo = algo.lower()
    have = set(available())
    if (env_id, algo) in have or algo != "npg" or (env_id, "trpo") not in have:
        return get_preset(algo, env_id), f"{env_id}/{algo}"
    preset = get_preset("trpo", env_id)
    kept = {
        k: v
        for k, v in preset["optimizer"].items()
        if k not in ("name", "backtrack_iters", "backtrack_coeff")
    }
    preset["optimizer"] = {"name": "natural_gradient", **kept}
    return preset, f"{env_id}/trpo as npg"


def optimizer_steps(agent, which: str, total_timesteps: int) -> int:
    """How many steps `agent`'s optimizer `which` takes in a run of `total_timesteps`.

    The length of a learning-rate schedule over the run. One epoch is one rollout of
    `n_envs * n_steps` steps; per epoch PPO's optimizer steps once per minibatch of
    each of its `epochs` passes, TRPO's critic optimizer once per minibatch of each
    of its `value_epochs` passes, and TRPO's policy optimizer once. (PPO with
    `target_kl` may stop passes early and so take fewer steps; the schedule then ends
    above its final value.)

    Args:
        agent: a `kt.PPO` or `kt.TRPO` (built or not).
        which: `"optimizer"` or `"value_optimizer"`.
        total_timesteps: env steps of the run (rounded up to whole epochs, as `fit` does).
    """
    from keras_trust.agents import TRPO

    rows = agent.n_envs * agent.n_steps
    epochs = math.ceil(int(total_timesteps) / rows)
    minibatches = rows // agent.batch_size
    if not isinstance(agent, TRPO):
        per_epoch = agent.epochs * minibatches
    elif which == "value_optimizer":
        per_epoch = agent.value_epochs * minibatches
    else:  # one natural-gradient step per epoch
        per_epoch = 1
    return max(epochs * per_epoch, 1)


def make_optimizer(spec: dict | None, total_steps: int | None = None):
    """Builds an optimizer from a preset spec like `{"name": "adam", "learning_rate": 1e-3}`.

    Args:
        spec: `name` and the optimizer's arguments; a `learning_rate` may be a schedule
            string (`"lin_3e-4"`).
        total_steps: the optimizer's steps over the run, which a schedule needs.
    """
    if spec is None:
        return None
    from keras_trust.optimizers import NaturalGradient, TrustRegion

    spec = dict(spec)
    name = spec.pop("name")
    for key, value in spec.items():
        if (key == "learning_rate" and isinstance(value, str)) or schedules.is_schedule_spec(value):
            if total_steps is None:
                raise ValueError(
                    f"The schedule {key}={value!r} needs the run's length: pass "
                    "total_timesteps to make_agent (or put it in the preset)."
                )
            spec[key] = schedules.schedule_from_spec(value, total_steps)
    classes = {
        "adam": keras.optimizers.Adam,
        "trust_region": TrustRegion,
        "natural_gradient": NaturalGradient,
    }
    if name not in classes:
        raise ValueError(f"Unknown optimizer {name!r} in preset; expected one of {list(classes)}")
    return classes[name](**spec)


def make_agent(
    algo: str,
    env_id: str,
    preset: dict | None = None,
    total_timesteps: int | None = None,
    **overrides,
):
    """A compiled agent for `algo` on `env_id` from its preset (or `preset`), with overrides.

    `overrides` replace entries of the preset's `agent` section (e.g. `n_envs=4`). A
    `kl_penalty` entry given as a dict becomes a `kt.layers.KLPenalty(**dict)`.
    `total_timesteps` (default: the preset's) sets the length of learning-rate
    schedules such as `"lin_3e-4"`.
    """
    from keras_trust import agents
    from keras_trust.layers import KLPenalty

    algo = algo.lower()
    if algo not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algo!r}; expected one of {list(ALGORITHMS)}")
    preset = copy.deepcopy(preset) if preset is not None else preset_for(algo, env_id)[0]
    kwargs = {**preset.get("agent", {}), **overrides}
    if isinstance(kwargs.get("kl_penalty"), dict):
        kwargs["kl_penalty"] = KLPenalty(**kwargs["kl_penalty"])
    if total_timesteps is None:
        total_timesteps = preset.get("total_timesteps")
    scheduled = {k: v for k, v in kwargs.items() if schedules.is_schedule_spec(v)}
    if scheduled and total_timesteps is None:
        raise ValueError(f"The schedules {scheduled} need the run's length: pass total_timesteps.")
    for key in scheduled:  # e.g. PPO's clip_ratio="lin_0.2": placeholders to size the run
        kwargs[key] = 0.0 if key == "ent_coef" else 1.0
    agent = getattr(agents, ALGORITHMS[algo])(**kwargs)
    if scheduled:
        steps = optimizer_steps(agent, "optimizer", total_timesteps)
        kwargs.update({k: schedules.schedule_from_spec(v, steps) for k, v in scheduled.items()})
        agent = getattr(agents, ALGORITHMS[algo])(**kwargs)
    optimizers = {}
    for which in ("optimizer", "value_optimizer"):
        steps = None
        if total_timesteps is not None and preset.get(which) is not None:
            steps = optimizer_steps(agent, which, total_timesteps)
        optimizers[which] = make_optimizer(preset.get(which), steps)
    agent.compile(**optimizers)
    return agent
