"""One `fit` step of a `CurvatureModel` is the exact damped Gauss-Newton step.

The reference is NumPy only (`reference.py`): the Jacobian of the outputs by finite
differences, H by hand (diag(p) - p p^T, p(1-p), I), F = mean_i J_i^T H_i J_i, and
`numpy.linalg.solve`; CG runs more iterations than there are parameters.
"""

import keras
import numpy as np
import pytest
from gauss_newton_reference import Mlp, kl_divergence, natural_step

import keras_trust as kt

DAMPING = 0.01  # small, so the step is F's and not the damping's (cond(F + dI) ~ 40-160)
CASES = {
    # name: (output units, output activation, kind, loss)
    "categorical_logits": (
        3,
        None,
        "categorical",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    ),
    "categorical_probabilities": (3, "softmax", "categorical", "sparse_categorical_crossentropy"),
    "bernoulli_logits": (2, None, "bernoulli", keras.losses.BinaryCrossentropy(from_logits=True)),
    "gaussian": (2, None, "gaussian", "mse"),
}


def problem(name, seed=0, n=16):
    units, activation, kind, loss = CASES[name]
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(5, activation="tanh"),
            keras.layers.Dense(units, activation=activation),
        ]
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    if kind == "categorical":
        y = rng.integers(0, units, size=n)
    elif kind == "bernoulli":
        y = rng.integers(0, 2, size=(n, units)).astype(np.float32)
    else:
        y = rng.normal(size=(n, units)).astype(np.float32)
    return model, kind, loss, x, y


def assert_close(step, expected):
    np.testing.assert_allclose(step, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def one_step(model, loss, optimizer, x, y, sample_weight=None):
    before = np.concatenate([w.ravel() for w in model.get_weights()])
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(optimizer=optimizer, loss=loss)
    logs = wrapped.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
    after = np.concatenate([w.ravel() for w in model.get_weights()])
    return after - before, logs


@pytest.mark.parametrize("name", sorted(CASES))
def test_learning_rate_step_is_exact_damped_gauss_newton(name):
    model, kind, loss, x, y = problem(name)
    mlp = Mlp(model.get_weights(), ["tanh", "linear"])
    direction, _, _ = natural_step(mlp, kind, x, y, DAMPING)
    lr = 0.3
    opt = kt.optimizers.NaturalGradient(learning_rate=lr, cg_iters=100, cg_damping=DAMPING)
    step, logs = one_step(model, loss, opt, x, y)
    assert_close(step, -lr * direction)
    assert logs["accepted"] == 1.0


@pytest.mark.parametrize("name", ["categorical_logits", "gaussian"])
def test_max_kl_step_has_quadratic_kl_max_kl(name):
    model, kind, loss, x, y = problem(name, seed=1)
    mlp = Mlp(model.get_weights(), ["tanh", "linear"])
    direction, fisher, _ = natural_step(mlp, kind, x, y, DAMPING)
    max_kl = 0.002
    expected = -np.sqrt(2 * max_kl / (direction @ fisher @ direction)) * direction
    opt = kt.optimizers.NaturalGradient(max_kl=max_kl, cg_iters=100, cg_damping=DAMPING)
    step, logs = one_step(model, loss, opt, x, y)
    assert_close(step, expected)
    assert 0.5 * step @ fisher @ step == pytest.approx(max_kl, rel=1e-3)
    # The logged KL is the one measured after the step (not the quadratic model's).
    before, after = mlp.forward(x), mlp.forward(x, mlp.theta + step)
    assert logs["kl"] == pytest.approx(np.mean(kl_divergence(kind, before, after)), rel=1e-3)


def test_sample_weights_weight_the_gradient_and_the_fisher():
    model, kind, loss, x, y = problem("categorical_logits", seed=2)
    weights = np.random.default_rng(2).uniform(0.0, 2.0, size=len(x)).astype(np.float32)
    mlp = Mlp(model.get_weights(), ["tanh", "linear"])
    direction, _, _ = natural_step(mlp, kind, x, y, DAMPING, sample_weight=weights)
    opt = kt.optimizers.NaturalGradient(learning_rate=0.5, cg_iters=100, cg_damping=DAMPING)
    step, _ = one_step(model, loss, opt, x, y, sample_weight=weights)
    assert_close(step, -0.5 * direction)
