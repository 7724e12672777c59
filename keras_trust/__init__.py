"""keras_trust: trust-region reinforcement learning for Keras 3.

PPO, TRPO and natural policy gradient as Keras-style agents (`compile`/`fit`/
`evaluate`/`save`/`export`), with Keras 3 optimizers `NaturalGradient` and
`TrustRegion` and a `KLPenalty` layer with adaptive beta.

Example:
>>> import keras_trust as kt
>>> agent = kt.PPO(n_steps=256)                       # doctest: +SKIP
>>> agent.fit("CartPole-v1", total_timesteps=10_000)  # doctest: +SKIP
"""

__version__ = "0.1.0"

# First, before TensorFlow loads: quiets its start-up logs in the `keras-trust` command's
# own process; a no-op in every other one (see keras_trust/command.py).
from keras_trust.command import prepare_command_process

prepare_command_process()

from keras_trust._backend import check_backend  # noqa: E402

check_backend()

from keras_trust import (  # noqa: E402
    callbacks,
    distributed,
    distributions,
    layers,
    networks,
    ops,
    optimizers,
    performance,
    presets,
    rollout,
    schedules,
    supervised,
)
from keras_trust.agents import PPO, TRPO, Agent, load_agent  # noqa: E402

__all__ = [
    "PPO",
    "TRPO",
    "Agent",
    "__version__",
    "callbacks",
    "distributed",
    "distributions",
    "layers",
    "load_agent",
    "networks",
    "ops",
    "optimizers",
    "performance",
    "presets",
    "rollout",
    "schedules",
    "supervised",
]
