"""`TrustRegion` in `fit`: every accepted step's measured KL is within `max_kl`, and a
rejected step leaves the weights exactly as they were. KLs and losses are recomputed
from the weights before and after each batch with the NumPy twin of the model."""

import keras
import numpy as np
import pytest
from gauss_newton_reference import Mlp, kl_divergence, natural_step

import keras_trust as kt

BATCH = 32


class StepRecorder(keras.callbacks.Callback):
    """The weights before and after every batch, and the batch logs."""

    def __init__(self):
        super().__init__()
        self.steps = []

    def on_train_batch_begin(self, batch, logs=None):
        self.before = self.model.get_weights()

    def on_train_batch_end(self, batch, logs=None):
        logs = {k: float(v) for k, v in logs.items()}
        self.steps.append((batch, self.before, self.model.get_weights(), logs))

    def per_step(self, key):
        """Per-step values from the running means Keras logs (reset every epoch)."""
        values, previous = [], 0.0
        for batch, _, _, logs in self.steps:
            total = logs[key] * (batch + 1)
            values.append(total - (previous if batch > 0 else 0.0))
            previous = total
        return values


def classification(seed=0, n=96):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(3)]
    )
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (np.argmax(x[:, :3] + 0.3 * rng.normal(size=(n, 3)), axis=1)).astype(np.int64)
    return model, x, y


def test_every_accepted_step_is_within_max_kl():
    model, x, y = classification()
    max_kl = 0.005
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(
        optimizer=kt.optimizers.TrustRegion(max_kl=max_kl, cg_iters=10),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    recorder = StepRecorder()
    wrapped.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0, callbacks=[recorder])
    logged_kl, accepted = recorder.per_step("kl"), recorder.per_step("accepted")
    assert len(recorder.steps) == 9
    for (batch, before, after, _), kl, ok in zip(recorder.steps, logged_kl, accepted):
        xb = x[batch * BATCH : (batch + 1) * BATCH]
        z_before = Mlp(before, ["tanh", "linear"]).forward(xb)
        z_after = Mlp(after, ["tanh", "linear"]).forward(xb)
        measured = kl_divergence("categorical", z_before, z_after).mean()
        assert ok == pytest.approx(round(ok), abs=1e-5)
        if round(ok):
            assert 0.0 < measured <= max_kl * (1 + 1e-4)
            assert kl == pytest.approx(measured, rel=1e-3, abs=1e-7)
        else:
            assert all(np.array_equal(b, a) for b, a in zip(before, after))
            assert kl == pytest.approx(0.0, abs=1e-7)
    assert sum(map(round, accepted)) >= 7


def test_a_step_that_cannot_improve_is_rejected_and_the_weights_restored_exactly():
    # A linear model under MSE: the quadratic KL model is exact, and a step scaled to a
    # huge max_kl overshoots the least-squares minimum far, so the loss rises and the
    # single step size tried (backtrack_iters=1) fails.
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    rng = np.random.default_rng(3)
    x = rng.normal(size=(BATCH * 2, 4)).astype(np.float32)
    y = rng.normal(size=(BATCH * 2, 2)).astype(np.float32)
    max_kl, damping = 100.0, 0.1
    mlp = Mlp(model.get_weights(), ["linear"])
    direction, fisher, _ = natural_step(mlp, "gaussian", x[:BATCH], y[:BATCH], damping)
    full_step = -np.sqrt(2 * max_kl / (direction @ fisher @ direction)) * direction

    def mse(theta):
        return np.mean((mlp.forward(x[:BATCH], theta) - y[:BATCH]) ** 2)

    assert mse(mlp.theta + full_step) > 10 * mse(mlp.theta)  # why it must be rejected

    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(
        optimizer=kt.optimizers.TrustRegion(max_kl=max_kl, cg_damping=damping, backtrack_iters=1),
        loss="mse",
    )
    recorder = StepRecorder()
    history = wrapped.fit(
        x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[recorder]
    )
    assert len(recorder.steps) == 2
    for _, before, after, logs in recorder.steps:
        assert all(np.array_equal(b, a) for b, a in zip(before, after))
        assert logs["accepted"] == 0.0
    assert history.history["accepted"] == [0.0]
    assert history.history["kl"] == [0.0]
    assert history.history["backtracks"] == [1.0]
