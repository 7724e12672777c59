"""KLPenalty: the adaptive beta rule by hand, the KL against numpy, saving beta."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt
from keras_trust.distributions import CategoricalHead


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


@pytest.mark.parametrize(
    "kl, expected_beta",
    [
        (0.001, 0.5),  # < 0.01 / 1.5: halves
        (0.0066, 0.5),  # just below 0.00667
        (0.0, 0.5),
        (0.007, 1.0),  # in [target / 1.5, 1.5 target]: unchanged
        (0.01, 1.0),
        (0.0149, 1.0),
        (0.0151, 2.0),  # > 1.5 * target: doubles
        (0.5, 2.0),
        (float("nan"), 1.0),  # no information: unchanged
        (float("inf"), 1.0),
    ],
)
def test_beta_rule_on_hand_picked_kls(kl, expected_beta):
    pen = kt.layers.KLPenalty(target_kl=0.01, initial_beta=1.0)
    returned = pen.update_beta(kl)
    assert float(pen.beta.numpy()) == expected_beta
    assert float(returned) == expected_beta


def test_beta_rule_sequence_and_clipping():
    pen = kt.layers.KLPenalty(target_kl=0.02, initial_beta=4.0, min_beta=0.5, max_beta=16.0)
    betas = [float(pen.update_beta(kl)) for kl in [0.1, 0.1, 0.1, 0.02, 0.0, 0.0, 0.0, 0.0, 0.0]]
    # 4 -> 8 -> 16 -> 16 (clipped at max) -> 16 (in band) -> 8 -> 4 -> 2 -> 1 -> 0.5
    assert betas == [8.0, 16.0, 16.0, 16.0, 8.0, 4.0, 2.0, 1.0, 0.5]
    assert float(pen.update_beta(0.0)) == 0.5  # clipped at min_beta
    assert float(pen.update_beta(float("nan"))) == 0.5


def test_returned_kl_and_loss_categorical():
    rng = np.random.default_rng(0)
    old, new = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    pen = kt.layers.KLPenalty(target_kl=0.01, initial_beta=3.0)
    kl = pen([tf.constant(old, tf.float32)], [tf.constant(new, tf.float32)])
    lp, lq = log_softmax(old), log_softmax(new)
    expected = np.mean((np.exp(lp) * (lp - lq)).sum(-1))
    assert float(kl) == pytest.approx(expected, rel=1e-5)
    assert len(pen.losses) == 1
    assert float(pen.losses[0]) == pytest.approx(3.0 * expected, rel=1e-5)


def test_returned_kl_gaussian_and_gradient_flows_only_into_new():
    rng = np.random.default_rng(1)
    mu_o, ls_o = rng.normal(size=(5, 2)), rng.uniform(-1, 0, size=(5, 2))
    mu_n, ls_n = rng.normal(size=(5, 2)), rng.uniform(-1, 0, size=(5, 2))
    pen = kt.layers.KLPenalty(distribution="diag_gaussian", initial_beta=0.25)
    old = [tf.Variable(mu_o), tf.Variable(ls_o)]
    new = [tf.Variable(mu_n), tf.Variable(ls_n)]
    with tf.GradientTape() as tape:
        kl = pen(old, new)
    per = ls_n - ls_o + (np.exp(2 * ls_o) + (mu_o - mu_n) ** 2) / (2 * np.exp(2 * ls_n)) - 0.5
    expected = np.mean(per.sum(-1))
    # The layer computes in its float32 compute dtype (Keras autocasts the inputs).
    assert float(kl) == pytest.approx(expected, rel=1e-5)
    assert float(pen.losses[0]) == pytest.approx(0.25 * expected, rel=1e-5)
    grads = tape.gradient(kl, old + new)
    assert grads[0] is None and grads[1] is None
    # d KL / d mu_new = (mu_new - mu_old) / sigma_new^2 / batch
    np.testing.assert_allclose(grads[2].numpy(), (mu_n - mu_o) / np.exp(2 * ls_n) / 5, rtol=1e-4)


def test_losses_track_the_current_beta():
    pen = kt.layers.KLPenalty(target_kl=0.01)
    old, new = [tf.constant([[0.0, 1.0]])], [tf.constant([[1.0, 0.0]])]
    kl = float(pen(old, new))
    pen.update_beta(1.0)  # doubles
    pen(old, new)
    assert float(pen.losses[-1]) == pytest.approx(2.0 * kl, rel=1e-6)


def _policy_with_penalty():
    obs = keras.Input((3,))
    old_logits = keras.Input((2,))
    (logits,) = CategoricalHead(2, gain=1.0)(keras.layers.Dense(4, activation="tanh")(obs))
    kl = kt.layers.KLPenalty(target_kl=0.01, name="penalty")([old_logits], [logits])
    return keras.Model([obs, old_logits], [logits, kl])


def test_beta_saved_and_restored_in_keras_file(tmp_path):
    model = _policy_with_penalty()
    pen = model.get_layer("penalty")
    for kl in [1.0, 1.0, 1.0]:  # 1 -> 8
        pen.update_beta(kl)
    assert float(pen.beta.numpy()) == 8.0
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    loaded_pen = loaded.get_layer("penalty")
    assert isinstance(loaded_pen, kt.layers.KLPenalty)
    assert float(loaded_pen.beta.numpy()) == 8.0
    assert loaded_pen.get_config() == pen.get_config()
    x = np.random.default_rng(0).normal(size=(4, 3)).astype("float32")
    old = np.zeros((4, 2), "float32")
    np.testing.assert_allclose(loaded([x, old])[1].numpy(), model([x, old])[1].numpy(), 1e-6)
    assert not loaded_pen.beta.trainable


def test_beta_is_a_non_trainable_weight():
    pen = kt.layers.KLPenalty(initial_beta=2.0)
    assert pen.beta in pen.non_trainable_weights
    assert not pen.trainable_weights


def test_serialize_round_trip():
    pen = kt.layers.KLPenalty(
        target_kl=0.02, initial_beta=0.3, min_beta=0.01, max_beta=10.0, distribution="categorical"
    )
    clone = keras.layers.deserialize(keras.layers.serialize(pen))
    assert type(clone) is kt.layers.KLPenalty
    assert clone.get_config() == pen.get_config()
    assert float(clone.beta.numpy()) == pytest.approx(0.3)
    assert (clone.target_kl, clone.min_beta, clone.max_beta) == (0.02, 0.01, 10.0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"target_kl": 0.0}, "target_kl"),
        ({"target_kl": -1.0}, "target_kl"),
        ({"min_beta": 0.0}, "min_beta"),
        ({"min_beta": 2.0, "max_beta": 1.0}, "min_beta"),
        ({"initial_beta": 100.0, "max_beta": 10.0}, "initial_beta"),
        ({"initial_beta": 1e-9}, "initial_beta"),
        ({"distribution": "beta"}, "distribution"),
    ],
)
def test_invalid_arguments_raise(kwargs, name):
    with pytest.raises(ValueError, match=name):
        kt.layers.KLPenalty(**kwargs)
