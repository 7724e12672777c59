"""`CurvatureModel`: any Keras model's `fit` with the curvature optimizers, end to end."""

import keras
import numpy as np
import pytest
from gauss_newton_reference import Mlp, softmax

import keras_trust as kt

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def data(seed=0, n=192, d=6, classes=3):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    y = np.argmax(x[:, :classes] + 0.3 * rng.normal(size=(n, classes)), axis=1).astype(np.int64)
    return x, y


def mlp(seed=0, d=6, classes=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(classes)]
    )


def test_call_predict_and_evaluate_delegate_to_the_model():
    model, (x, y) = mlp(), data()
    wrapped = kt.supervised.CurvatureModel(model)
    np.testing.assert_array_equal(wrapped(x), model(x))
    wrapped.compile(optimizer=kt.optimizers.NaturalGradient(max_kl=0.01), loss=SCCE)
    np.testing.assert_array_equal(wrapped.predict(x, verbose=0), model.predict(x, verbose=0))
    logs = wrapped.evaluate(x, y, return_dict=True, verbose=0)
    assert sorted(logs) == ["loss"]  # no training-step entries (kl, accepted)
    p = softmax(Mlp(model.get_weights(), ["tanh", "linear"]).forward(x))
    assert logs["loss"] == pytest.approx(-np.mean(np.log(p[np.arange(len(y)), y])), rel=1e-5)


def test_fit_with_metrics_validation_sample_weight_and_callbacks():
    model, (x, y) = mlp(), data()
    xv, yv = data(seed=1, n=64)
    w = np.random.default_rng(2).uniform(0.0, 2.0, size=len(x)).astype(np.float32)
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(
        optimizer=kt.optimizers.NaturalGradient(max_kl=0.01),
        loss=SCCE,
        metrics=["accuracy"],
    )
    # The logged loss uses the sample weights: Keras's sum_i w_i l_i / B at the start.
    logits = Mlp(model.get_weights(), ["tanh", "linear"]).forward(x[:32])
    ce = -np.log(softmax(logits)[np.arange(32), y[:32]])
    logs = wrapped.train_on_batch(x[:32], y[:32], sample_weight=w[:32], return_dict=True)
    assert logs["loss"] == pytest.approx(np.sum(w[:32] * ce) / 32, rel=1e-5)

    epochs_seen = []
    callback = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epochs_seen.append(dict(logs))
    )
    history = wrapped.fit(
        x,
        y,
        sample_weight=w,
        validation_data=(xv, yv),
        batch_size=32,
        epochs=3,
        verbose=0,
        callbacks=[callback, keras.callbacks.EarlyStopping("val_loss", patience=5)],
    )
    logs = history.history
    assert sorted(logs) == ["accepted", "accuracy", "kl", "loss", "val_accuracy", "val_loss"]
    assert logs["loss"][-1] < logs["loss"][0] and logs["val_loss"][-1] < logs["val_loss"][0]
    assert logs["accepted"] == [1.0, 1.0, 1.0]
    assert all(0.0 < kl < 0.05 for kl in logs["kl"])
    assert [e["val_accuracy"] for e in epochs_seen] == logs["val_accuracy"]


def test_batchnorm_and_dropout_model_trains_with_moving_statistics_updated_once_per_step():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(3),
        ]
    )
    x, y = data(n=256)
    max_kl = 0.01
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(optimizer=kt.optimizers.TrustRegion(max_kl=max_kl), loss=SCCE)
    kernel, bias = model.layers[0].get_weights()
    h = x[:64].astype(np.float64) @ kernel + bias
    logs = wrapped.train_on_batch(x[:64], y[:64], return_dict=True)
    bn = model.layers[1]
    # One update from the starting weights (momentum 0.99), not one per forward pass.
    np.testing.assert_allclose(bn.moving_mean.numpy(), 0.01 * h.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance.numpy(), 0.99 + 0.01 * h.var(0), rtol=1e-4)
    # Same Dropout mask in every pass: the KL starts at 0 and the step is accepted.
    assert logs["accepted"] == 1.0 and 0.0 < logs["kl"] <= max_kl

    history = wrapped.fit(x, y, batch_size=64, epochs=4, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]
    assert max(history.history["kl"]) <= max_kl


def test_two_output_functional_model_trains():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(16, activation="tanh")(inputs)
    model = keras.Model(
        inputs,
        [keras.layers.Dense(3, name="cls")(hidden), keras.layers.Dense(1, name="reg")(hidden)],
    )
    x, y = data()
    target = (x[:, :1] - x[:, 1:2]).astype(np.float32)
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(
        optimizer=kt.optimizers.NaturalGradient(max_kl=0.02),
        loss={"cls": SCCE, "reg": "mse"},
        loss_weights={"cls": 1.0, "reg": 0.5},
        metrics={"cls": ["accuracy"]},
    )
    history = wrapped.fit(x, {"cls": y, "reg": target}, batch_size=32, epochs=4, verbose=0)
    logs = history.history
    for key in ("loss", "cls_loss", "reg_loss"):
        assert logs[key][-1] < 0.8 * logs[key][0], key
    assert logs["cls_accuracy"][-1] > logs["cls_accuracy"][0]


def test_subclassed_model_trains():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.hidden = keras.layers.Dense(8, activation="tanh")
            self.out = keras.layers.Dense(3)

        def call(self, x):
            return self.out(self.hidden(x))

    keras.utils.set_random_seed(0)
    x, y = data()
    wrapped = kt.supervised.CurvatureModel(Net())
    wrapped.compile(optimizer=kt.optimizers.NaturalGradient(max_kl=0.02), loss=SCCE)
    history = wrapped.fit(x, y, batch_size=32, epochs=3, verbose=0)
    assert history.history["loss"][-1] < 0.8 * history.history["loss"][0]


def test_keras_file_round_trip_gives_identical_predictions_and_training(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
            keras.layers.Dense(3),
        ]
    )
    x, y = data()
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(
        optimizer=kt.optimizers.TrustRegion(max_kl=0.02, cg_iters=8),
        loss=SCCE,
        metrics=["accuracy"],
    )
    wrapped.fit(x, y, batch_size=64, epochs=1, verbose=0)
    path = tmp_path / "wrapped.keras"
    wrapped.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is kt.supervised.CurvatureModel
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), wrapped.predict(x, verbose=0))
    assert loaded.optimizer.get_config() == wrapped.optimizer.get_config()
    assert int(loaded.optimizer.iterations) == int(wrapped.optimizer.iterations) == 3
    # Both take the same next step.
    wrapped.train_on_batch(x[:64], y[:64])
    loaded.train_on_batch(x[:64], y[:64])
    for a, b in zip(wrapped.get_weights(), loaded.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_xla_compiled_step_equals_the_graph_step():
    # jit_compile="auto" turns XLA on where a GPU is present.
    x, y = data()
    steps = []
    for jit in (False, True):
        model = mlp()
        wrapped = kt.supervised.CurvatureModel(model)
        wrapped.compile(optimizer=kt.optimizers.TrustRegion(), loss=SCCE, jit_compile=jit)
        logs = wrapped.train_on_batch(x[:64], y[:64], return_dict=True)
        assert logs["accepted"] == 1.0
        steps.append(model.get_weights())
    for a, b in zip(*steps):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_other_optimizers_train_as_the_plain_model_would():
    model, (x, y) = mlp(), data()
    wrapped = kt.supervised.CurvatureModel(model)
    wrapped.compile(optimizer=keras.optimizers.Adam(0.01), loss="mae")  # no distribution: ok
    history = wrapped.fit(x, y.astype(np.float32)[:, None], batch_size=32, epochs=2, verbose=0)
    assert sorted(history.history) == ["loss"]


def my_loss(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_true - y_pred))


@pytest.mark.parametrize(
    "loss, name",
    [("mae", "mae"), ("hinge", "hinge"), (keras.losses.Huber(), "Huber"), (my_loss, "my_loss")],
)
@pytest.mark.parametrize("optimizer", [kt.optimizers.NaturalGradient, kt.optimizers.TrustRegion])
def test_loss_without_a_distribution_raises_at_compile_naming_it(optimizer, loss, name):
    wrapped = kt.supervised.CurvatureModel(mlp())
    with pytest.raises(ValueError, match=rf"Loss '{name}'"):
        wrapped.compile(optimizer=optimizer(max_kl=0.01), loss=loss)
    assert not wrapped.compiled


def test_bad_setups_raise_before_training():
    inputs = keras.Input((6,))
    two = keras.Model(
        inputs, [keras.layers.Dense(3, name="a")(inputs), keras.layers.Dense(1, name="b")(inputs)]
    )
    opt = kt.optimizers.TrustRegion()
    with pytest.raises(ValueError, match="Loss 'mae'"):
        kt.supervised.CurvatureModel(two).compile(optimizer=opt, loss={"a": SCCE, "b": "mae"})
    with pytest.raises(ValueError, match="needs a compiled loss"):
        kt.supervised.CurvatureModel(mlp()).compile(optimizer=opt)
    with pytest.raises(ValueError, match="mixed-precision"):
        kt.supervised.CurvatureModel(mlp(), dtype="mixed_float16").compile(optimizer=opt, loss=SCCE)
    with pytest.raises(ValueError, match="wraps a Keras model"):
        kt.supervised.CurvatureModel(lambda x: x)
