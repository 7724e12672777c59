"""EnvPool as an env source: its C++ vector envs behind the gymnasium interface keras_trust steps.

EnvPool's gymnasium envs already subclass `gymnasium.vector.VectorEnv` and autoreset in
NEXT_STEP mode (the step after an episode's end ignores its action and returns the new
episode's first observation with reward 0 and both flags False), which is what
`EnvRunner` expects. They differ from gymnasium's vector envs in ways that matter to a
trainer, and `EnvPoolVectorEnv` removes each difference:

- Seeds are fixed when the pool is built; `reset(seed=...)` is ignored (with a warning).
  The adapter builds the pool at a seeded reset, giving env `i` the seed `seed + i`, as
  gymnasium's vector envs do, so `fit(seed=s)` repeats the same env streams.
- At the time limit EnvPool reports `terminated = done & ~truncated`: an episode that
  terminates on its last allowed step is reported as truncated only, and a trainer would
  bootstrap a value the env says does not exist. gymnasium's `TimeLimit` reports both
  flags. The adapter builds the pool without a practical time limit and truncates the
  episodes itself at the task's limit, resetting those envs on their next step.
- `observation_space` is one env's space; gymnasium's is the batched one.
- Results carry `info["env_id"]`; the adapter returns them in env order.

A ready pool (`envpool.make_gymnasium(...)`) keeps its own seed and time limit: it cannot
be rebuilt, so the adapter only batches its spaces and orders its results.

`envpool` is imported only when such an env is asked for.
"""

import sys
import warnings

import gymnasium as gym
import numpy as np

PREFIX = "envpool:"

# EnvPool's seeds are int32; gymnasium's `seed + i` is folded into that range.
_SEED_RANGE = 2**31
# The time limit EnvPool is built with when the adapter applies the task's own limit.
_NO_LIMIT = 2**30


def import_envpool():
    """The `envpool` module, or an ImportError saying how to install it."""
    try:
        import envpool
    except ImportError as exc:
        raise ImportError(
            "EnvPool environments need the `envpool` package: `pip install envpool`."
        ) from exc
    return envpool


def is_envpool_source(env) -> bool:
    """Whether `env` asks for EnvPool: an "envpool:ID" string or an EnvPool env object.

    An object can only be an EnvPool env if `envpool` was imported already, so this never
    imports it.
    """
    if isinstance(env, str):
        return env.startswith(PREFIX)
    if "envpool" not in sys.modules:
        return False
    return any(c.__module__.startswith("envpool.") for c in type(env).__mro__)


def _check_gymnasium_pool(pool):
    names = {c.__name__ for c in type(pool).__mro__}
    if "GymnasiumEnvPoolMixin" not in names:
        raise ValueError(
            f"keras_trust steps EnvPool's gymnasium API; {type(pool).__name__} is another "
            "of its APIs. Build it with `envpool.make_gymnasium(...)`."
        )
    config = pool.config
    if int(config["batch_size"]) != int(config["num_envs"]):
        raise ValueError(
            "keras_trust steps every env at each step: build the EnvPool env in sync mode "
            f"(batch_size == num_envs). Received: batch_size={config['batch_size']}, "
            f"num_envs={config['num_envs']}"
        )


def _task_spec(envpool, task_id, kwargs):
    if task_id not in envpool.list_all_envs():
        raise ValueError(
            f"Unknown EnvPool task id {task_id!r} (from {PREFIX + task_id!r}); "
            "`envpool.list_all_envs()` lists the available ones."
        )
    return envpool.make_spec(task_id, **kwargs)


def _env_seeds(seed, num_envs):
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % _SEED_RANGE)
    if isinstance(seed, int | np.integer):
        return [(int(seed) + i) % _SEED_RANGE for i in range(num_envs)]
    seeds = [int(s) for s in seed]
    if len(seeds) != num_envs:
        raise ValueError(
            f"reset(seed=...) got {len(seeds)} seeds for {num_envs} envs. Received: {seed!r}"
        )
    return [s % _SEED_RANGE for s in seeds]


def _merge(n, parts):
    """One `(obs, reward, terminated, truncated, info)` for `n` envs from partial results,
    each `(env_ids, obs, reward, terminated, truncated, info)`.

    Each leaf takes its dtype from the first part that has it; an info entry missing from
    a part is zero for that part's envs.
    """

    def merge(items):
        present = [(ids, v) for ids, v in items if v is not None]
        sample = present[0][1]
        if isinstance(sample, dict):
            keys = dict.fromkeys(k for _, v in present for k in v)
            return {k: merge([(ids, v.get(k)) for ids, v in present]) for k in keys}
        sample = np.asarray(sample)
        out = np.zeros((n, *sample.shape[1:]), dtype=sample.dtype)
        for ids, value in present:
            out[ids] = value
        return out

    return tuple(merge([(p[0], p[k]) for p in parts]) for k in range(1, 6))


class EnvPoolVectorEnv(gym.vector.VectorEnv):
    """An EnvPool env presented as a gymnasium NEXT_STEP vector env (see the module doc).

    Args:
        task_id: an EnvPool task id (`envpool.list_all_envs()`), without the prefix.
        num_envs: number of envs.
        max_episode_steps: the time limit; defaults to the task's.
        **make_kwargs: further arguments of `envpool.make_gymnasium` (e.g. `num_threads`).

    Use `EnvPoolVectorEnv.wrap(pool)` for a ready pool.
    """

    metadata = {"autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, task_id, num_envs, max_episode_steps=None, **make_kwargs):
        self._envpool = import_envpool()
        for key in ("seed", "num_envs", "batch_size"):
            if key in make_kwargs:
                raise ValueError(f"EnvPoolVectorEnv sets {key!r} itself; do not pass it.")
        spec = _task_spec(self._envpool, task_id, make_kwargs)
        self.task_id = task_id
        self._make_kwargs = make_kwargs
        self._limit = int(max_episode_steps or spec.config.max_episode_steps)
        self._pool = None
        self._setup(num_envs, spec.gymnasium_observation_space, spec.gymnasium_action_space)

    @classmethod
    def wrap(cls, pool):
        """A ready gymnasium EnvPool env, kept with its own seed and time limit."""
        _check_gymnasium_pool(pool)
        self = cls.__new__(cls)
        self.task_id = None
        self._limit = None
        self._pool = pool
        self._setup(pool.num_envs, pool.single_observation_space, pool.single_action_space)
        return self

    def _setup(self, num_envs, observation_space, action_space):
        self.num_envs = int(num_envs)
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        self.observation_space = gym.vector.utils.batch_space(observation_space, self.num_envs)
        self.action_space = gym.vector.utils.batch_space(action_space, self.num_envs)
        self._all = np.arange(self.num_envs, dtype=np.int32)
        self._pending = np.zeros(self.num_envs, bool)  # truncated here, reset on next step
        self._warned_seed = False

    @property
    def pool(self):
        """The EnvPool env stepped (None until the first reset of an adapter built by id)."""
        return self._pool

    def reset(self, *, seed=None, options=None):
        """Resets every env. A seed rebuilds the pool with env `i` seeded `seed + i`
        (for a ready pool, seeds cannot apply and are ignored with a warning)."""
        if options:
            raise ValueError(f"EnvPoolVectorEnv.reset takes no options. Received: {options!r}")
        if self.task_id is None:
            if seed is not None and not self._warned_seed:
                warnings.warn(
                    "A ready EnvPool env keeps the seed it was built with; reset(seed=...) "
                    "cannot reseed it. Pass 'envpool:ID' to have fit's seed applied.",
                    stacklevel=2,
                )
                self._warned_seed = True
        elif seed is not None or self._pool is None:
            if self._pool is not None:
                self._pool.close()
            self._pool = self._envpool.make_gymnasium(
                self.task_id,
                num_envs=self.num_envs,
                seed=_env_seeds(seed, self.num_envs),
                max_episode_steps=_NO_LIMIT,
                **self._make_kwargs,
            )
        self._pending[:] = False
        obs, info = self._pool.reset()
        return self._ordered(obs, info)

    def _ordered(self, obs, info, *rest):
        """Results sorted by `info["env_id"]` (EnvPool may return them in any order)."""
        ids = info["env_id"]
        if np.array_equal(ids, self._all):
            return (obs, *rest, info)
        order = np.argsort(ids)
        take = lambda x: x[order] if isinstance(x, np.ndarray) else x  # noqa: E731
        sort = lambda tree: (  # noqa: E731
            {k: sort(v) for k, v in tree.items()} if isinstance(tree, dict) else take(tree)
        )
        return (sort(obs), *map(take, rest), sort(info))

    def step(self, actions):
        actions = np.asarray(actions)
        if not self._pending.any():
            out = self._pool.step(actions)
            obs, reward, terminated, truncated, info = self._ordered(out[0], out[4], *out[1:4])
        else:
            obs, reward, terminated, truncated, info = self._step_with_resets(actions)
        if self._limit is not None:
            at_limit = info["elapsed_step"] >= self._limit
            # Ended by EnvPool (terminated) it resets itself; ended here, it is reset here.
            self._pending = at_limit & ~terminated & ~truncated
            truncated = truncated | at_limit
        return obs, reward, terminated, truncated, info

    def _step_with_resets(self, actions):
        """The NEXT_STEP reset step of the envs truncated here, the others stepped."""
        parts = []
        step_ids = self._all[~self._pending]
        if len(step_ids):
            obs, reward, terminated, truncated, info = self._pool.step(actions[step_ids], step_ids)
            parts.append((info["env_id"], obs, reward, terminated, truncated, info))
        obs, info = self._pool.reset(self._all[self._pending])
        ids, flags = info["env_id"], np.zeros(len(info["env_id"]), bool)
        parts.append((ids, obs, np.zeros(len(ids), np.float32), flags, flags, info))
        return _merge(self.num_envs, parts)

    def close(self, **kwargs):
        if self._pool is not None and self.task_id is not None:
            self._pool.close()
            self._pool = None

    def __repr__(self):
        what = self.task_id if self.task_id is not None else type(self._pool).__name__
        return f"EnvPoolVectorEnv({what!r}, num_envs={self.num_envs})"


class EnvPoolEnv(gym.Env):
    """One EnvPool env as a `gymnasium.Env` (what `evaluate` steps).

    Evaluating on EnvPool itself, rather than on the gymnasium id after the prefix, keeps
    the simulator, its version and its time limit those the agent was trained on.
    """

    def __init__(self, vector_env: EnvPoolVectorEnv):
        if vector_env.num_envs != 1:
            raise ValueError(
                f"A single env needs an EnvPool env of 1 env. Received: {vector_env.num_envs}"
            )
        self.vector_env = vector_env
        self.observation_space = vector_env.single_observation_space
        self.action_space = vector_env.single_action_space

    def reset(self, *, seed=None, options=None):
        obs, info = self.vector_env.reset(seed=seed, options=options)
        return _first(obs), _first(info)

    def step(self, action):
        batch = np.asarray(action)[None]
        obs, reward, terminated, truncated, info = self.vector_env.step(batch)
        return _first(obs), float(reward[0]), bool(terminated[0]), bool(truncated[0]), _first(info)

    def close(self):
        self.vector_env.close()


def _first(tree):
    if isinstance(tree, dict):
        return {k: _first(v) for k, v in tree.items()}
    return tree[0]


def _from_source(env, num_envs):
    """`(EnvPoolVectorEnv, owned)` from an "envpool:ID" string or a ready pool."""
    if isinstance(env, str):
        task_id = env[len(PREFIX) :]
        return EnvPoolVectorEnv(task_id, num_envs), True
    wrapped = EnvPoolVectorEnv.wrap(env)
    if wrapped.num_envs != num_envs:
        raise ValueError(
            f"The EnvPool env has {wrapped.num_envs} envs but the agent has n_envs={num_envs}; "
            f"construct the agent with n_envs={wrapped.num_envs}."
        )
    return wrapped, False


def make_envpool_vector_env(env, num_envs: int):
    """`(vector_env, owned)` for `make_vector_env`: `num_envs` envs of an "envpool:ID"
    string, or a ready gymnasium EnvPool env (not owned: the caller closes it).

    Raises:
        ImportError: `envpool` is not installed.
        ValueError: unknown task id, another EnvPool API than gymnasium's, async mode, or
            a count mismatch.
    """
    return _from_source(env, num_envs)


def make_envpool_env(env):
    """`(gymnasium.Env, owned)` for `single_env`: one env of an "envpool:ID" string or
    of a ready 1-env EnvPool env."""
    vector_env, owned = _from_source(env, 1)
    return EnvPoolEnv(vector_env), owned
