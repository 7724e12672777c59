"""RunningNormalization against numpy statistics of the concatenated data."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_trust as kt


def batches(seed, sizes=(5, 1, 17, 3, 40), dim=3):
    rng = np.random.default_rng(seed)
    return [
        rng.normal(loc=[1.0, -4.0, 100.0], scale=[0.1, 3.0, 20.0], size=(n, dim)) for n in sizes
    ]


def test_update_matches_numpy_over_concatenated_batches():
    data = batches(0)
    norm = kt.layers.RunningNormalization()
    norm.build((None, 3))
    for b in data:
        norm.update(b)
    allx = np.concatenate(data)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-10)
    assert float(norm.count.numpy()) == len(allx)
    np.testing.assert_allclose(norm.std.numpy(), np.sqrt(allx.var(0) + 1e-8), rtol=1e-10)


def test_update_accepts_float32_tensors():
    data = [b.astype(np.float32) for b in batches(1)]
    norm = kt.layers.RunningNormalization()
    norm.build((None, 3))
    for b in data:
        norm.update(tf.constant(b))
    allx = np.concatenate(data).astype(np.float64)
    np.testing.assert_allclose(norm.mean.numpy(), allx.mean(0), rtol=1e-10)
    np.testing.assert_allclose(norm.var.numpy(), allx.var(0), rtol=1e-9)


def test_single_sample_batches_and_scalar_features():
    rng = np.random.default_rng(2)
    xs = rng.normal(size=(9, 1)) * 5 + 2
    norm = kt.layers.RunningNormalization(center=False)
    norm.build((None, 1))
    for x in xs:
        norm.update(x[None])
    np.testing.assert_allclose(norm.mean.numpy(), xs.mean(0), rtol=1e-12)
    np.testing.assert_allclose(norm.var.numpy(), xs.var(0), rtol=1e-10)


def test_call_normalizes_and_clips():
    data = batches(3)
    norm = kt.layers.RunningNormalization(clip=2.0)
    norm.build((None, 3))
    for b in data:
        norm.update(b)
    allx = np.concatenate(data)
    mean, var = allx.mean(0), allx.var(0)
    x = np.array([[1.0, -4.0, 100.0], [1.3, 2.0, 60.0], [0.0, -20.0, 300.0]])
    expected = np.clip((x - mean) / np.sqrt(var + 1e-8), -2.0, 2.0)
    got = norm(tf.constant(x, tf.float32)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.abs(got).max() == pytest.approx(2.0)  # the clip is reached


def test_call_without_clip_and_without_center():
    data = batches(4)
    allx = np.concatenate(data)
    mean, var = allx.mean(0), allx.var(0)
    x = np.array([[50.0, 50.0, 500.0]])
    unclipped = kt.layers.RunningNormalization(clip=None)
    scale_only = kt.layers.RunningNormalization(center=False, clip=None)
    for norm in (unclipped, scale_only):
        norm.build((None, 3))
        for b in data:
            norm.update(b)
    np.testing.assert_allclose(unclipped(x).numpy(), (x - mean) / np.sqrt(var + 1e-8), rtol=1e-5)
    # center=False: only divides by the running std (the statistics still track the mean).
    np.testing.assert_allclose(scale_only(x).numpy(), x / np.sqrt(var + 1e-8), rtol=1e-5)
    np.testing.assert_allclose(scale_only.mean.numpy(), mean, rtol=1e-12)


def test_fresh_layer_is_identity_up_to_clip():
    norm = kt.layers.RunningNormalization()
    x = np.array([[0.5, -3.0, 20.0]], np.float32)
    np.testing.assert_allclose(norm(x).numpy(), [[0.5, -3.0, 10.0]], rtol=1e-6)


def test_calling_does_not_update_statistics():
    norm = kt.layers.RunningNormalization()
    norm(np.ones((4, 2), np.float32) * 7)
    np.testing.assert_array_equal(norm.mean.numpy(), [0.0, 0.0])
    assert float(norm.count.numpy()) == 0.0
    assert not norm.trainable_weights


def test_update_with_empty_batch_keeps_statistics():
    """An empty batch carries no data: the statistics stay as they were (not NaN)."""
    norm = kt.layers.RunningNormalization()
    norm.build((None, 2))
    norm.update(np.array([[1.0, 2.0], [3.0, 6.0]]))
    norm.update(np.zeros((0, 2)))
    np.testing.assert_allclose(norm.mean.numpy(), [2.0, 4.0])
    np.testing.assert_allclose(norm.var.numpy(), [1.0, 4.0])
    assert float(norm.count.numpy()) == 2.0


def test_serialization_round_trip_and_saved_statistics(tmp_path):
    norm = kt.layers.RunningNormalization(center=False, epsilon=1e-4, clip=5.0, name="norm")
    clone = keras.layers.deserialize(keras.layers.serialize(norm))
    assert type(clone) is kt.layers.RunningNormalization
    assert clone.get_config() == norm.get_config()
    assert (clone.center, clone.epsilon, clone.clip) == (False, 1e-4, 5.0)

    inputs = keras.Input((3,))
    model = keras.Model(inputs, kt.layers.RunningNormalization(name="norm")(inputs))
    data = batches(5)
    for b in data:
        model.get_layer("norm").update(b)
    model.save(tmp_path / "n.keras")
    loaded = keras.saving.load_model(tmp_path / "n.keras").get_layer("norm")
    allx = np.concatenate(data)
    np.testing.assert_allclose(loaded.mean.numpy(), allx.mean(0), rtol=1e-12)
    np.testing.assert_allclose(loaded.var.numpy(), allx.var(0), rtol=1e-10)
    assert float(loaded.count.numpy()) == len(allx)
