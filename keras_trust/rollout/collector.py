"""Samplers: where rollouts come from. The in-process one steps a gymnasium vector env."""

import warnings

import gymnasium as gym
import numpy as np

from keras_trust.observations import ObservationFormat
from keras_trust.rollout import env_state, masks
from keras_trust.rollout.buffer import Rollout
from keras_trust.rollout.envs import EnvError, make_vector_env, resumable


class Sampler:
    """Interface of rollout samplers (in-process here, Ray in `kt.distributed`).

    `start(env, n_envs, seed)` builds the environments and returns their
    `(observation_space, action_space)`; `collect(agent, n_steps, iteration)` returns a
    `Rollout` of `n_steps` steps of every env using the agent's current weights;
    `close()` releases what `start` made. `state()` / `restore(state)` carry the envs'
    episodes in progress across `fit` calls and processes (see `rollout/env_state.py`).
    """

    def start(self, env, n_envs: int, seed: int | None):
        raise NotImplementedError

    def collect(self, agent, n_steps: int, iteration: int) -> Rollout:
        raise NotImplementedError

    # Whether the envs provide action masks (`info["action_mask"]` or `action_masks()`).
    action_masks = False

    def state(self) -> dict | None:
        """The envs' episodes in progress (per-env keyed arrays), or None if not kept."""
        return None

    def restore(self, state: dict) -> bool:
        """Continues the episodes of a `state()`; False (fresh episodes) if it cannot."""
        return False

    def logs(self) -> dict:
        """Extra per-epoch log entries (e.g. worker restarts); merged into `fit`'s logs."""
        return {}

    def close(self) -> None:
        pass


class EnvRunner:
    """Steps one vector env with an agent's policy: the loop shared by all samplers.

    Args:
        envs: a gymnasium vector env in NEXT_STEP autoreset mode.
        env_ids: global indices of its envs (seed streams and error messages use them).
        seed: env `j` is first reset with `seed + j` (gymnasium's vector convention).
        timeout: seconds an async vector step may take (None: no limit).
        resumable: whether the envs are wrapped in `env_state.ResumableEpisodes` (those
            keras_trust builds), so that `state()` and `restore()` work.
    """

    def __init__(self, envs, env_ids, seed=None, timeout=None, resumable=False):
        self.envs = envs
        self.env_ids = np.asarray(env_ids)
        self.timeout = timeout
        self.seed = seed
        self.resumable = resumable
        self.format = ObservationFormat(envs.single_observation_space)
        self.obs, self.infos = envs.reset(seed=seed)
        self.has_masks = masks.env_provides_masks(envs, self.infos)
        self.rnn_state = None  # a recurrent agent's (policy, value) state per env
        n = envs.num_envs
        self.prev_done = np.zeros(n, dtype=bool)
        self.ep_return = np.zeros(n)
        self.ep_length = np.zeros(n, dtype=np.int64)
        self.steps = 0

    def collect(self, agent, n_steps: int, iteration: int) -> Rollout:
        envs, n, fmt = self.envs, self.envs.num_envs, self.format
        policy = agent.acting
        noise = policy.sampling_noise(agent.seed, n_steps, self.env_ids, iteration)
        stepper = policy.rollout(noise)  # a NumPy copy of the networks, or the graph
        act, step = stepper.act, envs.step if self.timeout is None else self._step_with_timeout
        mask_size = agent.action_distribution.mask_size if agent.masked else None
        obs_buf = fmt.empty((n_steps, n))
        mask_buf = None if mask_size is None else np.empty((n_steps, n, mask_size), bool)
        act_buf = None
        logp_buf = np.empty((n_steps, n), dtype=np.float32)
        val_buf = np.empty((n_steps + 1, n), dtype=np.float32)
        rew_buf = np.empty((n_steps, n), dtype=np.float32)
        term_buf = np.empty((n_steps, n), dtype=bool)
        trunc_buf = np.empty((n_steps, n), dtype=bool)
        obs, infos, mask = self.obs, self.infos, None
        recurrent = agent.recurrent
        if recurrent:
            # Each env's state carries over from the last rollout; `starts` resets it at
            # the first step of each episode (the reset step after a done).
            if self.rnn_state is None or len(self.rnn_state[0] + self.rnn_state[1]) == 0:
                self.rnn_state = policy.initial_state(n)
            initial_states = tuple([s.copy() for s in part] for part in self.rnn_state)
            starts = self.prev_done.copy()

            def act(stored, mask):
                *out, p_state, v_state = policy.act_recurrent(stored, mask, *self.rnn_state, starts)
                self.rnn_state = (p_state, v_state)
                return out

        for t in range(n_steps):
            fmt.store(obs_buf, t, obs)
            stored = fmt.take(obs_buf, t)
            if mask_buf is not None:
                mask = mask_buf[t] = self._masks(infos, mask_size, t)
            action, env_action, logp_buf[t], val_buf[t] = act(stored, mask)
            if act_buf is None:
                act_buf = np.empty((n_steps, *action.shape), dtype=action.dtype)
            act_buf[t] = action
            obs, rew_buf[t], term_buf[t], trunc_buf[t], infos = step(env_action)
            if recurrent:
                starts = term_buf[t] | trunc_buf[t]
            if not (np.isfinite(rew_buf[t]).all() and fmt.all_finite(obs)):
                self.steps += t + 1
                self._raise_non_finite(obs, rew_buf[t])
        self.steps += n_steps
        self.obs, self.infos = obs, infos
        if recurrent:
            val_buf[n_steps] = policy.value_recurrent(obs, self.rnn_state[1], starts)
        else:
            val_buf[n_steps] = stepper.value(obs)
        valid_buf, ep_returns, ep_lengths = self._episodes(rew_buf, term_buf | trunc_buf)
        return Rollout(
            obs_buf,
            act_buf,
            logp_buf,
            val_buf,
            rew_buf,
            term_buf,
            trunc_buf,
            valid_buf,
            ep_returns,
            ep_lengths,
            fmt.as_arrays(obs),
            mask_buf,
            initial_states if recurrent else None,
        )

    def state(self) -> dict | None:
        """Each env's episode in progress and bookkeeping, keyed `env{k}/...` by global index.

        Per-env keys let the states of several runners (Ray workers) be merged by a plain
        dict union. None when the envs are not resumable (a user's vector env).
        """
        if not self.resumable:
            return None
        leaves = [np.asarray(leaf) for leaf in self.format.flatten(self.obs)]
        out = {}
        for i, episode in enumerate(self.envs.call("episode_state")):
            k = int(self.env_ids[i])
            assert episode["index"] == k, (episode["index"], k)
            key = f"env{k}/"
            out[key + "base"] = np.int64(episode["base"])
            out[key + "episode"] = np.int64(episode["episode"])
            out[key + "actions"] = episode["actions"]
            out[key + "done"] = np.bool_(episode["done"])
            out[key + "prev_done"] = np.bool_(self.prev_done[i])
            out[key + "ep_return"] = np.float64(self.ep_return[i])
            out[key + "ep_length"] = np.int64(self.ep_length[i])
            out[key + "obs_digest"] = np.frombuffer(env_state.digest(leaves, i), np.uint8)
            if self.rnn_state is not None:
                for part, states in zip(("policy", "value"), self.rnn_state):
                    for j, s in enumerate(states):
                        out[f"{key}rnn_{part}{j}"] = np.asarray(s[i])
        return out

    def restore(self, state: dict) -> bool:
        """Continues the episodes saved by `state()` (same env ids); False if it cannot.

        The envs are reset to their saved episodes' seeds and replay their actions. If
        a replayed observation differs from the saved one (an env that is not
        deterministic given its seed, or another env), every env starts a fresh
        episode instead, with a warning.
        """
        ids = [int(k) for k in self.env_ids]
        if not self.resumable or any(f"env{k}/base" not in state for k in ids):
            return False
        episodes = {
            k: {
                "base": int(state[f"env{k}/base"]),
                "episode": int(state[f"env{k}/episode"]),
                "actions": state[f"env{k}/actions"],
                "done": bool(state[f"env{k}/done"]),
            }
            for k in ids
        }
        try:
            replayed = self.envs.call("restore_episode", episodes)
        except Exception as exc:  # noqa: BLE001 - whatever the env raises, start afresh
            return self._fresh_episodes(f"replaying its actions raised {exc!r}")
        space = self.envs.single_observation_space
        obs = gym.vector.utils.concatenate(
            space, [r[0] for r in replayed], gym.vector.utils.create_empty_array(space, len(ids))
        )
        leaves = [np.asarray(leaf) for leaf in self.format.flatten(obs)]
        for i, k in enumerate(ids):
            if env_state.digest(leaves, i) != state[f"env{k}/obs_digest"].tobytes():
                return self._fresh_episodes(
                    f"environment {k} replayed to another observation than was saved (an env "
                    "that is not deterministic given its seed, or another env)"
                )
        self.obs, self.infos = obs, env_state.batch_infos([r[1] for r in replayed])
        self.prev_done = np.array([bool(state[f"env{k}/prev_done"]) for k in ids])
        self.ep_return = np.array([float(state[f"env{k}/ep_return"]) for k in ids])
        self.ep_length = np.array([int(state[f"env{k}/ep_length"]) for k in ids], np.int64)
        if f"env{ids[0]}/rnn_policy0" in state:
            self.rnn_state = tuple(
                [
                    np.stack([state[f"env{k}/rnn_{part}{j}"] for k in ids])
                    for j in range(_count(state, f"env{ids[0]}/rnn_{part}"))
                ]
                for part in ("policy", "value")
            )
        return True

    def _fresh_episodes(self, why: str) -> bool:
        warnings.warn(
            f"The saved episodes in progress cannot be continued: {why}. Every env starts a "
            "fresh episode, so this fit is not identical to an uninterrupted one.",
            stacklevel=3,
        )
        self.obs, self.infos = self.envs.reset(seed=self.seed)
        return False

    def _step_with_timeout(self, actions):
        """`step` of an `AsyncVectorEnv` that gives up after `timeout` seconds.

        The envs whose worker has not answered by then are named in the `EnvError`; the
        vector env is closed (its workers terminated), since it cannot be stepped again.
        """
        import multiprocessing

        self.envs.step_async(actions)
        try:
            return self.envs.step_wait(timeout=self.timeout)
        except multiprocessing.TimeoutError:
            pipes = getattr(self.envs, "parent_pipes", [])
            hung = [int(self.env_ids[i]) for i, pipe in enumerate(pipes) if not pipe.poll()]
            self.envs.close(terminate=True)
            raise EnvError(
                f"Environment(s) {hung} did not finish step() within timeout={self.timeout} s "
                f"(step {self.steps} of this fit); their worker processes were terminated."
            ) from None

    def _masks(self, infos, size, t):
        mask = masks.read_masks(self.envs, infos, size)
        empty = ~mask.any(axis=-1)
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise ValueError(
                f"Environment {int(self.env_ids[i])} gave an action mask with no allowed "
                f"action (all False) at step {self.steps + t} of this fit."
            )
        return mask

    def _episodes(self, rewards, done):
        """Valid-step mask and the returns/lengths of the episodes that ended.

        In NEXT_STEP autoreset mode the step after a `done` is a reset step (no reward,
        invalid); episode sums carry across rollouts in `ep_return`/`ep_length`. The
        episodes are listed in the order they ended (by step, then env).
        """
        valid = ~np.concatenate([self.prev_done[None], done[:-1]])
        # Running sums: row 0 is 0, row 1 the partial episode carried in, row t + 2 adds
        # the valid steps up to t. An episode ending at step e whose env last ended at s
        # sums to sums[e + 2] - sums[s + 2], with s = -2 if it began before this rollout.
        zero = np.zeros((1, done.shape[1]))
        valid_rewards = np.where(valid, rewards.astype(np.float64), 0.0)
        returns = np.cumsum(np.concatenate([zero, self.ep_return[None], valid_rewards]), axis=0)
        lengths = np.cumsum(np.concatenate([zero, self.ep_length[None], valid]), axis=0)
        ends_t, ends_env = np.nonzero(done)
        last = np.full(done.shape[1], -2)
        starts = np.empty_like(ends_t)
        for k, (t, j) in enumerate(zip(ends_t, ends_env)):
            starts[k], last[j] = last[j], t
        ep_returns = returns[ends_t + 2, ends_env] - returns[starts + 2, ends_env]
        ep_lengths = lengths[ends_t + 2, ends_env] - lengths[starts + 2, ends_env]
        envs = np.arange(done.shape[1])
        self.ep_return = returns[-1] - returns[last + 2, envs]
        self.ep_length = (lengths[-1] - lengths[last + 2, envs]).astype(np.int64)
        self.prev_done = done[-1]
        return valid, [float(r) for r in ep_returns], [int(n) for n in ep_lengths]

    def _raise_non_finite(self, obs, reward):
        bad = ~np.isfinite(np.asarray(reward, dtype=np.float64)) | self.format.non_finite_rows(obs)
        i = int(np.flatnonzero(bad)[0])
        what = "reward" if not np.isfinite(reward[i]) else "observation"
        raise ValueError(
            f"Environment {int(self.env_ids[i])} returned a non-finite {what} at step "
            f"{self.steps} of this fit (reward={reward[i]!r}); keras_trust does not train on "
            "NaN or inf values. Fix the environment or wrap it to sanitize its outputs."
        )

    def close(self):
        self.envs.close()


def _count(state, prefix) -> int:
    """How many keys `prefix0`, `prefix1`, ... the state has."""
    n = 0
    while f"{prefix}{n}" in state:
        n += 1
    return n


class InProcessSampler(Sampler):
    """Collects rollouts in this process from a gymnasium vector env (the default).

    Args:
        vectorization: `"sync"` (`SyncVectorEnv`, default) or `"async"`
            (`AsyncVectorEnv` with the spawn context, one process per env).
        timeout: with `"async"`, seconds a vector step may take before `fit` stops with
            an `EnvError` naming the envs that hang. Defaults to `None` (wait forever).
    """

    def __init__(self, vectorization: str = "sync", timeout: float | None = None):
        if timeout is not None and (vectorization != "async" or not timeout > 0):
            raise ValueError(
                "timeout needs vectorization='async' and a positive number of seconds. "
                f"Received: vectorization={vectorization!r}, timeout={timeout!r}"
            )
        self.vectorization = vectorization
        self.timeout = timeout
        self.runner = None
        self._owned = False

    def start(self, env, n_envs, seed):
        envs, self._owned = make_vector_env(env, n_envs, self.vectorization)
        self.runner = EnvRunner(
            envs, np.arange(n_envs), seed=seed, timeout=self.timeout, resumable=resumable(env)
        )
        self.action_masks = self.runner.has_masks
        return envs.single_observation_space, envs.single_action_space

    def collect(self, agent, n_steps, iteration):
        return self.runner.collect(agent, n_steps, iteration)

    def state(self):
        return self.runner.state()

    def restore(self, state):
        return self.runner.restore(state)

    def close(self):
        if self.runner is not None and self._owned:
            self.runner.close()
        self.runner = None
