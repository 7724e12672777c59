"""Small policies with a numpy twin, for checking the curvature optimizers by hand.

`SurrogateProblem` holds a 2-hidden-layer tanh policy (Categorical or diagonal Gaussian
head), its data in `tf.Variable`s (so `loss_fn`/`kl_fn` are built once and `reset(seed)`
draws a new random problem without retracing), and numpy references: the forward pass,
the surrogate loss, the KL, the explicit Fisher F = mean_i J_i^T H_i J_i (J_i from
`tape.jacobian`, H_i by hand) and the surrogate's gradient g = -mean_i adv_i J_i^T d log p_i.
"""

import keras
import numpy as np
import tensorflow as tf

from keras_trust.distributions import (
    CategoricalHead,
    DiagGaussianHead,
    kl_divergence,
    make_distribution,
)


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


class SurrogateProblem:
    def __init__(self, kind, obs_dim=3, n_actions=3, hidden=6, n=24, dtype="float64"):
        self.kind, self.n, self.obs_dim, self.n_actions = kind, n, obs_dim, n_actions
        self.dtype = dtype
        self.dense1 = keras.layers.Dense(hidden, activation="tanh", dtype=dtype)
        self.dense2 = keras.layers.Dense(hidden, activation="tanh", dtype=dtype)
        if kind == "categorical":
            self.head = CategoricalHead(n_actions, gain=1.0, dtype=dtype)
        else:
            self.head = DiagGaussianHead(n_actions, gain=1.0, dtype=dtype)
        # The heads' inner Dense does not inherit the dtype policy: force it so the whole
        # policy is float64 (see test_heads_respect_their_dtype_policy).
        self.head.dense = keras.layers.Dense(n_actions, dtype=dtype)
        self(np.zeros((1, obs_dim), dtype))
        self.variables = [
            self.dense1.kernel,
            self.dense1.bias,
            self.dense2.kernel,
            self.dense2.bias,
            self.head.dense.kernel,
            self.head.dense.bias,
        ]
        if kind != "categorical":
            self.variables.append(self.head.log_std)
        assert all(v.dtype == dtype for v in self.variables)
        self.size = sum(int(np.prod(v.shape)) for v in self.variables)
        act_dtype = "int32" if kind == "categorical" else dtype
        act_shape = (n,) if kind == "categorical" else (n, n_actions)
        self.obs = tf.Variable(tf.zeros((n, obs_dim), dtype), trainable=False)
        self.actions = tf.Variable(tf.zeros(act_shape, act_dtype), trainable=False)
        self.adv = tf.Variable(tf.zeros((n,), dtype), trainable=False)
        self.old_params = [
            tf.Variable(tf.zeros((n, n_actions), dtype), trainable=False)
            for _ in range(1 if kind == "categorical" else 2)
        ]
        self.old_log_prob = tf.Variable(tf.zeros((n,), dtype), trainable=False)

    # ---- the TensorFlow side (what the optimizer sees) ----

    def __call__(self, obs):
        return self.head(self.dense2(self.dense1(obs)))

    def loss_fn(self):
        dist = make_distribution(self.kind, self(self.obs))
        ratio = tf.exp(dist.log_prob(self.actions) - self.old_log_prob)
        return -tf.reduce_mean(ratio * self.adv)

    def kl_fn(self):
        old = [tf.convert_to_tensor(p) for p in self.old_params]
        return tf.reduce_mean(kl_divergence(self.kind, old, self(self.obs)))

    def reset(self, seed):
        """Random weights and data; freezes pi_old at the new weights."""
        rng = np.random.default_rng(seed)
        for v in self.variables:
            fan_in = v.shape[0] if len(v.shape) == 2 else 1
            scale = 1.0 / np.sqrt(fan_in) if len(v.shape) == 2 else 0.3
            v.assign(rng.normal(size=v.shape) * scale)
        if self.kind != "categorical":
            self.head.log_std.assign(rng.uniform(-1.0, 0.3, size=self.n_actions))
        obs = rng.normal(size=(self.n, self.obs_dim))
        self.obs.assign(obs)
        params = self.numpy_params(self.get_weights(), obs)
        if self.kind == "categorical":
            probs = np.exp(log_softmax(params[0]))
            actions = np.array([rng.choice(self.n_actions, p=p / p.sum()) for p in probs])
        else:
            actions = params[0] + np.exp(params[1]) * rng.normal(size=params[0].shape)
        self.actions.assign(actions)
        self.adv.assign(rng.normal(size=self.n))
        for var, p in zip(self.old_params, self(self.obs)):
            var.assign(p)
        dist = make_distribution(self.kind, [tf.convert_to_tensor(p) for p in self.old_params])
        self.old_log_prob.assign(dist.log_prob(self.actions))
        return self

    def get_weights(self):
        return [v.numpy().copy() for v in self.variables]

    def flat_weights(self):
        return np.concatenate([v.numpy().ravel() for v in self.variables]).astype(np.float64)

    def unflatten(self, flat):
        out, i = [], 0
        for v in self.variables:
            size = int(np.prod(v.shape))
            out.append(flat[i : i + size].reshape(v.shape))
            i += size
        return out

    # ---- the numpy side (the independent reference) ----

    def numpy_params(self, weights, obs=None):
        obs = self.obs.numpy() if obs is None else obs
        w1, b1, w2, b2, w3, b3 = (np.asarray(w, np.float64) for w in weights[:6])
        h = np.tanh(np.tanh(obs @ w1 + b1) @ w2 + b2)
        out = h @ w3 + b3
        if self.kind == "categorical":
            return [out]
        return [out, np.broadcast_to(np.asarray(weights[6], np.float64), out.shape)]

    def numpy_log_prob(self, params):
        a = self.actions.numpy()
        if self.kind == "categorical":
            return log_softmax(params[0])[np.arange(self.n), a]
        mean, log_std = params
        z = (a - mean) / np.exp(log_std)
        return (-0.5 * z**2 - log_std - 0.5 * np.log(2 * np.pi)).sum(-1)

    def numpy_loss(self, weights):
        params = self.numpy_params(weights)
        old_lp = self.numpy_log_prob(self.numpy_params(self.initial_weights))
        ratio = np.exp(self.numpy_log_prob(params) - old_lp)
        return -np.mean(ratio * self.adv.numpy())

    def numpy_kl(self, weights):
        """Mean KL(pi_old || pi_weights), pi_old from the weights at `freeze()`."""
        p = self.numpy_params(self.initial_weights)
        q = self.numpy_params(weights)
        if self.kind == "categorical":
            lp, lq = log_softmax(p[0]), log_softmax(q[0])
            return np.mean((np.exp(lp) * (lp - lq)).sum(-1))
        (mp, sp), (mq, sq) = p, q
        per = sq - sp + (np.exp(2 * sp) + (mp - mq) ** 2) / (2 * np.exp(2 * sq)) - 0.5
        return np.mean(per.sum(-1))

    def freeze(self):
        """Remembers the current weights as pi_old for the numpy references."""
        self.initial_weights = self.get_weights()
        return self

    def fisher_and_gradient(self):
        """Explicit F (P x P) and surrogate gradient g (P,) at the current weights."""
        tvars = [getattr(v, "value", v) for v in self.variables]
        with tf.GradientTape(persistent=True) as tape:
            params = self(self.obs)
        n = self.n

        def jac(out):
            parts = tape.jacobian(
                out,
                tvars,
                unconnected_gradients=tf.UnconnectedGradients.ZERO,
                experimental_use_pfor=False,
            )
            return np.concatenate([j.numpy().reshape(n, out.shape[1], -1) for j in parts], 2)

        params_np = [p.numpy() for p in params]
        a = self.actions.numpy()
        if self.kind == "categorical":
            jacobian = jac(params[0])
            p = np.exp(log_softmax(params_np[0]))
            h = np.stack([np.diag(pi) - np.outer(pi, pi) for pi in p])
            dlogp = np.eye(self.n_actions)[a] - p  # d log p(a) / d logits
        else:
            mean, log_std = params_np
            jacobian = np.concatenate([jac(params[0]), jac(params[1])], axis=1)
            inv_var = np.exp(-2 * log_std)
            h = np.stack([np.diag(np.concatenate([iv, np.full_like(iv, 2.0)])) for iv in inv_var])
            z2 = (a - mean) ** 2 * inv_var
            dlogp = np.concatenate([(a - mean) * inv_var, z2 - 1.0], axis=1)
        fisher = np.einsum("nap,nab,nbq->pq", jacobian, h, jacobian) / n
        grad = -np.einsum("n,nap,na->p", self.adv.numpy(), jacobian, dlogp) / n
        return fisher, grad


def reference_line_search(problem, max_kl, damping, iters, coeff, damped_step_length=False):
    """TrustRegion's step recomputed from explicit F and g at `problem`'s current weights.

    The full step is -sqrt(2 max_kl / x^T F x) x with x = (F + dI)^-1 g (or scaled by
    x^T (F + dI) x with `damped_step_length`), shrunk by `coeff` until the NumPy loss
    improves and the NumPy KL is <= max_kl.

    Returns:
        (accepted, backtracks, flat weights after the step).
    """
    fisher, grad = problem.fisher_and_gradient()
    damped = fisher + damping * np.eye(problem.size)
    x = np.linalg.solve(damped, grad)
    metric = damped if damped_step_length else fisher
    full = -np.sqrt(2 * max_kl / (x @ metric @ x)) * x
    theta0 = problem.flat_weights()
    loss0 = problem.numpy_loss(problem.unflatten(theta0))
    for k in range(iters):
        theta = theta0 + coeff**k * full
        weights = problem.unflatten(theta)
        if problem.numpy_loss(weights) < loss0 and problem.numpy_kl(weights) <= max_kl:
            return True, k, theta
    return False, iters, theta0
