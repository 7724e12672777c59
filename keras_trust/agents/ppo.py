"""Proximal policy optimization (Schulman et al., 2017): clipped and adaptive-KL variants."""

import keras
import tensorflow as tf

from keras_trust.agents import recurrence
from keras_trust.agents.agent import Agent
from keras_trust.agents.recurrence import flat
from keras_trust.agents.validation import require
from keras_trust.layers.kl_penalty import KLPenalty
from keras_trust.ops.state import all_finite, rollback, snapshot, unique
from keras_trust.ops.statistics import normalize_advantages, shuffled_indices, weighted_mean
from keras_trust.optimizers.base import CurvatureOptimizer
from keras_trust.schedules import is_schedule, serialize_schedule


@keras.saving.register_keras_serializable(package="keras_trust")
class PPO(Agent):
    """PPO with the clipped surrogate, the adaptive KL penalty, or both.

    Each epoch collects `n_envs * n_steps` steps, then runs `epochs` passes of minibatch
    Adam updates over them, all in one compiled call. The loss is the clipped surrogate
    (`clip_ratio`) and/or `beta * KL(old || new)` with beta adapted by
    `kt.layers.KLPenalty` after every update (`clip_ratio=None, kl_penalty=...` is the
    adaptive-KL PPO of the paper's Sec. 4), minus `ent_coef` times the entropy, plus
    `vf_coef` times the critic's squared error (Schulman et al., 2017, "Proximal Policy
    Optimization Algorithms"). Defaults follow Stable-Baselines3.

    Args:
        policy, value, n_envs, n_steps, batch_size, gamma, gae_lambda,
        normalize_observations, normalize_rewards: see `Agent`.
        epochs: passes over each rollout. Defaults to `10`.
        clip_ratio: clipping range epsilon, or `None` for no clipping; a number or a
            schedule over optimizer steps (`kt.schedules.LinearSchedule`, rl-zoo's
            `lin_0.2` in presets). Defaults to `0.2`.
        kl_penalty: a `kt.layers.KLPenalty`, or `None`. Defaults to `None`.
        target_kl: stop the epochs early once the approximate KL of a minibatch exceeds
            `1.5 * target_kl`. Defaults to `None` (never).
        ent_coef: entropy bonus coefficient, a number or a schedule. Defaults to `0.0`.
        vf_coef: value-loss coefficient. Defaults to `0.5`.
        max_grad_norm: global gradient-norm clip, or `None`. Defaults to `0.5`.

    Example:
    >>> agent = PPO(n_steps=128, batch_size=32)
    >>> agent.compile(optimizer=keras.optimizers.Adam(3e-4))
    >>> history = agent.fit("CartPole-v1", total_timesteps=256, verbose=0)  # doctest: +SKIP
    """

    def __init__(
        self,
        policy=None,
        value=None,
        n_envs=1,
        n_steps=2048,
        batch_size=64,
        epochs=10,
        gamma=0.99,
        gae_lambda=0.95,
        clip_ratio=0.2,
        kl_penalty=None,
        target_kl=None,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_observations=False,
        normalize_rewards=False,
        **kwargs,
    ):
        super().__init__(
            policy=policy,
            value=value,
            n_envs=n_envs,
            n_steps=n_steps,
            batch_size=batch_size,
            gamma=gamma,
            gae_lambda=gae_lambda,
            normalize_observations=normalize_observations,
            normalize_rewards=normalize_rewards,
            **kwargs,
        )
        require(
            isinstance(epochs, int) and epochs >= 1,
            f"epochs must be a positive integer. Received: epochs={epochs!r}",
        )
        require(
            clip_ratio is None or is_schedule(clip_ratio) or clip_ratio > 0,
            f"clip_ratio must be > 0 (or None). Received: clip_ratio={clip_ratio}",
        )
        require(
            kl_penalty is None or isinstance(kl_penalty, KLPenalty),
            f"kl_penalty must be a kt.layers.KLPenalty or None. Received: {kl_penalty!r}",
        )
        require(
            clip_ratio is not None or kl_penalty is not None,
            "PPO needs clip_ratio, kl_penalty or both; both are None.",
        )
        require(
            target_kl is None or target_kl > 0,
            f"target_kl must be > 0 (or None). Received: target_kl={target_kl}",
        )
        require(
            is_schedule(ent_coef) or ent_coef >= 0,
            f"ent_coef must be >= 0 (or a schedule). Received: ent_coef={ent_coef}",
        )
        require(vf_coef >= 0, f"vf_coef must be >= 0. Received: vf_coef={vf_coef}")
        require(
            max_grad_norm is None or max_grad_norm > 0,
            f"max_grad_norm must be > 0 (or None). Received: max_grad_norm={max_grad_norm}",
        )
        self.epochs = int(epochs)
        self.clip_ratio = (
            clip_ratio if clip_ratio is None or is_schedule(clip_ratio) else float(clip_ratio)
        )
        self.kl_penalty = kl_penalty
        self.target_kl = None if target_kl is None else float(target_kl)
        self.ent_coef = ent_coef if is_schedule(ent_coef) else float(ent_coef)
        self.vf_coef = float(vf_coef)
        self.max_grad_norm = None if max_grad_norm is None else float(max_grad_norm)

    def _default_optimizer(self):
        return keras.optimizers.Adam(learning_rate=3e-4, epsilon=1e-5)

    def _check_optimizers(self):
        if isinstance(self.optimizer, CurvatureOptimizer):
            raise ValueError(
                f"PPO takes a first-order Keras optimizer (e.g. Adam); "
                f"{type(self.optimizer).__name__} needs a KL constraint: use kt.TRPO."
            )
        if self.value_optimizer is not None:
            raise ValueError(
                "PPO trains policy and critic with one optimizer: pass only `optimizer`."
            )

    def _optimizer_variables(self):
        return unique(self.policy_variables + self.value_variables)

    def _ppo_losses(self, mb):
        """PPO's loss on a minibatch (flat rows or whole sequences) and its statistics."""
        actions, weights = flat(mb, "actions"), flat(mb, "weights")
        log_probs, advantages = flat(mb, "log_probs"), flat(mb, "advantages")
        returns, old_params = flat(mb, "returns"), flat(mb, "old_params")
        params = recurrence.batch_policy_params(self, mb)
        dist = self.action_distribution
        log_ratio = dist.log_prob(params, actions) - log_probs
        ratio = tf.exp(log_ratio)
        if self.normalize_advantage:
            advantages = normalize_advantages(advantages, weights)
        surrogate = ratio * advantages
        stats = {}
        if self.clip_ratio is not None:
            clip = self._current(self.clip_ratio)
            clipped = tf.clip_by_value(ratio, 1.0 - clip, 1.0 + clip)
            surrogate = tf.minimum(surrogate, clipped * advantages)
            stats["clip_fraction"] = weighted_mean(
                tf.cast(tf.abs(ratio - 1.0) > clip, tf.float32), weights
            )
        policy_loss = -weighted_mean(surrogate, weights)
        stats["policy_loss"] = policy_loss
        if self.kl_penalty is not None:
            policy_loss += self.kl_penalty.penalty(
                weighted_mean(dist.kl(old_params, params), weights)
            )
        entropy = weighted_mean(dist.entropy(params), weights)
        value_loss = weighted_mean(tf.square(returns - recurrence.batch_values(self, mb)), weights)
        loss = policy_loss - self._current(self.ent_coef) * entropy + self.vf_coef * value_loss
        stats.update(
            entropy=entropy,
            value_loss=value_loss,
            loss=loss,
            approx_kl=weighted_mean((ratio - 1.0) - log_ratio, weights),
        )
        return loss, stats

    def _current(self, value):
        """A hyperparameter's value now: a schedule at the optimizer's step, else itself.

        The step is a variable read inside the traced update, so a schedule never
        retraces and a loaded agent resumes along it.
        """
        if is_schedule(value):
            return tf.cast(value(self.optimizer.iterations), tf.float32)
        return value

    def _minibatch_step(self, mb):
        """One Adam step on a minibatch, unless it is non-finite or past the KL limit.

        Returns `(stats, ok, stop)`: `ok` is False when the loss or a gradient is not
        finite, `stop` when the update must end here (then nothing was applied).
        """
        variables = self._optimizer_variables()
        with tf.GradientTape() as tape:
            loss, stats = self._ppo_losses(mb)
        grads = tape.gradient(loss, variables)
        if self.max_grad_norm is not None:
            grads, _ = tf.clip_by_global_norm(grads, self.max_grad_norm)
        ok = all_finite(loss, *grads)
        stop = ~ok
        if self.target_kl is not None:
            # As in SB3: a minibatch already past 1.5 * target_kl ends the update before
            # its own step is applied.
            stop = stop | (stats["approx_kl"] > 1.5 * self.target_kl)

        def apply():
            self.optimizer.apply(grads, variables)

        tf.cond(tf.logical_not(stop), apply, lambda: None)
        return stats, ok, stop

    def _train(self, obs, actions, log_probs, advantages, returns, weights, seed, **extra):
        # The minibatch step is its own function, XLA-compiled with `jit_compile`: it
        # fuses the loss, backprop and Adam's per-variable updates (the loop around it,
        # with its shuffles and gathers, ran slower under XLA on CPU).
        minibatch_step = self._nested_function("minibatch_step", self._minibatch_step)
        variables = self._optimizer_variables()
        state = variables + self.optimizer.variables
        saved = snapshot(state)
        data = {
            "obs": obs,
            "actions": actions,
            "log_probs": log_probs,
            "advantages": advantages,
            "returns": returns,
            "weights": weights,
            **extra,  # masks; for recurrent agents starts and the sequences' states
        }
        old_params = [tf.stop_gradient(p) for p in recurrence.batch_policy_params(self, data)]
        if recurrence.is_sequence_batch(data):  # kept time-major, to gather by sequence
            shape = tf.shape(weights)
            old_params = [tf.reshape(p, [shape[0], shape[1], *p.shape[1:]]) for p in old_params]
        data["old_params"] = old_params
        n = recurrence.units(data)
        mb_size = recurrence.units_per_minibatch(data, self.batch_size)
        n_batches = n // mb_size
        names = ("policy_loss", "value_loss", "entropy", "loss", "approx_kl")
        if self.clip_ratio is not None:
            names += ("clip_fraction",)

        def minibatch(perm, epoch, b, sums, count, bad, stop):
            idx = tf.slice(perm, [b * mb_size], [mb_size])
            stats, ok, stop = minibatch_step(recurrence.gather(data, idx))
            sums = {k: sums[k] + stats[k] for k in names}
            return perm, epoch, b + 1, sums, count + 1.0, bad | ~ok, stop

        def epoch_body(epoch, sums, count, bad, stop):
            perm = shuffled_indices(n, seed, epoch)
            _, _, _, sums, count, bad, stop = tf.while_loop(
                lambda perm, epoch, b, sums, count, bad, stop: (b < n_batches) & ~stop,
                minibatch,
                (perm, epoch, tf.constant(0), sums, count, bad, stop),
            )
            return epoch + 1, sums, count, bad, stop

        # Epochs of shuffled minibatches, until done or a minibatch says stop.
        epoch, sums, count, bad, stop = tf.while_loop(
            lambda epoch, sums, count, bad, stop: (epoch < self.epochs) & ~stop,
            epoch_body,
            (
                tf.constant(0),
                {k: tf.constant(0.0) for k in names},
                tf.constant(0.0),
                tf.constant(False),
                tf.constant(False),
            ),
        )
        rollback(state, saved, bad)
        logs = {k: sums[k] / tf.maximum(count, 1.0) for k in names}
        new_params = recurrence.batch_policy_params(self, data)
        kl = weighted_mean(
            self.action_distribution.kl(flat(data, "old_params"), new_params), flat(data, "weights")
        )
        logs["kl"] = kl
        logs["epochs_run"] = tf.cast(epoch, tf.float32)
        if self.kl_penalty is not None:
            logs["beta"] = self.kl_penalty.update_beta(tf.where(bad, float("nan"), kl))
        logs["nonfinite"] = tf.cast(bad | ~tf.math.is_finite(kl), tf.float32)
        logs["learning_rate"] = tf.cast(self.optimizer.learning_rate, tf.float32)
        logs["ent_coef"] = tf.cast(self._current(self.ent_coef), tf.float32)
        if self.clip_ratio is not None:
            logs["clip_ratio"] = tf.cast(self._current(self.clip_ratio), tf.float32)
        return logs

    def get_config(self):
        config = {
            "epochs": self.epochs,
            "clip_ratio": serialize_schedule(self.clip_ratio),
            "kl_penalty": None
            if self.kl_penalty is None
            else keras.saving.serialize_keras_object(self.kl_penalty),
            "target_kl": self.target_kl,
            "ent_coef": serialize_schedule(self.ent_coef),
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("clip_ratio", "ent_coef"):
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        if config.get("kl_penalty") is not None:
            config["kl_penalty"] = keras.saving.deserialize_keras_object(config["kl_penalty"])
        return super().from_config(config)
