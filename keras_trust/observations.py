"""Observations of any supported space as nests of arrays: storage, specs, network input.

A `Dict` or `Tuple` observation is a nest (dict keyed like the space, tuple) whose
leaves are `Box`, `Discrete`, `MultiBinary` or `MultiDiscrete` arrays; a flat space is a
single leaf. Everything that moves observations (the rollout buffers, the compiled act
step, the training batch, Ray transfers, exports) maps over the leaves in one fixed
order, `tf.nest`'s (dict keys sorted), so the nest never needs a special case.

Storage: images (rank-3 uint8 `Box`) stay uint8, a quarter of float32's memory; every
other leaf is float32 (a `Discrete` leaf is its index). Network input
(`ObservationFormat.preprocess`): `Discrete` and `MultiDiscrete` one-hot, `MultiBinary`
0/1 floats, images cast to float (raw 0-255: the default CNN torso scales by 1/255),
other `Box` leaves cast to float and, if enabled, normalized by running statistics.
Channels-first images (`FrameStackObservation` over `AtariPreprocessing`: (4, 84, 84))
are transposed to channels last, so the network always sees `(B, H, W, C)`.
"""

from collections.abc import Mapping

import gymnasium as gym
import numpy as np
import tensorflow as tf

from keras_trust.spaces import channels_first, check_observation_space, is_image


def _template(space):
    if isinstance(space, gym.spaces.Dict):
        return {k: _template(s) for k, s in space.spaces.items()}
    if isinstance(space, gym.spaces.Tuple):
        return tuple(_template(s) for s in space.spaces)
    return space


def _names(space, prefix):
    if isinstance(space, gym.spaces.Dict):
        return {
            k: _names(s, f"{prefix}_{k}" if prefix else str(k)) for k, s in space.spaces.items()
        }
    if isinstance(space, gym.spaces.Tuple):
        return tuple(
            _names(s, f"{prefix}_{i}" if prefix else str(i)) for i, s in enumerate(space.spaces)
        )
    return prefix


def leaf_shape(space) -> tuple:
    """Shape of one stored observation of a leaf space (Discrete: a scalar index)."""
    if isinstance(space, gym.spaces.Discrete):
        return ()
    if isinstance(space, gym.spaces.MultiBinary):
        return tuple(np.atleast_1d(space.n).tolist())
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(space.nvec.shape)
    return tuple(space.shape)


def storage_dtype(space):
    """uint8 for images, float32 for every other leaf."""
    return np.uint8 if is_image(space) else np.float32


def normalizable(space) -> bool:
    """Whether running mean/std normalization applies: non-image float `Box` leaves."""
    return (
        isinstance(space, gym.spaces.Box)
        and not is_image(space)
        and np.issubdtype(space.dtype, np.floating)
    )


def _leaf(name: str) -> str:
    """The words " of leaf 'name'" for messages ("" for a flat space)."""
    return f" of leaf {name!r}" if name else ""


class ObservationFormat:
    """The leaves of an observation space and how each is stored and fed to a network.

    Args:
        space: a supported observation space (`ValueError` naming it otherwise).
    """

    def __init__(self, space):
        check_observation_space(space)
        self.space = space
        self.template = _template(space)
        self.leaves = tf.nest.flatten(self.template)
        self.nested = isinstance(space, gym.spaces.Dict | gym.spaces.Tuple)
        # Each leaf's path joined by "_" (e.g. "image", "sensors_0"); "" for a flat space.
        self.leaf_names = tf.nest.flatten(_names(space, "")) if self.nested else [""]

    # --- nests ------------------------------------------------------------------------
    def flatten(self, obs) -> list:
        """The leaves of an observation nest, in the fixed order."""
        return tf.nest.flatten(obs) if self.nested else [obs]

    def pack(self, leaves):
        """Inverse of `flatten`."""
        return tf.nest.pack_sequence_as(self.template, list(leaves)) if self.nested else leaves[0]

    def map(self, fn, *nests):
        """`fn(leaf_space, *leaves)` for each leaf, packed like the space."""
        flats = [self.flatten(n) for n in nests]
        return self.pack([fn(space, *xs) for space, *xs in zip(self.leaves, *flats)])

    # --- storage ----------------------------------------------------------------------
    def specs(self):
        """A nest of `tf.TensorSpec((None, *shape), dtype)`: the compiled functions' input."""
        return self.pack(
            [tf.TensorSpec((None, *leaf_shape(s)), storage_dtype(s)) for s in self.leaves]
        )

    def empty(self, lead: tuple):
        """Uninitialized storage for `lead` (e.g. `(T, n_envs)`) observations."""
        return self.pack([np.empty((*lead, *leaf_shape(s)), storage_dtype(s)) for s in self.leaves])

    def zeros(self, batch: int):
        """A batch of zero observations (for checking that a model accepts the space)."""
        return self.pack([np.zeros((batch, *leaf_shape(s)), storage_dtype(s)) for s in self.leaves])

    def store(self, buffer, index, obs) -> None:
        """`buffer[index] = obs`, leaf by leaf."""
        for buf, x in zip(self.flatten(buffer), self.flatten(obs)):
            buf[index] = x

    def take(self, obs, index):
        """`obs[index]` for every leaf (NumPy indexing)."""
        return self.pack([x[index] for x in self.flatten(obs)])

    def as_arrays(self, obs):
        """A copy of an observation nest as NumPy arrays of the storage dtypes."""
        return self.map(lambda s, x: np.array(x, dtype=storage_dtype(s)), obs)

    def batch(self, obs):
        """`(batch, single)`: a batch of observations (a single one gets a batch axis).

        Checks what `predict` is given before TensorFlow sees it: the nest's structure
        (a dict with exactly the space's keys, a tuple of its length), each leaf's dtype
        (bool, integer or float; no strings, objects or complex numbers), its shape, a
        non-empty batch and finite float values. The checks are per leaf, not per element.

        Raises:
            ValueError: naming the leaf and what is wrong with it.
        """
        arrays = [
            self._leaf_array(s, x, name)
            for s, x, name in zip(self.leaves, self._flatten_checked(obs), self.leaf_names)
        ]
        shapes = [leaf_shape(s) for s in self.leaves]
        single = all(a.shape == shape for a, shape in zip(arrays, shapes))
        if single:
            arrays = [a[None] for a in arrays]
        for a, shape, name in zip(arrays, shapes, self.leaf_names):
            if a.shape != shape and (a.ndim != len(shape) + 1 or a.shape[1:] != shape):
                where = f" for the leaf {name!r} of" if name else " for"
                raise ValueError(
                    f"Expected observations of shape {shape} (or a batch of them){where} the "
                    f"space {self.space}. Received shape {a.shape}."
                )
        rows = len(arrays[0]) if arrays[0].ndim else -1
        if any(a.ndim != len(shape) + 1 or len(a) != rows for a, shape in zip(arrays, shapes)):
            received = {name: a.shape for a, name in zip(arrays, self.leaf_names)}
            raise ValueError(
                "The observation leaves must all be single observations or batches of one "
                f"size. Received shapes {received} for the space {self.space}."
            )
        if rows == 0:
            raise ValueError(f"Received an empty batch of observations (shape {arrays[0].shape}).")
        for a, name in zip(arrays, self.leaf_names):
            if a.dtype.kind == "f" and not np.isfinite(a).all():
                raise ValueError(
                    f"Observations{_leaf(name)} hold non-finite values (NaN or inf, or too "
                    f"large for float32) at batch rows "
                    f"{np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1)).tolist()}."
                )
        return self.pack(arrays), single

    def _flatten_checked(self, obs) -> list:
        """The leaves of `obs`, checked against the space's structure (ValueError)."""
        if not self.nested:
            if isinstance(obs, Mapping) or obs is None:
                raise ValueError(
                    f"Expected an observation array for the space {self.space}. "
                    f"Received a {type(obs).__name__}."
                )
            return [obs]
        leaves = []

        def walk(template, x, path):
            where = f" at {path!r}" if path else ""
            if isinstance(template, dict):
                if not isinstance(x, Mapping):
                    raise ValueError(
                        f"Expected a dict observation{where} with keys {sorted(template)} for "
                        f"the space {self.space}. Received a {type(x).__name__}."
                    )
                if set(x) != set(template):
                    missing = sorted(set(template) - set(x), key=str)
                    extra = sorted(set(x) - set(template), key=str)
                    raise ValueError(
                        f"The observation dict{where} must have exactly the keys "
                        f"{sorted(template)} of the space. Missing: {missing}; "
                        f"unexpected: {extra}."
                    )
                for k in sorted(template):
                    walk(template[k], x[k], f"{path}_{k}" if path else str(k))
            elif isinstance(template, tuple):
                if not isinstance(x, tuple | list) or len(x) != len(template):
                    raise ValueError(
                        f"Expected a tuple observation{where} of {len(template)} items for the "
                        f"space {self.space}. Received a {type(x).__name__}"
                        + (f" of {len(x)} items." if isinstance(x, tuple | list) else ".")
                    )
                for i, (t, item) in enumerate(zip(template, x)):
                    walk(t, item, f"{path}_{i}" if path else str(i))
            else:
                if isinstance(x, Mapping) or x is None:
                    raise ValueError(
                        f"Expected an array for the observation leaf {path!r} ({template}). "
                        f"Received a {type(x).__name__}."
                    )
                leaves.append(x)

        walk(self.template, obs, "")
        return leaves

    @staticmethod
    def _leaf_array(space, x, name) -> np.ndarray:
        """One leaf as an array of its storage dtype; ValueError for a ragged nest or a
        dtype that is not bool, integer or float."""
        try:
            raw = np.asarray(x)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"Observations{_leaf(name)} cannot be read as an array for the space {space}: {exc}"
            ) from exc
        if raw.dtype.kind not in "biuf":
            raise ValueError(
                f"Observations{_leaf(name)} must be numbers (bool, integer or float) for the "
                f"space {space}. Received an array of dtype {raw.dtype}."
            )
        dtype = storage_dtype(space)
        if dtype == np.uint8 and raw.dtype.kind == "f" and not np.isfinite(raw).all():
            raise ValueError(f"Observations{_leaf(name)} hold non-finite values (NaN or inf).")
        with np.errstate(over="ignore", invalid="ignore"):
            return raw.astype(dtype, copy=False)

    def batch_size(self, obs) -> tf.Tensor:
        """The batch size of an observation nest (graph code)."""
        return tf.shape(self.flatten(obs)[0])[0]

    def all_finite(self, obs) -> bool:
        """Whether every float leaf of an observation nest is finite (the per-step check)."""
        return all(
            np.isfinite(x).all()
            for s, x in zip(self.leaves, self.flatten(obs))
            if storage_dtype(s) != np.uint8
        )

    def non_finite_rows(self, obs) -> np.ndarray:
        """Bool `(batch,)`: rows with a NaN or inf in any float leaf."""
        bad = None
        for s, x in zip(self.leaves, self.flatten(obs)):
            if storage_dtype(s) == np.uint8:
                continue
            x = np.asarray(x, np.float64).reshape(len(x), -1)
            row = ~np.isfinite(x).all(1)
            bad = row if bad is None else bad | row
        return bad if bad is not None else np.zeros(len(self.flatten(obs)[0]), bool)

    # --- network input ----------------------------------------------------------------
    def preprocess(self, obs, normalizers):
        """Stored observation batch -> network input nest (floats; see the module doc).

        Args:
            obs: an observation batch nest.
            normalizers: one `RunningNormalization` (or None) per leaf.
        """
        out = []
        for space, x, norm in zip(self.leaves, self.flatten(obs), normalizers):
            x = tf.convert_to_tensor(x)
            if isinstance(space, gym.spaces.Discrete):
                x = tf.one_hot(tf.cast(x, tf.int32) - int(space.start), int(space.n))
            elif isinstance(space, gym.spaces.MultiDiscrete):
                nvec = space.nvec.reshape(-1)
                start = np.asarray(space.start).reshape(-1)
                flat = tf.reshape(tf.cast(x, tf.int32), [-1, len(nvec)])
                x = tf.concat(
                    [tf.one_hot(flat[:, i] - int(start[i]), int(n)) for i, n in enumerate(nvec)],
                    axis=-1,
                )
            else:
                x = tf.cast(x, tf.float32)
                if is_image(space) and channels_first(space):
                    x = tf.transpose(x, [0, 2, 3, 1])
                if norm is not None:
                    x = norm(x)
            out.append(x)
        return self.pack(out)
