"""`ObservationFormat`: nested storage, specs and network input, checked by hand."""

import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from keras_trust.observations import ObservationFormat
from keras_trust.spaces import space_from_config, space_to_config

SPACE = gym.spaces.Dict(
    {
        "image": gym.spaces.Box(0, 255, (6, 5, 3), np.uint8),
        "vec": gym.spaces.Box(-1, 1, (2,), np.float32),
        "extra": gym.spaces.Tuple(
            (gym.spaces.Discrete(3, start=1), gym.spaces.MultiDiscrete([2, 3]))
        ),
        "bits": gym.spaces.MultiBinary(4),
    }
)


def test_leaves_specs_and_storage_dtypes():
    fmt = ObservationFormat(SPACE)
    assert fmt.nested
    # tf.nest order: dict keys sorted, tuples in order.
    assert fmt.leaf_names == ["bits", "extra_0", "extra_1", "image", "vec"]
    specs = tf.nest.flatten(fmt.specs())
    assert [tuple(s.shape) for s in specs] == [
        (None, 4),
        (None,),
        (None, 2),
        (None, 6, 5, 3),
        (None, 2),
    ]
    assert [s.dtype for s in specs] == [tf.float32] * 3 + [tf.uint8, tf.float32]
    buf = fmt.empty((7, 2))
    assert buf["image"].dtype == np.uint8 and buf["image"].shape == (7, 2, 6, 5, 3)
    assert buf["image"].nbytes == 7 * 2 * 6 * 5 * 3  # one byte per pixel, not four


def test_store_take_and_batch_round_trip():
    fmt = ObservationFormat(SPACE)
    SPACE.seed(0)
    obs = [SPACE.sample() for _ in range(3)]
    buf = fmt.empty((3,))
    for t, o in enumerate(obs):
        fmt.store(buf, t, o)
    np.testing.assert_array_equal(fmt.take(buf, 1)["image"], obs[1]["image"])
    assert fmt.take(buf, 2)["extra"][0] == obs[2]["extra"][0]
    single, is_single = fmt.batch(obs[0])
    assert is_single and single["vec"].shape == (1, 2)
    with pytest.raises(ValueError, match="Expected observations of shape"):
        fmt.batch({**obs[0], "vec": np.zeros(3)})


def test_preprocess_one_hots_and_casts():
    fmt = ObservationFormat(SPACE)
    obs = {
        "image": np.full((1, 6, 5, 3), 255, np.uint8),
        "vec": np.array([[0.5, -0.5]], np.float32),
        "extra": (np.array([3.0], np.float32), np.array([[1.0, 2.0]], np.float32)),
        "bits": np.array([[1, 0, 1, 1]], np.float32),
    }
    x = fmt.preprocess(obs, [None] * 5)
    np.testing.assert_array_equal(x["extra"][0].numpy(), [[0, 0, 1]])  # 3 - start 1 -> index 2
    np.testing.assert_array_equal(x["extra"][1].numpy(), [[0, 1, 0, 0, 1]])  # one-hot 2 + 3
    np.testing.assert_array_equal(x["bits"].numpy(), [[1, 0, 1, 1]])
    assert x["image"].dtype == tf.float32 and float(x["image"][0, 0, 0, 0]) == 255.0


def test_channels_first_images_are_transposed():
    space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)  # FrameStackObservation's layout
    fmt = ObservationFormat(space)
    obs = np.random.default_rng(0).integers(0, 255, (2, 4, 84, 84)).astype(np.uint8)
    x = fmt.preprocess(obs, [None]).numpy()
    assert x.shape == (2, 84, 84, 4)
    np.testing.assert_array_equal(x[1, 10, 20], obs[1, :, 10, 20])


def test_non_finite_rows_skip_images():
    fmt = ObservationFormat(SPACE)
    obs = fmt.zeros(3)
    obs["vec"][1, 0] = np.nan
    np.testing.assert_array_equal(fmt.non_finite_rows(obs), [False, True, False])
    assert not fmt.all_finite(obs)


def test_nested_spaces_round_trip_through_config():
    space = gym.spaces.Dict({"a": SPACE, "b": gym.spaces.MultiBinary([2, 3])})
    assert space_from_config(space_to_config(space)) == space
