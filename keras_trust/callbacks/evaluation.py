"""Periodic evaluation on a separate env during `fit`, with the best model kept on disk."""

import math
import os
from typing import NamedTuple

import keras
import numpy as np

from keras_trust.rollout.envs import make_vector_env
from keras_trust.rollout.evaluation import MAX_EVAL_ENVS, run_vectorized_episodes

# What EvalCallback adds to the logs of the epochs it evaluates.
EVAL_KEYS = ("eval_return", "eval_return_std", "eval_length")


class EvalResult(NamedTuple):
    """One evaluation: after which epoch and env step, and its episodes' statistics."""

    epoch: int
    timesteps: int
    mean_return: float
    std_return: float
    mean_length: float


class EvalCallback(keras.callbacks.Callback):
    """Evaluates the agent every `eval_freq` epochs on its own env; keeps the best one.

    The training return (`episode_return`) is that of the stochastic policy while it
    learns; what a user deploys is usually the deterministic one, which on CartPole is
    at 500 long before the training return is. This callback measures that: every
    `eval_freq` epochs it runs `n_episodes` whole episodes over a vector env (one batched
    `predict` per step, `kt.rollout.evaluation.run_vectorized_episodes`, unbiased by
    episode length) and adds `eval_return`, `eval_return_std` and `eval_length` to that
    epoch's logs. In `fit` those entries are added before any callback's `on_epoch_end`
    runs (the training loop calls `update_logs` first), so `History`, CSV loggers,
    TensorBoard and `EarlyStopping(monitor="eval_return")` see them wherever this
    callback sits in the list. Epochs without an evaluation have no `eval_*` entries,
    as Keras leaves out `val_*` entries between validations.

    With `seed`, every evaluation starts its envs from the same states (env `i` from
    `reset(seed=seed + i)`), so evaluations compare the policies on equal terms.

    Args:
        eval_env: a gymnasium id, an Env, a zero-argument callable returning one, or a
            `gymnasium.vector.VectorEnv` (NEXT_STEP autoreset). Built at the first
            evaluation and closed at the end of training (a vector env or Env passed
            in is left open).
        eval_freq: evaluate after every `eval_freq`-th epoch (`(epoch + 1) % eval_freq
            == 0`). Defaults to `10`.
        n_episodes: episodes per evaluation. Defaults to `10`.
        best_model_path: a `.keras` path; whenever `eval_return` beats every earlier
            one, the agent is saved there (atomically, normalization statistics
            included). Defaults to `None` (not saved).
        deterministic: act by the distribution's mode. Defaults to `True`.
        seed: seed of the evaluation envs' resets (and of sampling if not
            deterministic). Defaults to `None`.
        stop_at_return: stop training (`model.stop_training = True`) once `eval_return`
            reaches this value. Defaults to `None` (never).
        n_envs: envs stepped together. Defaults to `min(n_episodes, 16)`.

    Example:
    >>> cb = EvalCallback("CartPole-v1", eval_freq=5, best_model_path="best.keras",
    ...                   stop_at_return=500)
    >>> agent.fit("CartPole-v1", 100_000, callbacks=[cb])  # doctest: +SKIP
    >>> cb.best_return  # doctest: +SKIP
    500.0
    """

    def __init__(
        self,
        eval_env,
        eval_freq: int = 10,
        n_episodes: int = 10,
        best_model_path=None,
        deterministic: bool = True,
        seed: int | None = None,
        stop_at_return: float | None = None,
        n_envs: int | None = None,
    ):
        super().__init__()
        for name, value in (("eval_freq", eval_freq), ("n_episodes", n_episodes)):
            if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Received: {name}={value!r}")
        if n_envs is not None and (not isinstance(n_envs, int | np.integer) or n_envs < 1):
            raise ValueError(f"n_envs must be a positive integer. Received: n_envs={n_envs!r}")
        if best_model_path is not None:
            best_model_path = os.fspath(best_model_path)
            if not best_model_path.endswith(".keras"):
                raise ValueError(
                    f"best_model_path must end in '.keras'. Received: {best_model_path!r}"
                )
        if stop_at_return is not None and not math.isfinite(float(stop_at_return)):
            raise ValueError(f"stop_at_return must be finite. Received: {stop_at_return!r}")
        self.eval_env = eval_env
        self.eval_freq = int(eval_freq)
        self.n_episodes = int(n_episodes)
        self.best_model_path = best_model_path
        self.deterministic = bool(deterministic)
        self.seed = None if seed is None else int(seed)
        self.stop_at_return = None if stop_at_return is None else float(stop_at_return)
        self.n_envs = n_envs
        self.best_return = -math.inf
        self.results: list[EvalResult] = []
        self._envs = None
        self._owned = False

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, epoch: int = -1) -> EvalResult:
        """Evaluates the agent now (saving it if best, stopping if good enough)."""
        if self._envs is None:
            n_envs = self.n_envs or min(self.n_episodes, MAX_EVAL_ENVS)
            if isinstance(self.eval_env, str) or callable(self.eval_env):
                self._envs, self._owned = make_vector_env(self.eval_env, int(n_envs))
            else:  # an Env or VectorEnv instance: run_vectorized_episodes wraps it
                self._envs, self._owned = self.eval_env, False
        # An agent trained under action masks acts under the eval envs' masks too.
        stats = run_vectorized_episodes(
            self.model.predict,
            self._envs,
            self.n_episodes,
            None if self._owned else self.n_envs,
            self.deterministic,
            self.seed,
            self.model.action_distribution.mask_size if self.model.masked else None,
            # A recurrent agent carries its state from step to step (absent: feed-forward).
            self.model.initial_state if getattr(self.model, "recurrent", False) else None,
        )
        result = EvalResult(
            int(epoch),
            int(self.model.num_timesteps),
            stats["mean_return"],
            stats["std_return"],
            stats["mean_length"],
        )
        self.results.append(result)
        if result.mean_return > self.best_return:
            self.best_return = result.mean_return
            if self.best_model_path is not None:
                self.model.save(self.best_model_path)
        if self.stop_at_return is not None and result.mean_return >= self.stop_at_return:
            self.model.stop_training = True
        return result

    def update_logs(self, epoch, logs) -> None:
        """Evaluates if `epoch` is due (once) and adds the `eval_*` entries to `logs`.

        `fit` calls this before any callback's `on_epoch_end`, so that all of them see
        the entries; `on_epoch_end` calls it too, for other training loops.
        """
        due = (epoch + 1) % self.eval_freq == 0
        if due and not (self.results and self.results[-1].epoch == epoch):
            self.evaluate(epoch)
        if logs is not None and self.results and self.results[-1].epoch == epoch:
            last = self.results[-1]
            logs.update(
                eval_return=last.mean_return,
                eval_return_std=last.std_return,
                eval_length=last.mean_length,
            )

    # ------------------------------------------------------------------ callbacks
    def on_epoch_end(self, epoch, logs=None):
        self.update_logs(epoch, logs)

    def on_train_end(self, logs=None):
        self.close()

    def close(self) -> None:
        """Closes the evaluation envs this callback built (a later evaluation rebuilds)."""
        if self._envs is not None and self._owned:
            self._envs.close()
        self._envs, self._owned = None, False
