"""Rollout workers on Ray: `RaySampler` steps the environments on Ray actors.

The learner stays on the driver. Each epoch the driver puts the agent's weights in
the Ray object store once; every worker loads them into its own copy of the agent,
steps its share of the envs with `EnvRunner` and sends back a numpy `Rollout`, and the
driver joins the parts in worker order. Env `i` is reset with `seed + i` and draws its
sampling noise from `(seed, i, epoch)`, so the rollout is the one the in-process
sampler would collect.

Ray is an optional dependency (`pip install "keras-trust[ray]"`); it is imported when a
`RaySampler` is constructed, not when `keras_trust` is.
"""

import uuid

import gymnasium as gym
import numpy as np

from keras_trust.rollout.buffer import Rollout
from keras_trust.rollout.collector import EnvRunner, Sampler
from keras_trust.rollout.envs import make_vector_env

# Failures in a row of one worker's share of a rollout before `collect` gives up:
# the first is retried on the same actor (Ray restarts it), the next on a new actor.
MAX_FAILURES_IN_A_ROW = 3


def _import_ray():
    try:
        import ray  # absolute import: the Ray package, not this module
    except ImportError as exc:
        raise ImportError(
            'RaySampler needs Ray, an optional dependency: pip install "keras-trust[ray]"'
        ) from exc
    return ray


class RolloutWorker:
    """What one Ray actor runs: a vector env of `n_envs` envs and a copy of the agent.

    The env is built on first use and the agent when the driver's agent changes, so an
    actor that Ray restarts after a crash (which re-runs only `__init__`) rebuilds both
    from the next call. `incarnation` changes with every restart.

    Args:
        env: a registered gymnasium id or a zero-argument callable returning an Env.
        n_envs: envs of this worker.
        first_index: global index of its first env (env ids `first_index + j`).
        seed: the fit's seed; env `first_index + j` is reset with `seed + first_index + j`.
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
        self.runner = None
        self.agent = None
        self.agent_key = None

    def _runner(self) -> EnvRunner:
        if self.runner is None:
            envs, _ = make_vector_env(self.env, self.n_envs, first_index=self.first_index)
            seed = None if self.seed is None else self.seed + self.first_index
            env_ids = np.arange(self.first_index, self.first_index + self.n_envs)
            self.runner = EnvRunner(envs, env_ids, seed=seed)
        return self.runner

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

    def collect(self, agent_key: str, agent_spec: list, weights, n_steps: int, iteration: int):
        """`(incarnation, rollout)`: `n_steps` steps of this worker's envs with `weights`.

        `agent_spec` is `[ref]`, a list around the object ref of `(class, config,
        build_config)`, so Ray passes the ref itself and it is fetched only when
        `agent_key` names an agent this actor has not built.
        """
        if self.agent_key != agent_key:
            ray = _import_ray()
            cls, config, build_config = ray.get(agent_spec[0])
            agent = cls.from_config(config)
            agent.build_from_config(build_config)
            self.agent, self.agent_key = agent, agent_key
        self.agent.set_weights(weights)
        return self.incarnation, self._runner().collect(self.agent, n_steps, iteration)

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()
            self.runner = None


class RaySampler(Sampler):
    """Collects rollouts on Ray actors, `envs_per_worker` envs each; the learner stays here.

    Pass it to `fit`: `agent.fit(env, ..., sampler=RaySampler(...))`, with the agent
    constructed with `n_envs=num_workers * envs_per_worker`. `env` must be a registered
    id or a picklable zero-argument callable (every worker builds its own envs). If Ray
    is not initialized, `start` calls `ray.init(address=address)` (a local Ray when
    `address` is `None`) and `close` shuts it down again; a Ray the caller initialized is
    left running.

    A worker that dies (its process crashes or is killed) is restarted by Ray, or
    replaced, and its share of the rollout is collected again from freshly reset envs;
    `fit` logs `sampler_restarts` (so far) and `sampler_workers`.

    Args:
        num_workers: Ray actors stepping envs. Defaults to `2`.
        envs_per_worker: envs of each actor (a sync vector env). Defaults to `1`.
        address: Ray cluster to connect to (`"auto"`, `"ray://head:10001"`), or `None`
            for a local Ray. Used only if Ray is not initialized yet.
        max_restarts: times Ray restarts each worker actor after it dies. Defaults to `3`.
        num_cpus_per_worker: CPUs Ray reserves for each actor. Defaults to `1`.

    Raises:
        ImportError: Ray is not installed.

    Example:
    >>> agent = kt.PPO(n_envs=4, n_steps=256)  # doctest: +SKIP
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
    ):
        self._ray = _import_ray()
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
        self.num_workers = int(num_workers)
        self.envs_per_worker = int(envs_per_worker)
        self.address = address
        self.max_restarts = int(max_restarts)
        self.num_cpus_per_worker = num_cpus_per_worker
        self.workers = []
        self.restarts = 0
        self._started_ray = False
        self._worker_args = None
        self._actor_class = None
        self._incarnations = []
        self._agent = None
        self._agent_key = None
        self._agent_spec = None

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
        actor = self._actor_class.options(
            max_restarts=self.max_restarts,
            max_task_retries=0,
            num_cpus=self.num_cpus_per_worker,
        )
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

        def submit(k):
            return self.workers[k].collect.remote(
                self._agent_key, self._agent_spec, weights, n_steps, iteration
            )

        pending = [submit(k) for k in range(self.num_workers)]
        parts = [self._result(k, ref, submit, iteration) for k, ref in enumerate(pending)]
        return Rollout.concatenate(parts)

    def _result(self, k, ref, submit, iteration):
        """Worker `k`'s rollout; re-collected on a restarted or new actor if it died."""
        ray = self._ray
        failures = 0
        while True:
            try:
                incarnation, rollout = ray.get(ref)
                break
            except ray.exceptions.RayActorError as exc:  # ActorDied/ActorUnavailable too
                failures += 1
                if failures >= MAX_FAILURES_IN_A_ROW:
                    first = k * self.envs_per_worker
                    raise RuntimeError(
                        f"Ray rollout worker {k} (envs {first}..{first + self.envs_per_worker - 1}"
                        f") failed {failures} times in a row collecting epoch {iteration}; "
                        f"giving up. Last error: {type(exc).__name__}: {exc}"
                    ) from exc
                if failures > 1:  # Ray did not bring the actor back: replace it
                    ray.kill(self.workers[k], no_restart=True)
                    self.workers[k] = self._new_worker(k)
                ref = submit(k)
        if incarnation != self._incarnations[k]:
            self.restarts += 1
            self._incarnations[k] = incarnation
        return rollout

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
        self._incarnations = []
        self._agent = self._agent_key = self._agent_spec = None
