"""`RolloutWorker`: what one Ray actor of a `RaySampler` runs.

A worker holds a vector env of its share of the envs and a copy of the agent. It can
die at any moment (its process crashes, its node goes away); Ray then re-runs only
`__init__`, so everything else is rebuilt lazily from the next call. To make the
re-collected share exactly the one the dead worker would have produced, every `collect`
returns the runner's `state()` (the envs' episodes in progress, `rollout/env_state.py`)
and the driver keeps it; a worker whose envs are not where the driver expects them
(`position`) continues them from that state before collecting.
"""

import os
import socket
import uuid

import numpy as np

from keras_trust.rollout.collector import EnvRunner
from keras_trust.rollout.envs import make_vector_env, resumable


def import_ray():
    """The `ray` module, or an `ImportError` that names the extra to install."""
    try:
        import ray  # absolute import: the Ray package, not keras_trust.distributed.ray
    except ImportError as exc:
        raise ImportError(
            'RaySampler needs Ray, an optional dependency: pip install "keras-trust[ray]"'
        ) from exc
    return ray


class RolloutWorker:
    """A vector env of `n_envs` envs and a copy of the agent, stepped on a Ray actor.

    `incarnation` changes with every (re)start of the actor, so the driver can count
    restarts. `position` names where the envs stand: None for envs freshly reset from
    the seed, otherwise the token the driver gave the collect or restore that brought
    them there. The driver sends the token it expects with every collect; a worker that
    is elsewhere (Ray restarted it, or it replaces a dead one) either resets fresh envs
    (the driver expects None) or continues the driver's copy of its last state, asking
    for it (`collect` returns no rollout) if the driver did not send it.

    Args:
        env: a registered gymnasium id or a zero-argument callable returning an Env.
        n_envs: envs of this worker.
        first_index: global index of its first env (env ids `first_index + j`).
        seed: env `first_index + j` is first reset with `seed + first_index + j`.
    """

    def __init__(self, env, n_envs: int, first_index: int, seed: int | None):
        import tensorflow as tf

        try:  # one thread per worker: the actor holds one CPU; before any TF op here
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already started in this process (local mode)
            pass
        self.env = env
        self.n_envs = n_envs
        self.first_index = first_index
        self.seed = seed
        self.incarnation = uuid.uuid4().hex
        self.position = None
        self.runner = None
        self.agent = None
        self.agent_key = None

    def _runner(self) -> EnvRunner:
        if self.runner is None:
            envs, _ = make_vector_env(self.env, self.n_envs, first_index=self.first_index)
            seed = None if self.seed is None else self.seed + self.first_index
            env_ids = np.arange(self.first_index, self.first_index + self.n_envs)
            self.runner = EnvRunner(envs, env_ids, seed=seed, resumable=resumable(self.env))
        return self.runner

    def _fresh(self) -> None:
        """Back to envs freshly reset from the seed (what a new actor has)."""
        self.close()
        self.position = None

    def spaces(self):
        """`(incarnation, observation_space, action_space, has_masks)` of the worker's envs."""
        runner = self._runner()
        envs = runner.envs
        return (
            self.incarnation,
            envs.single_observation_space,
            envs.single_action_space,
            runner.has_masks,
        )

    def where(self) -> dict:
        """Where this worker runs: Ray `node_id`, `hostname`, `pid` and its `incarnation`.

        For placement checks and logs: which node of a cluster steps which envs.
        """
        ray = import_ray()
        return {
            "node_id": ray.get_runtime_context().get_node_id(),
            "hostname": socket.gethostname(),
            "pid": os.getpid(),
            "incarnation": self.incarnation,
        }

    def restore(self, state: dict, position: str):
        """`(incarnation, continued)`: continues the episodes of `state` (its envs' keys).

        If they cannot be continued (`EnvRunner.restore` warns why) the envs are fresh.
        """
        continued = self._runner().restore(state)
        self.position = position if continued else None
        return self.incarnation, continued

    def collect(
        self,
        agent_key: str,
        agent_spec: list,
        weights,
        n_steps: int,
        iteration: int,
        position=None,
        state=None,
        next_position=None,
    ):
        """`(incarnation, rollout, state, continued)`: `n_steps` steps with `weights`.

        `agent_spec` is `[ref]`, a list around the object ref of `(class, config,
        build_config)`, so Ray passes the ref itself and it is fetched only when
        `agent_key` names an agent this actor has not built. `position` is where the
        driver expects the envs, `state` (optional) the driver's copy of the state that
        is there; after the rollout the envs stand at `next_position` and `state` is the
        runner's new state (None for envs that cannot be resumed). `rollout` is None
        when the envs are not at `position` and no `state` was sent: the driver resends
        the call with it. `continued` says whether a sent state was continued (None when
        none was needed).
        """
        continued = None
        if self.position != position:
            if position is None:
                self._fresh()
            elif state is None:
                return self.incarnation, None, None, None
            else:
                continued = self._runner().restore(state)
        if self.agent_key != agent_key:
            ray = import_ray()
            cls, config, build_config = ray.get(agent_spec[0])
            agent = cls.from_config(config)
            agent.build_from_config(build_config)
            self.agent, self.agent_key = agent, agent_key
        self.agent.set_weights(weights)
        runner = self._runner()
        rollout = runner.collect(self.agent, n_steps, iteration)
        new_state = runner.state()
        self.position = None if new_state is None else next_position
        return self.incarnation, rollout, new_state, continued

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None
