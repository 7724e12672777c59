"""`RaySampler`: the envs are stepped on Ray actors, the learner stays on the driver.

Each epoch the driver puts the agent's weights in the Ray object store once; every
worker (`distributed/worker.py`) loads them into its own copy of the agent, steps its
share of the envs with `EnvRunner` and sends back a numpy `Rollout` and its envs'
episodes in progress; the driver joins the parts in worker order and keeps the states.
Env `i` is first reset with `seed + i`, its later episodes with seeds derived from that
and the episode number, and it draws its sampling noise from `(seed, i, epoch)`, so the
rollout is the one the in-process sampler would collect. Because the driver holds each
worker's last state, a worker that dies is continued exactly where it was, and
`state()` / `restore()` carry a Ray run across `save` / `load_agent` like an in-process
one.

Ray is an optional dependency (`pip install "keras-trust[ray]"`); it is imported when a
`RaySampler` is constructed, not when `keras_trust` is.
"""

import uuid
import warnings

import gymnasium as gym
import numpy as np

from keras_trust.distributed.worker import RolloutWorker, import_ray
from keras_trust.rollout.buffer import Rollout
from keras_trust.rollout.collector import Sampler

# Failures in a row of one worker's call before the sampler gives up: the first is
# retried on the same actor (Ray restarts it), the next ones on a new actor.
MAX_FAILURES_IN_A_ROW = 3


class RaySampler(Sampler):
    """Collects rollouts on Ray actors, `envs_per_worker` envs each; the learner stays here.

    Pass it to `fit`: `agent.fit(env, ..., sampler=RaySampler(...))`. The sampler decides
    the env count (`num_workers * envs_per_worker`): an agent left at the default
    `n_envs=1` takes it, another explicit count is a `ValueError`. `env` must be a
    registered id or a picklable zero-argument callable (every worker builds its own
    envs). If Ray is not initialized, `start` calls `ray.init(address=address)` (a local
    Ray when `address` is `None`) and `close` shuts it down again; a Ray the caller
    initialized (or a cluster) is left running.

    A worker that dies (its process crashes or is killed, its node goes away) is
    restarted by Ray, or replaced, and collects its share of the epoch again. It first
    continues its envs from the state it returned with its last rollout (the driver
    keeps a copy: seeds, episode numbers and the actions since each reset, replayed and
    checked against an observation digest), so the re-collected share is the one the dead
    worker would have produced and the whole `fit` is bit-identical to one without the
    crash. Only an env that is not deterministic given its seed (or a source keras_trust
    cannot resume, such as EnvPool) starts fresh episodes instead, with a warning.
    `fit` logs `sampler_restarts` (so far) and `sampler_workers`. `state()` and
    `restore()` make a Ray run resume exactly after `save` / `load_agent`, too.

    Args:
        num_workers: Ray actors stepping envs. Defaults to `2`.
        envs_per_worker: envs of each actor (a sync vector env). Defaults to `1`.
        address: Ray cluster to connect to (`"auto"`, `"ray://head:10001"`), or `None`
            for a local Ray. Used only if Ray is not initialized yet.
        max_restarts: times Ray restarts each worker actor after it dies. Defaults to `3`.
        num_cpus_per_worker: CPUs Ray reserves for each actor. Defaults to `1`. On a
            cluster, leave enough free CPUs on the other nodes for the actors of a node
            that dies, or Ray cannot place them again.
        resources_per_worker: custom Ray resources each actor needs, e.g. `{"envs": 1}`
            to keep the workers on nodes started with `--resources='{"envs": 4}'`.
            Defaults to `None` (none).
        scheduling_strategy: how Ray places the actors on nodes: `None` (Ray's default,
            which packs them), `"SPREAD"` (over the nodes, one per node first) or a
            `ray.util.scheduling_strategies` object. Defaults to `None`.

    Raises:
        ImportError: Ray is not installed.

    Example:
    >>> agent = kt.PPO(n_steps=256)  # doctest: +SKIP
    >>> agent.fit("CartPole-v1", 100_000,
    ...           sampler=kt.distributed.RaySampler(num_workers=2, envs_per_worker=2))
    """

    def __init__(
        self,
        num_workers: int = 2,
        envs_per_worker: int = 1,
        address: str | None = None,
        max_restarts: int = 3,
        num_cpus_per_worker: float = 1,
        resources_per_worker: dict | None = None,
        scheduling_strategy=None,
    ):
        self._ray = import_ray()
        for name, value, low in (
            ("num_workers", num_workers, 1),
            ("envs_per_worker", envs_per_worker, 1),
            ("max_restarts", max_restarts, 0),
        ):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}. Received: {name}={value!r}")
        if not num_cpus_per_worker >= 0:
            raise ValueError(
                f"num_cpus_per_worker must be >= 0. Received: "
                f"num_cpus_per_worker={num_cpus_per_worker!r}"
            )
        if resources_per_worker is not None and not (
            isinstance(resources_per_worker, dict)
            and all(
                isinstance(k, str) and isinstance(v, int | float) and v >= 0
                for k, v in resources_per_worker.items()
            )
        ):
            raise ValueError(
                "resources_per_worker must be a dict of resource names to non-negative "
                f"amounts. Received: resources_per_worker={resources_per_worker!r}"
            )
        if isinstance(scheduling_strategy, str) and scheduling_strategy not in (
            "DEFAULT",
            "SPREAD",
        ):
            raise ValueError(
                'scheduling_strategy must be None, "DEFAULT", "SPREAD" or a Ray scheduling '
                f"strategy object. Received: scheduling_strategy={scheduling_strategy!r}"
            )
        self.num_workers = int(num_workers)
        self.envs_per_worker = int(envs_per_worker)
        self.address = address
        self.max_restarts = int(max_restarts)
        self.num_cpus_per_worker = num_cpus_per_worker
        self.resources_per_worker = resources_per_worker
        self.scheduling_strategy = scheduling_strategy
        self.workers = []
        self.restarts = 0
        self._started_ray = False
        self._worker_args = None
        self._actor_class = None
        self._reset_bookkeeping()

    def _reset_bookkeeping(self):
        self._incarnations = []
        # Per worker: the state its last collect or restore returned, and the token of
        # that position (None: envs freshly reset from the seed).
        self._states = [None] * self.num_workers
        self._positions = [None] * self.num_workers
        self._agent = self._agent_key = self._agent_spec = None

    @property
    def num_envs(self) -> int:
        return self.num_workers * self.envs_per_worker

    def start(self, env, n_envs, seed):
        if n_envs != self.num_envs:
            raise ValueError(
                f"RaySampler(num_workers={self.num_workers}, envs_per_worker="
                f"{self.envs_per_worker}) steps {self.num_envs} envs, but the agent has "
                f"n_envs={n_envs}; construct the agent with n_envs=num_workers * "
                f"envs_per_worker = {self.num_envs}."
            )
        if isinstance(env, gym.Env | gym.vector.VectorEnv) or not (
            isinstance(env, str) or callable(env)
        ):
            raise ValueError(
                "RaySampler builds the envs on its workers: pass a registered gymnasium id "
                "or a picklable zero-argument callable returning a gymnasium.Env, not an "
                f"env instance. Received: {type(env).__name__}"
            )
        self._stop_workers()
        ray = self._ray
        if not ray.is_initialized():
            if self.address is None:
                ray.init(include_dashboard=False, ignore_reinit_error=True)
            else:
                ray.init(address=self.address, ignore_reinit_error=True)
            self._started_ray = True
        self.restarts = 0
        self._worker_args = (env, seed)
        self._actor_class = ray.remote(RolloutWorker)
        try:
            self.workers = [self._new_worker(k) for k in range(self.num_workers)]
            answers = ray.get([w.spaces.remote() for w in self.workers])
        except BaseException:
            self.close()
            raise
        self._incarnations = [answer[0] for answer in answers]
        self.action_masks = bool(answers[0][3])
        return answers[0][1], answers[0][2]

    def _new_worker(self, k):
        env, seed = self._worker_args
        options = dict(
            max_restarts=self.max_restarts,
            max_task_retries=0,
            num_cpus=self.num_cpus_per_worker,
        )
        if self.resources_per_worker:
            options["resources"] = dict(self.resources_per_worker)
        if self.scheduling_strategy is not None:
            options["scheduling_strategy"] = self.scheduling_strategy
        actor = self._actor_class.options(**options)
        return actor.remote(env, self.envs_per_worker, k * self.envs_per_worker, seed)

    def collect(self, agent, n_steps, iteration):
        ray = self._ray
        if not self.workers:
            raise RuntimeError("RaySampler.collect() before start(): call start(env, ...) first.")
        if agent is not self._agent:
            spec = (type(agent), agent.get_config(), agent.get_build_config())
            self._agent, self._agent_key = agent, uuid.uuid4().hex
            self._agent_spec = [ray.put(spec)]
        weights = ray.put(agent.get_weights())
        next_position = uuid.uuid4().hex

        def submit(k, recover):
            position, state = self._recovery(k) if recover else (self._positions[k], None)
            return self.workers[k].collect.remote(
                self._agent_key,
                self._agent_spec,
                weights,
                n_steps,
                iteration,
                position,
                state,
                next_position,
            )

        pending = [submit(k, False) for k in range(self.num_workers)]
        parts = []
        for k, ref in enumerate(pending):
            _, rollout, state, continued = self._answer(k, ref, submit, f"epoch {iteration}")
            if continued is False:
                warnings.warn(
                    f"Ray rollout worker {k} was restarted and could not continue its envs' "
                    "episodes (see the worker's warning); they start fresh episodes, so this "
                    "fit is no longer identical to one without the restart.",
                    stacklevel=2,
                )
            self._states[k] = state
            self._positions[k] = None if state is None else next_position
            parts.append(rollout)
        return Rollout.concatenate(parts)

    def state(self):
        """The union of the workers' last states (per-env keys), or None if one is missing."""
        if not self.workers or any(s is None for s in self._states):
            return None
        out = {}
        for s in self._states:
            out.update(s)
        return out

    def restore(self, state):
        """Sends each worker its envs' part of `state`; True if every worker continued.

        If one cannot, every worker goes back to fresh episodes (as the in-process
        sampler does), so the envs never mix continued and fresh episodes.
        """
        if not self.workers:
            raise RuntimeError("RaySampler.restore() before start(): call start(env, ...) first.")
        parts = [self._part(state, k) for k in range(self.num_workers)]
        if any(not part for part in parts):
            return False
        position = uuid.uuid4().hex

        def submit(k, recover):
            return self.workers[k].restore.remote(parts[k], position)

        pending = [submit(k, True) for k in range(self.num_workers)]
        answers = [self._answer(k, ref, submit, "restore") for k, ref in enumerate(pending)]
        if all(continued for _, continued in answers):
            self._states = parts
            self._positions = [position] * self.num_workers
            return True
        # Expecting fresh envs (None) makes every worker reset them at its next collect.
        self._states = [None] * self.num_workers
        self._positions = [None] * self.num_workers
        return False

    def _recovery(self, k):
        """`(position, state)` sent with a call to a worker that died or lost its envs:
        where its envs were after its last collect or restore, and their state there."""
        return self._positions[k], self._states[k]

    def _part(self, state, k) -> dict:
        """Worker `k`'s keys of `state` (`env{i}/...` for its envs `i`)."""
        first = k * self.envs_per_worker
        prefixes = tuple(f"env{i}/" for i in range(first, first + self.envs_per_worker))
        part = {key: value for key, value in state.items() if key.startswith(prefixes)}
        if any(f"{p}base" not in part for p in prefixes):
            return {}
        return part

    def placement(self) -> list:
        """Per worker, where it runs now: `{"node_id", "hostname", "pid", "incarnation"}`.

        Shows how Ray spread the workers over a cluster's nodes (`scheduling_strategy`).
        """
        return self._ray.get([w.where.remote() for w in self.workers])

    def _answer(self, k, ref, submit, what):
        """Worker `k`'s answer; the call is sent again (to a restarted or new actor, with
        the worker's last state) if it died, or if it asks for its state."""
        ray = self._ray
        failures = 0
        while True:
            try:
                answer = ray.get(ref)
            except ray.exceptions.RayActorError as exc:  # ActorDied/ActorUnavailable too
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    first = k * self.envs_per_worker
                    raise RuntimeError(
                        f"Ray rollout worker {k} (envs {first}..{first + self.envs_per_worker - 1}"
                        f") failed {failures} times in a row in {what}; giving up. "
                        f"Last error: {type(exc).__name__}: {exc}"
                    ) from exc
                if failures > 1:  # Ray did not bring the actor back: replace it
                    ray.kill(self.workers[k], no_restart=True)
                    self.workers[k] = self._new_worker(k)
                ref = submit(k, True)
                continue
            if answer[0] != self._incarnations[k]:
                self.restarts += 1
                self._incarnations[k] = answer[0]
            if len(answer) == 4 and answer[1] is None:  # a restarted worker asks for its state
                ref = submit(k, True)
                continue
            return answer

    def logs(self):
        return {
            "sampler_restarts": float(self.restarts),
            "sampler_workers": float(self.num_workers),
        }

    def close(self):
        self._stop_workers()
        if self._started_ray:
            self._ray.shutdown()
            self._started_ray = False

    def _stop_workers(self):
        ray = self._ray
        if self.workers:
            try:  # let the workers close their envs, then make sure they are gone
                ray.wait(
                    [w.close.remote() for w in self.workers],
                    num_returns=len(self.workers),
                    timeout=5,
                )
            except Exception:
                pass
            for w in self.workers:
                try:
                    ray.kill(w, no_restart=True)
                except Exception:
                    pass
        self.workers = []
        self._reset_bookkeeping()
