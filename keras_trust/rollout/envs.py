"""Turning what users pass as `env` into a gymnasium vector env, with faults named by index."""

import gymnasium as gym
import numpy as np

from keras_trust.rollout.env_state import ResumableEpisodes


class EnvError(RuntimeError):
    """An exception raised inside an environment, re-raised naming the env index."""


class EnvOutputError(EnvError, ValueError):
    """An env returned something its spaces do not allow (shape, dtype, reward type)."""


def output_checker(space):
    """A fast check of one observation against `space`: None if fine, else what is wrong.

    Shapes and dtype kinds only (not bounds): enough to stop a wrong shape or a non-numeric
    value at the env that made it, cheaply enough for every step.
    """
    if isinstance(space, gym.spaces.Dict):
        checks = {k: output_checker(s) for k, s in space.spaces.items()}

        def check(obs):
            if not isinstance(obs, dict) or set(obs) != set(checks):
                return f"a dict with keys {sorted(checks)}, got {type(obs).__name__}"
            return next((f"[{k!r}]: {e}" for k, c in checks.items() if (e := c(obs[k]))), None)

        return check
    if isinstance(space, gym.spaces.Tuple):
        checks = [output_checker(s) for s in space.spaces]

        def check(obs):
            if not isinstance(obs, tuple) or len(obs) != len(checks):
                return f"a tuple of {len(checks)}, got {type(obs).__name__}"
            return next(
                (f"[{i}]: {e}" for i, (c, o) in enumerate(zip(checks, obs)) if (e := c(o))), None
            )

        return check
    if not isinstance(
        space,
        gym.spaces.Box | gym.spaces.Discrete | gym.spaces.MultiBinary | gym.spaces.MultiDiscrete,
    ):
        return lambda obs: None  # unsupported spaces are named by the agent's own check
    shape = () if isinstance(space, gym.spaces.Discrete) else tuple(space.shape)

    def check(obs):
        array = np.asarray(obs)
        if array.shape != shape:
            return f"shape {shape}, got shape {array.shape}"
        if array.dtype.kind not in "biuf":
            return f"numbers, got dtype {array.dtype}"
        return None

    return check


def kept_info(info: dict) -> dict:
    """The part of an env's info that keras_trust reads: its action mask, if any.

    The vector env turns every info key into arrays at every step (for MuJoCo's four
    reward terms, or ALE's lives and frame numbers, a large share of the step's Python
    cost); nothing in a rollout reads them, so only the mask goes on.
    """
    return {"action_mask": info["action_mask"]} if "action_mask" in info else {}


class _IndexedEnv(gym.Wrapper):
    """Re-raises any exception of `step`/`reset` as `EnvError` naming the env index.

    Its infos keep only what keras_trust reads (`kept_info`).
    """

    def __init__(self, env, index):
        super().__init__(env)
        self.index = index
        self._check = output_checker(env.observation_space)

    def _call(self, method, *args, **kwargs):
        try:
            return getattr(self.env, method)(*args, **kwargs)
        except Exception as exc:
            raise EnvError(
                f"Environment {self.index} raised {type(exc).__name__} in {method}(): {exc}"
            ) from exc

    def _checked(self, method, obs, reward=0.0):
        problem = self._check(obs)
        if problem is not None:
            raise EnvOutputError(
                f"Environment {self.index} returned from {method}() an observation that does "
                f"not fit its observation space {self.observation_space}: expected {problem}."
            )
        if not (np.ndim(reward) == 0 and np.asarray(reward).dtype.kind in "biuf"):
            raise EnvOutputError(
                f"Environment {self.index} returned from {method}() a reward that is not a "
                f"number: expected a numeric scalar, got {reward!r}."
            )

    def step(self, action):
        obs, reward, terminated, truncated, info = self._call("step", action)
        self._checked("step", obs, reward)
        return obs, reward, terminated, truncated, kept_info(info)

    def reset(self, **kwargs):
        obs, info = self._call("reset", **kwargs)
        self._checked("reset", obs)
        return obs, kept_info(info)


def make_env(env_id: str):
    """`gym.make(env_id)`, with an unknown id reported as `ValueError`."""
    try:
        return gym.make(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"Unknown environment id {env_id!r}: {exc}") from exc


def env_factories(env, n_envs: int, first_index: int = 0) -> list:
    """Zero-argument callables building `n_envs` copies of `env` (an id or a callable)."""
    if isinstance(env, str):
        make_env(env).close()  # fail now, with a clear message, on an unknown id
        base = env

        def build(index):
            return lambda: ResumableEpisodes(_IndexedEnv(make_env(base), index), index)

    elif callable(env) and not isinstance(env, gym.Env):
        base = env

        def build(index):
            return lambda: ResumableEpisodes(_IndexedEnv(_checked_env(base()), index), index)

    else:
        raise ValueError(
            f"Cannot make {n_envs} copies of {env!r}: pass a registered gymnasium id or a "
            "zero-argument callable returning a gymnasium.Env."
        )
    return [build(first_index + i) for i in range(n_envs)]


def _checked_env(env):
    if not isinstance(env, gym.Env):
        raise ValueError(
            f"The env callable must return a gymnasium.Env. Received: {type(env).__name__}"
        )
    return env


def make_vector_env(env, n_envs: int, vectorization: str = "sync", first_index: int = 0):
    """Returns `(vector_env, owned)`: a NEXT_STEP-autoreset vector env of `n_envs` copies.

    `env` may be a registered id, a `gymnasium.Env` (only with `n_envs == 1`), a
    zero-argument callable returning one, or a `gymnasium.vector.VectorEnv` (used as is;
    its `num_envs` must equal `n_envs`). `owned` tells whether keras_trust created the
    vector env (and so closes it when done).

    Raises:
        ValueError: unknown id, wrong types, a count mismatch, or an autoreset mode
            other than NEXT_STEP.
    """
    if vectorization not in ("sync", "async"):
        raise ValueError(
            f"vectorization must be 'sync' or 'async'. Received: vectorization={vectorization!r}"
        )
    from keras_trust.rollout.envpool_source import is_envpool_source, make_envpool_vector_env

    if is_envpool_source(env):  # "envpool:ID" or an EnvPool env; it vectorizes itself
        return make_envpool_vector_env(env, n_envs)
    if isinstance(env, gym.vector.VectorEnv):
        if env.num_envs != n_envs:
            raise ValueError(
                f"The vector env has {env.num_envs} envs but the agent has n_envs={n_envs}; "
                f"construct the agent with n_envs={env.num_envs}."
            )
        mode = env.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
        if mode != gym.vector.AutoresetMode.NEXT_STEP:
            raise ValueError(
                f"keras_trust needs a vector env with autoreset_mode=NEXT_STEP. Received: {mode}"
            )
        return env, False
    if isinstance(env, gym.Env):
        if n_envs != 1:
            raise ValueError(
                f"A gymnasium.Env instance cannot be copied into n_envs={n_envs} envs: pass its "
                "id or a zero-argument callable that builds one."
            )
        # The caller's env instance: stepped in this process, and left open at the end.
        wrapped = ResumableEpisodes(_IndexedEnv(env, first_index), first_index)
        return gym.vector.SyncVectorEnv([lambda: wrapped]), False
    factories = env_factories(env, n_envs, first_index)
    if vectorization == "async":
        vec = gym.vector.AsyncVectorEnv(factories, context="spawn")
    else:
        vec = gym.vector.SyncVectorEnv(factories)
    return vec, True


def resumable(env) -> bool:
    """Whether the vector env `make_vector_env` builds from `env` keeps resumable episodes.

    True for what keras_trust wraps itself: an id, a callable, an `Env` instance; False
    for a user's `VectorEnv`, whose sub-envs it cannot reach.
    """
    from keras_trust.rollout.envpool_source import is_envpool_source

    if is_envpool_source(env):
        return False
    if isinstance(env, str):
        return True
    return not isinstance(env, gym.vector.VectorEnv) and (isinstance(env, gym.Env) or callable(env))


def env_key(env) -> str:
    """What identifies `env` across processes: its id, or its builder's or class's name."""
    if isinstance(env, str):
        return env
    target = env if callable(env) and not isinstance(env, gym.Env) else type(env)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def single_env(env):
    """A single `gymnasium.Env` from an id, an Env or a callable (for evaluation)."""
    from keras_trust.rollout.envpool_source import is_envpool_source, make_envpool_env

    if is_envpool_source(env):  # "envpool:ID" or a 1-env EnvPool env
        return make_envpool_env(env)
    if isinstance(env, str):
        return make_env(env), True
    if isinstance(env, gym.Env):
        return env, False
    if isinstance(env, gym.vector.VectorEnv):
        raise ValueError("evaluate() needs a single env: pass an id, an Env or a callable.")
    if callable(env):
        return _checked_env(env()), True
    raise ValueError(f"Cannot build an environment from {env!r}.")
