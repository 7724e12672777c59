"""`RecurrentTorso`: any Keras RNN cell as a policy or value torso, for partial observability.

One step maps `(observation batch, state, episode_start)` to `(features, new state)`:
rows whose episode starts get the zero state first, so no memory leaks across episodes.
`unroll` runs the same step over a time-major sequence from a given initial state,
resetting inside the sequence before the steps it is told to: given the resets the
rollout made (`keras_trust.agents.recurrence` says where), the update sees exactly the
states the rollout had (up to float rounding between the XLA-compiled act step and the
update's graph).
"""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="keras_trust")
class RecurrentTorso(keras.layers.Layer):
    """An optional feed-forward `encoder`, a Keras RNN `cell`, an optional `decoder`.

    The decoder is what sb3-contrib's RecurrentPPO puts after its LSTM (its `net_arch`
    MLPs): features computed from the cell's output on every step, so the memory feeds
    a nonlinear layer before the action and value heads.

    Args:
        cell: a Keras RNN cell (`LSTMCell`, `GRUCell`, `SimpleRNNCell`, or a user's cell
            with `state_size`, called as `cell(inputs, states) -> (output, new_states)`).
        encoder: a Keras model applied to each observation batch before the cell.
            Defaults to `None` (the observation flattened).
        decoder: a feed-forward Keras model applied to the cell's output; its output
            is the torso's features. Defaults to `None` (the cell's output).

    Example:
    >>> torso = RecurrentTorso(keras.layers.GRUCell(64))
    >>> agent = kt.PPO(policy=torso, value=RecurrentTorso(keras.layers.GRUCell(64)))
    >>> lstm = RecurrentTorso(
    ...     keras.layers.LSTMCell(64), decoder=keras.layers.Dense(64, activation="relu")
    ... )
    """

    def __init__(self, cell, encoder=None, decoder=None, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(cell, "state_size"):
            raise ValueError(
                f"cell must be a Keras RNN cell with a `state_size`. Received: {cell!r}"
            )
        self.cell = cell
        self.encoder = encoder
        self.decoder = decoder
        self.flatten = keras.layers.Flatten()

    @property
    def state_sizes(self) -> list:
        """The size of each state tensor (LSTM: `[h, c]`; GRU: `[h]`)."""
        size = self.cell.state_size
        return [int(s) for s in size] if isinstance(size, list | tuple) else [int(size)]

    def initial_state(self, batch_size) -> list:
        """The zero state for `batch_size` rows (a list of `(batch, size)` tensors)."""
        return [tf.zeros((batch_size, s)) for s in self.state_sizes]

    def build(self, input_shape):
        self.built = True

    def _encode(self, x):
        return self.encoder(x) if self.encoder is not None else self.flatten(x)

    def step(self, x, states, episode_start):
        """One step: `(features, new_states)`; rows with `episode_start` start from zeros."""
        keep = 1.0 - tf.cast(tf.reshape(episode_start, [-1, 1]), tf.float32)
        states = [s * keep for s in states]
        out, new = self.cell(self._encode(x), states)
        new = list(new) if isinstance(new, list | tuple) else [new]
        if self.decoder is not None:
            out = self.decoder(out)
        return out, new

    def call(self, x, states=None, episode_start=None):
        """Features of one step from the zero state (what a feature check calls)."""
        batch = tf.shape(tf.nest.flatten(x)[0])[0]
        if states is None:
            states = self.initial_state(batch)
        if episode_start is None:
            episode_start = tf.zeros([batch], tf.bool)
        return self.step(x, states, episode_start)[0]

    def unroll(self, x_seq, episode_starts, initial_states, static=False):
        """Features `(T, B, F)` of a time-major sequence `x_seq` (a nest of `(T, B, ...)`).

        `episode_starts` is `(T, B)` bool; the state is reset before each step that starts
        an episode. The loop is a `tf.while_loop` (small graph, fast to trace); with
        `static=True` and a static T it is unrolled in the graph instead, which
        forward-mode autodiff (forward-over-reverse Fisher products) needs.
        """
        steps = episode_starts.shape[0]
        states = list(initial_states)
        if static and steps is not None:
            features = []
            for t in range(steps):
                x = tf.nest.map_structure(lambda a, t=t: a[t], x_seq)
                out, states = self.step(x, states, episode_starts[t])
                features.append(out)
            return tf.stack(features)
        steps = tf.shape(episode_starts)[0]

        def body(t, states, features):
            x = tf.nest.map_structure(lambda a: a[t], x_seq)
            out, states = self.step(x, states, episode_starts[t])
            return t + 1, states, features.write(t, out)

        _, _, features = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (tf.constant(0), states, tf.TensorArray(tf.float32, size=steps)),
        )
        return features.stack()

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "encoder": None
            if self.encoder is None
            else keras.saving.serialize_keras_object(self.encoder),
            "decoder": None
            if self.decoder is None
            else keras.saving.serialize_keras_object(self.decoder),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        for key in ("encoder", "decoder"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
