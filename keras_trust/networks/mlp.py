"""The default torso: a multilayer perceptron on the flattened observation."""

import math

import keras


def mlp(hidden_sizes=(64, 64), activation="tanh", name=None) -> keras.Model:
    """`Flatten` then `Dense` layers with orthogonal init (gain sqrt 2), as in PPO's paper.

    Example:
    >>> mlp((32,))(np.zeros((2, 4))).shape
    TensorShape([2, 32])
    """
    layers = [keras.layers.Flatten()]
    for size in hidden_sizes:
        layers.append(
            keras.layers.Dense(
                int(size),
                activation=activation,
                kernel_initializer=keras.initializers.Orthogonal(gain=math.sqrt(2)),
            )
        )
    return keras.Sequential(layers, name=name)
