"""A NumPy twin of small dense Keras models, for checking curvature steps by hand.

`Mlp` reads the weights of a `keras.Sequential` of `Dense` layers and computes, in
float64 and with no TensorFlow: the forward pass, the Jacobian of the outputs in the
flattened parameters (central finite differences), and the exact damped natural step
`(J^T H J / B + damping I)^-1 g` by `numpy.linalg.solve`.
"""

import numpy as np


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


ACTIVATIONS = {"linear": lambda z: z, "tanh": np.tanh}


class Mlp:
    """Dense layers with the given activations; the last one's output is pre-activation.

    Args:
        weights: `model.get_weights()` of Dense layers (kernel, bias, kernel, bias, ...).
        activations: one name per layer ("linear" or "tanh"); the last layer's output is
            returned before any softmax/sigmoid, i.e. as logits (or means).
    """

    def __init__(self, weights, activations):
        self.shapes = [np.shape(w) for w in weights]
        self.theta = np.concatenate([np.ravel(w) for w in weights]).astype(np.float64)
        self.activations = activations

    def unpack(self, theta):
        out, i = [], 0
        for shape in self.shapes:
            n = int(np.prod(shape))
            out.append(theta[i : i + n].reshape(shape))
            i += n
        return out

    def forward(self, x, theta=None):
        params = self.unpack(self.theta if theta is None else theta)
        h = np.asarray(x, np.float64)
        for layer, name in enumerate(self.activations):
            h = ACTIVATIONS[name](h @ params[2 * layer] + params[2 * layer + 1])
        return h

    def jacobian(self, x, eps=1e-6):
        """`(B, K, P)`: d output_{b,k} / d theta_p by central differences."""
        cols = []
        for p in range(self.theta.size):
            d = np.zeros_like(self.theta)
            d[p] = eps
            cols.append(
                (self.forward(x, self.theta + d) - self.forward(x, self.theta - d)) / 2 / eps
            )
        return np.stack(cols, axis=-1)


def kl_divergence(kind, z_old, z_new):
    """`(B,)`: KL(old || new) of each example's predictive distribution, from its outputs."""
    if kind == "categorical":
        p, q = softmax(z_old), softmax(z_new)
        return np.sum(p * (np.log(p) - np.log(q)), axis=-1)
    if kind == "bernoulli":
        p, q = sigmoid(z_old), sigmoid(z_new)
        return np.sum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), axis=-1)
    return 0.5 * np.sum((z_old - z_new) ** 2, axis=-1)


def output_hessians(kind, z):
    """`(B, K, K)`: Hessian of the loss in the outputs (= the KL's, at old = new)."""
    if kind == "categorical":
        p = softmax(z)
        return np.stack([np.diag(q) - np.outer(q, q) for q in p])
    if kind == "bernoulli":
        p = sigmoid(z)
        return np.stack([np.diag(q * (1 - q)) for q in p])
    return np.stack([np.eye(z.shape[-1]) for _ in z])


def output_gradients(kind, z, y):
    """`(B, K)`: gradient of each example's Keras loss in the outputs.

    Keras's binary cross-entropy and MSE average over the last axis (hence `/ K`); its
    categorical cross-entropy sums over the classes.
    """
    if kind == "categorical":
        return softmax(z) - np.eye(z.shape[-1])[np.asarray(y).astype(int).ravel()]
    if kind == "bernoulli":
        return (sigmoid(z) - y) / z.shape[-1]
    return 2.0 * (z - y) / z.shape[-1]


def natural_step(mlp, kind, x, y, damping, sample_weight=None):
    """`(x, F, g)`: x = (F + damping I)^-1 g with F = sum_i w_i J_i^T H_i J_i / sum_i w_i.

    `g` is the gradient of Keras's loss `sum_i w_i l_i / B`.
    """
    z = mlp.forward(x)
    jac = mlp.jacobian(x)
    hess = output_hessians(kind, z)
    w = np.ones(len(x)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    fisher = np.einsum("b,bkp,bkl,blq->pq", w, jac, hess, jac) / w.sum()
    g = np.einsum("b,bkp,bk->p", w, jac, output_gradients(kind, z, y)) / len(x)
    step = np.linalg.solve(fisher + damping * np.eye(len(g)), g)
    return step, fisher, g
