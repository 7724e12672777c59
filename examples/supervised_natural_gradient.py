"""Train any Keras model by `fit()` with natural-gradient or trust-region steps.

`kt.supervised.CurvatureModel(model)` wraps a Keras model (here a small MLP with
BatchNormalization and Dropout) so that `compile(optimizer=kt.optimizers.NaturalGradient(
max_kl=...))` and `fit(x, y)` work: the metric is the Fisher of the softmax predictive
distribution (the cross-entropy's Gauss-Newton matrix), each step's KL between the old
and new predictions on the batch is about `max_kl`. The data is two interleaved spirals.

Run: python examples/supervised_natural_gradient.py [--epochs 20] [--trust-region]
"""

import argparse

import keras
import numpy as np

import keras_trust as kt


def spirals(n, rng):
    """Two interleaved 2-D spirals, 0/1 labels."""
    t = rng.uniform(0.25, 3.0, size=n) * np.pi
    label = rng.integers(0, 2, size=n)
    sign = np.where(label == 1, 1.0, -1.0)
    x = np.stack([sign * t * np.cos(t), sign * t * np.sin(t)], axis=1) / 3.0
    return (x + 0.05 * rng.normal(size=x.shape)).astype(np.float32), label


def main(epochs: int, trust_region: bool) -> None:
    rng = np.random.default_rng(0)
    x, y = spirals(2000, rng)
    x_test, y_test = spirals(500, rng)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((2,)),
            keras.layers.Dense(64),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
            keras.layers.Dropout(0.1),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(2),  # logits
        ]
    )
    if trust_region:
        optimizer = kt.optimizers.TrustRegion(max_kl=0.01)
    else:
        optimizer = kt.optimizers.NaturalGradient(max_kl=0.01)
    wrapped = kt.supervised.CurvatureModel(model)  # shares model's layers and weights
    wrapped.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = wrapped.fit(
        x, y, batch_size=128, epochs=epochs, validation_data=(x_test, y_test), verbose=0
    )
    for epoch, logs in enumerate(zip(*history.history.values())):
        row = dict(zip(history.history, logs))
        print(
            f"epoch {epoch + 1}: loss {row['loss']:.3f} accuracy {row['accuracy']:.3f} "
            f"kl {row['kl']:.4f} accepted {row['accepted']:.2f} "
            f"val_accuracy {row['val_accuracy']:.3f}"
        )
    test = wrapped.evaluate(x_test, y_test, verbose=0, return_dict=True)
    print(f"test accuracy: {test['accuracy']:.3f}")
    # The inner model is trained too and can be used, saved or compiled on its own.
    agree = np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
    print(f"inner model test accuracy: {agree:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--trust-region", action="store_true")
    args = parser.parse_args()
    main(args.epochs, args.trust_region)
