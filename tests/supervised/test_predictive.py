"""The predictive distribution behind each Keras loss, its KL, and the batch KL."""

import functools

import keras
import numpy as np
import pytest
from gauss_newton_reference import kl_divergence, sigmoid, softmax

from keras_trust.supervised.predictive import (
    mean_kl,
    output_kls,
    per_output,
    predictive_kl,
)

RNG = np.random.default_rng(0)
Z_OLD = RNG.normal(size=(6, 3)).astype(np.float32)
Z_NEW = (Z_OLD + 0.5 * RNG.normal(size=(6, 3))).astype(np.float32)

# loss -> (kind, whether the outputs are probabilities)
LOSSES = {
    "sparse_categorical_crossentropy": ("categorical", True),
    "categorical_crossentropy": ("categorical", True),
    "SparseCategoricalCrossentropy": ("categorical", True),
    "binary_crossentropy": ("bernoulli", True),
    "mse": ("gaussian", False),
    "mean_squared_error": ("gaussian", False),
    "MeanSquaredError": ("gaussian", False),
}
LOSS_OBJECTS = [
    (keras.losses.SparseCategoricalCrossentropy(from_logits=True), "categorical", False),
    (keras.losses.CategoricalCrossentropy(from_logits=True), "categorical", False),
    (keras.losses.CategoricalCrossentropy(), "categorical", True),
    (keras.losses.BinaryCrossentropy(from_logits=True), "bernoulli", False),
    (keras.losses.BinaryCrossentropy(), "bernoulli", True),
    (keras.losses.MeanSquaredError(), "gaussian", False),
    (keras.losses.sparse_categorical_crossentropy, "categorical", True),
    (keras.losses.binary_crossentropy, "bernoulli", True),
    (keras.losses.mean_squared_error, "gaussian", False),
    (
        functools.partial(keras.losses.sparse_categorical_crossentropy, from_logits=True),
        "categorical",
        False,
    ),
]


def numpy_kl(kind, probabilities):
    """The reference KL per example, from logits, or from probabilities as outputs."""
    if not probabilities:
        return kl_divergence(kind, Z_OLD, Z_NEW)
    link = softmax if kind == "categorical" else sigmoid
    p, q = link(Z_OLD), link(Z_NEW)
    if kind == "categorical":
        return np.sum(p * np.log(p / q), axis=-1)
    return np.sum(p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q)), axis=-1)


def outputs(kind, probabilities):
    if not probabilities:
        return Z_OLD, Z_NEW
    link = softmax if kind == "categorical" else sigmoid
    return link(Z_OLD).astype(np.float32), link(Z_NEW).astype(np.float32)


def per_example(kl):
    kl = np.asarray(kl)
    return kl.sum(axis=tuple(range(1, kl.ndim)))


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_loss_names_give_their_distribution_kl(name):
    kind, probabilities = LOSSES[name]
    old, new = outputs(kind, probabilities)
    kl = per_example(predictive_kl(name)(old, new))
    np.testing.assert_allclose(kl, numpy_kl(kind, probabilities), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("loss, kind, probabilities", LOSS_OBJECTS)
def test_loss_objects_and_functions_give_their_distribution_kl(loss, kind, probabilities):
    old, new = outputs(kind, probabilities)
    kl = per_example(predictive_kl(loss)(old, new))
    np.testing.assert_allclose(kl, numpy_kl(kind, probabilities), rtol=1e-4, atol=1e-6)


def test_crossentropy_shortcut_follows_the_output_width():
    old, new = outputs("categorical", True)
    np.testing.assert_allclose(
        per_example(predictive_kl("crossentropy")(old, new)),
        numpy_kl("categorical", True),
        rtol=1e-4,
    )
    p, q = sigmoid(Z_OLD[:, :1]), sigmoid(Z_NEW[:, :1])
    expected = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).ravel()
    kl = per_example(predictive_kl("ce")(p.astype(np.float32), q.astype(np.float32)))
    np.testing.assert_allclose(kl, expected, rtol=1e-4)


def test_kl_is_zero_at_the_old_outputs():
    for name, (kind, probabilities) in LOSSES.items():
        old, _ = outputs(kind, probabilities)
        assert np.abs(per_example(predictive_kl(name)(old, old))).max() < 1e-6, name


def my_loss(y_true, y_pred):
    return keras.ops.mean(keras.ops.abs(y_true - y_pred))


@pytest.mark.parametrize(
    "loss, name",
    [
        ("mae", "mae"),
        ("hinge", "hinge"),
        ("kl_divergence", "kl_divergence"),
        (keras.losses.Huber(), "Huber"),
        (keras.losses.CategoricalFocalCrossentropy(), "CategoricalFocalCrossentropy"),
        (keras.losses.BinaryFocalCrossentropy(), "BinaryFocalCrossentropy"),
        (my_loss, "my_loss"),
        ("not_a_loss", "not_a_loss"),
    ],
)
def test_losses_without_a_distribution_raise_naming_the_loss(loss, name):
    with pytest.raises(ValueError, match=rf"Loss '{name}' is not the negative log-likelihood"):
        predictive_kl(loss)


def test_mean_kl_sums_weighted_outputs_with_per_example_sample_weights():
    y_old = {"cls": Z_OLD, "reg": Z_OLD[:, :2]}
    y_new = {"cls": Z_NEW, "reg": Z_NEW[:, :2]}
    loss = {"cls": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "reg": "mse"}
    terms = output_kls(loss, {"cls": 1.0, "reg": 0.25}, y_new)
    w = RNG.uniform(0.5, 2.0, size=6).astype(np.float32)
    got = float(mean_kl(terms, y_old, y_new, sample_weight=w[:, None]))
    cls = kl_divergence("categorical", Z_OLD, Z_NEW)
    reg = kl_divergence("gaussian", Z_OLD[:, :2], Z_NEW[:, :2])
    expected = np.sum(w * cls) / w.sum() + 0.25 * np.sum(w * reg) / w.sum()
    assert got == pytest.approx(expected, rel=1e-5)
    # An output without a loss has no KL term; no weights is the plain mean.
    terms = output_kls({"cls": None, "reg": "mse"}, None, y_new)
    assert float(mean_kl(terms, y_old, y_new)) == pytest.approx(reg.mean(), rel=1e-5)


def test_list_outputs_match_losses_by_position_or_output_name():
    y = [Z_OLD, Z_OLD[:, :2]]
    by_name = output_kls({"b": "mse", "a": "binary_crossentropy"}, None, y, ["a", "b"])
    by_position = output_kls(["binary_crossentropy", "mse"], [1.0, 1.0], y)
    assert [t.index for t in by_name] == [t.index for t in by_position] == [0, 1]
    assert by_name[1].kl is by_position[1].kl  # both MSE: the unit Gaussian KL


@pytest.mark.parametrize(
    "value, message",
    [
        (["mse"], "loss has 1 entries for a model with 2 outputs"),
        ({"a": "mse", "c": "mse"}, "keys of loss must be the model's output names"),
    ],
)
def test_losses_that_do_not_fit_the_outputs_raise(value, message):
    with pytest.raises(ValueError, match=message):
        per_output(value, [Z_OLD, Z_OLD], ["a", "b"], "loss")


def test_sample_weights_per_element_raise():
    terms = output_kls("mse", None, Z_NEW)
    with pytest.raises(ValueError, match="one sample weight per example"):
        mean_kl(terms, Z_OLD, Z_NEW, sample_weight=np.ones((6, 3), np.float32))
