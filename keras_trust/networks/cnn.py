"""Image encoders: the Nature CNN (Mnih et al., 2015) and a small CNN for tiny images."""

import math

import keras

# The Nature CNN's receptive field: smaller images (e.g. MiniGrid's 7x7 view) get the
# small CNN, whose 3x3 "same" convolutions keep every pixel.
NATURE_MIN_SIZE = 36


def _orthogonal():
    return keras.initializers.Orthogonal(gain=math.sqrt(2))


def nature_cnn(features: int = 512, name=None) -> keras.Model:
    """Conv 32x8/4, 64x4/2, 64x3/1, then Dense `features`, ReLU, on `x / 255`.

    The DQN paper's network (Mnih et al., 2015, "Human-level control through deep
    reinforcement learning"), as Stable-Baselines3 and CleanRL use it for Atari.
    """
    conv = dict(activation="relu", kernel_initializer=_orthogonal())
    return keras.Sequential(
        [
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(32, 8, strides=4, **conv),
            keras.layers.Conv2D(64, 4, strides=2, **conv),
            keras.layers.Conv2D(64, 3, strides=1, **conv),
            keras.layers.Flatten(),
            keras.layers.Dense(features, **conv),
        ],
        name=name,
    )


def small_cnn(features: int = 128, name=None) -> keras.Model:
    """Three 3x3 "same" convolutions (16, 32, 32), then Dense `features`, on `x / 255`."""
    conv = dict(activation="relu", kernel_initializer=_orthogonal())
    return keras.Sequential(
        [
            keras.layers.Rescaling(1.0 / 255.0),
            keras.layers.Conv2D(16, 3, padding="same", **conv),
            keras.layers.Conv2D(32, 3, padding="same", **conv),
            keras.layers.Conv2D(32, 3, padding="same", **conv),
            keras.layers.Flatten(),
            keras.layers.Dense(features, **conv),
        ],
        name=name,
    )


def image_encoder(shape, name=None) -> keras.Model:
    """The Nature CNN for images at least 36x36 (channels last `shape`), else the small CNN."""
    if min(shape[0], shape[1]) >= NATURE_MIN_SIZE:
        return nature_cnn(name=name)
    return small_cnn(name=name)
