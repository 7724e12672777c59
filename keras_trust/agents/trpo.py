"""Trust region policy optimization (Schulman et al., 2015) and natural policy gradient."""

import numbers

import keras
import tensorflow as tf

from keras_trust.agents import recurrence
from keras_trust.agents.agent import Agent
from keras_trust.agents.critic import fit_critic
from keras_trust.agents.recurrence import merge_steps
from keras_trust.agents.validation import require
from keras_trust.ops.statistics import normalize_advantages, weighted_mean
from keras_trust.optimizers.base import CurvatureOptimizer
from keras_trust.optimizers.trust_region import TrustRegion


@keras.saving.register_keras_serializable(package="keras_trust")
class TRPO(Agent):
    """TRPO: the policy steps by `kt.optimizers.TrustRegion` on the surrogate objective.

    Each epoch collects `n_envs * n_steps` steps; the policy takes one trust-region
    step on the whole rollout, maximizing `mean(ratio * advantage)` (plus `ent_coef`
    times the mean entropy) subject to `mean KL(pi_old || pi) <= max_kl`; then the
    critic is regressed on the GAE returns for `value_epochs` passes of minibatches by
    `value_optimizer` (Adam 1e-3, epsilon 1e-5, by default). All of it is one compiled
    call. `compile(optimizer=kt.optimizers.NaturalGradient(max_kl=...))` makes it natural
    policy gradient (NPG).
    Defaults follow sb3-contrib's TRPO (15 CG iterations, damping 0.1, 10 line-search
    steps shrinking by 0.8).

    Args:
        policy, value, n_envs, n_steps, batch_size, gamma, gae_lambda,
        normalize_observations, normalize_rewards: see `Agent`.
        value_epochs: critic passes over each rollout. Defaults to `10`.
        ent_coef: entropy bonus in the surrogate, as in OpenAI Baselines' TRPO
            (`entcoeff`). Without one the policy is free to become deterministic wherever
            the advantages say so, and the trust region only slows it down; a bonus
            holds some randomness where the advantages are flat. The line search then
            accepts a step that improves surrogate plus bonus. Defaults to `0.0`
            (sb3-contrib's TRPO has none).

    Example:
    >>> agent = TRPO(n_steps=256)
    >>> agent.compile(optimizer=kt.optimizers.TrustRegion(max_kl=0.01))  # doctest: +SKIP
    """

    def __init__(
        self,
        policy=None,
        value=None,
        n_envs=1,
        n_steps=2048,
        batch_size=128,
        value_epochs=10,
        gamma=0.99,
        gae_lambda=0.95,
        normalize_observations=False,
        normalize_rewards=False,
        ent_coef=0.0,
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
            isinstance(value_epochs, int) and value_epochs >= 1,
            f"value_epochs must be a positive integer. Received: value_epochs={value_epochs!r}",
        )
        self.value_epochs = int(value_epochs)
        require(
            isinstance(ent_coef, numbers.Real) and ent_coef >= 0,  # NumPy scalars too
            f"ent_coef must be a number >= 0. Received: ent_coef={ent_coef!r}",
        )
        self.ent_coef = float(ent_coef)

    def _default_optimizer(self):
        # A recurrent policy's Fisher products by double backprop, through its loop.
        method = "double_backprop" if self.recurrent else "forward_over_reverse"
        return TrustRegion(max_kl=0.01, cg_iters=15, fvp_method=method)

    def _default_value_optimizer(self):
        # sb3-contrib's critic Adam: SB3's ActorCriticPolicy sets eps=1e-5 (Keras: 1e-7).
        return keras.optimizers.Adam(learning_rate=1e-3, epsilon=1e-5)

    def _check_optimizers(self):
        if not isinstance(self.optimizer, CurvatureOptimizer):
            raise ValueError(
                "TRPO's policy optimizer must be kt.optimizers.TrustRegion or NaturalGradient. "
                f"Received: {type(self.optimizer).__name__} (use kt.PPO for first-order ones)."
            )
        if isinstance(self.value_optimizer, CurvatureOptimizer):
            raise ValueError("TRPO's value_optimizer must be a first-order optimizer (e.g. Adam).")

    def _train(self, obs, actions, log_probs, advantages, returns, weights, seed, **extra):
        # `extra`: masks; for recurrent agents the sequences' starts and states.
        data = {"obs": obs, "returns": returns, "weights": weights, **extra}
        actions, log_probs, advantages, weights = (
            merge_steps(data, t) for t in (actions, log_probs, advantages, weights)
        )
        if self.normalize_advantage:
            advantages = normalize_advantages(advantages, weights)
        dist = self.action_distribution

        # Forward-over-reverse Fisher products need the recurrent loop unrolled in the
        # graph (slow to trace); double backprop works through the loop itself.
        static = self.optimizer.fvp_method == "forward_over_reverse"

        def params():
            return recurrence.batch_policy_params(self, data, static)

        old_params = [tf.stop_gradient(p) for p in params()]

        def loss_fn():
            now = params()
            ratio = tf.exp(dist.log_prob(now, actions) - log_probs)
            loss = -weighted_mean(ratio * advantages, weights)
            if self.ent_coef:  # a Python float: no entropy in the graph without a bonus
                loss -= self.ent_coef * weighted_mean(dist.entropy(now), weights)
            return loss

        def kl_fn():
            return weighted_mean(dist.kl(old_params, params()), weights)

        info = self.optimizer.minimize(loss_fn, self.policy_variables, kl_fn)
        entropy = weighted_mean(dist.entropy(params()), weights)
        value_loss, value_bad = fit_critic(
            lambda mb: recurrence.batch_values(self, mb),
            data,
            seed,
            self.value_epochs,
            recurrence.units_per_minibatch(data, self.batch_size),
            self.value_optimizer,
            self._value_optimizer_variables(),
        )
        policy_bad = ~(tf.math.is_finite(info["loss_before"]) & tf.math.is_finite(info["kl"]))
        # The surrogate alone, as PPO logs it: `loss_after` is at the final weights, where
        # `entropy` is measured too, so the bonus comes off exactly.
        policy_loss = tf.cast(info["loss_after"], tf.float32) + self.ent_coef * entropy
        return {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "loss": policy_loss + value_loss,
            "entropy": entropy,
            "kl": tf.cast(info["kl"], tf.float32),
            "accepted": tf.cast(info["accepted"], tf.float32),
            "backtracks": tf.cast(info["backtracks"], tf.float32),
            "nonfinite": tf.cast(policy_bad | value_bad, tf.float32),
        }

    def _value_optimizer_variables(self):
        """The critic's variables less any it shares with the policy.

        The trust-region step bounds the policy's move; were the critic's epochs to move
        a torso shared with the policy afterwards, the policy would leave the trust
        region unmeasured. A shared torso is therefore trained by the policy step only,
        and the critic fits its own layers (at least its head) on those features.
        """
        policy = {id(v) for v in self.policy_variables}
        return [v for v in self.value_variables if id(v) not in policy]

    def get_config(self):
        return {
            **super().get_config(),
            "value_epochs": self.value_epochs,
            "ent_coef": self.ent_coef,
        }
