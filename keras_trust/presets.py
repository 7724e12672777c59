"""Tuned hyperparameters per (environment, algorithm), shipped with the package.

The presets live in `presets.json` beside this module; the benchmarks, the command
line and the learning tests all use them, so what is documented is what is run.

Example:
>>> sorted(available())[:1]
[('CartPole-v1', 'ppo')]
>>> agent = make_agent("ppo", "CartPole-v1")  # doctest: +SKIP
"""

import copy
import json
from importlib import resources

import keras

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


def make_optimizer(spec: dict | None):
    """Builds an optimizer from a preset spec like `{"name": "adam", "learning_rate": 1e-3}`."""
    if spec is None:
        return None
    from keras_trust.optimizers import NaturalGradient, TrustRegion

    spec = dict(spec)
    name = spec.pop("name")
    classes = {
        "adam": keras.optimizers.Adam,
        "trust_region": TrustRegion,
        "natural_gradient": NaturalGradient,
    }
    if name not in classes:
        raise ValueError(f"Unknown optimizer {name!r} in preset; expected one of {list(classes)}")
    return classes[name](**spec)


def make_agent(algo: str, env_id: str, preset: dict | None = None, **overrides):
    """A compiled agent for `algo` on `env_id` from its preset (or `preset`), with overrides.

    `overrides` replace entries of the preset's `agent` section (e.g. `n_envs=4`). A
    `kl_penalty` entry given as a dict becomes a `kt.layers.KLPenalty(**dict)`.
    """
    from keras_trust import agents
    from keras_trust.layers import KLPenalty

    algo = algo.lower()
    if algo not in ALGORITHMS:
        raise ValueError(f"Unknown algorithm {algo!r}; expected one of {list(ALGORITHMS)}")
    preset = copy.deepcopy(preset) if preset is not None else get_preset(algo, env_id)
    kwargs = {**preset.get("agent", {}), **overrides}
    if isinstance(kwargs.get("kl_penalty"), dict):
        kwargs["kl_penalty"] = KLPenalty(**kwargs["kl_penalty"])
    agent = getattr(agents, ALGORITHMS[algo])(**kwargs)
    agent.compile(
        optimizer=make_optimizer(preset.get("optimizer")),
        value_optimizer=make_optimizer(preset.get("value_optimizer")),
    )
    return agent
