"""`ActionDistribution`: everything about one kind of action distribution, in one object.

An agent holds one of these for its action space and never asks which kind it is. The
object owns the Keras head layer (features -> parameter tensors), builds the TFP
distribution from those tensors (closed-form KL by `tfp.distributions.kl_divergence`),
and writes once, in TensorFlow, what differs between kinds: the shape and law of the
sampling noise, the sample made from that noise, the mode, and the mapping from the
network's action to what the env receives. The shape follows Stable-Baselines3's
`common/distributions.py`; TFP gives the math.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp


class ActionDistribution:
    """Base class: one subclass per kind of action distribution.

    Subclasses set `name` (the kind's string, e.g. `"categorical"`), implement
    `supports(space)`, `make_head(**options)`, `distribution(params)`,
    `noise_shape`, `noise(rng, size)`, `sample(params, noise)` and `mode(params)`, and
    may override `env_action(action)` (the default passes the action through).

    Args:
        space: the gymnasium action space.
        **options: kind-specific options (unknown ones are ignored, so an agent can
            pass its options to whichever kind its space selects).
    """

    name = None

    def __init__(self, space, **options):
        self.space = space
        self.options = options

    # --- what each kind defines ------------------------------------------------------
    @classmethod
    def supports(cls, space) -> bool:
        """Whether this kind serves `space`; raise `ValueError` for a near miss."""
        raise NotImplementedError

    def make_head(self, **kwargs):
        """A new Keras layer mapping a feature batch to this kind's parameter list."""
        raise NotImplementedError

    def distribution(self, params):
        """The TFP distribution of a batch of parameters; one event per batch row."""
        raise NotImplementedError

    @property
    def noise_shape(self) -> tuple:
        """Shape of one row of sampling noise (per env and step)."""
        raise NotImplementedError

    def noise(self, rng: np.random.Generator, size: tuple) -> np.ndarray:
        """Sampling noise of shape `(*size, *noise_shape)` from a NumPy generator."""
        raise NotImplementedError

    def rollout_noise(self, rng: np.random.Generator, n_steps: int) -> np.ndarray:
        """One env's noise for a rollout, `(n_steps, *noise_shape)`; independent rows here.

        Kinds whose noise persists over steps (gSDE's exploration matrix) override it.
        """
        return self.noise(rng, (n_steps,))

    def sample(self, params, noise):
        """A sample per row made deterministically from `noise` (plain TF ops)."""
        raise NotImplementedError

    def mode(self, params):
        """The most likely action per row (plain TF ops, so exporters accept it)."""
        raise NotImplementedError

    # --- shared, overridable ----------------------------------------------------------
    def log_prob(self, params, actions):
        """Log-probability `(B,)` of `actions` under `params`."""
        return self.distribution(params).log_prob(actions)

    def entropy(self, params):
        """Entropy `(B,)` of each row's distribution."""
        return self.distribution(params).entropy()

    def kl(self, p_params, q_params):
        """KL(P || Q) per row, in closed form."""
        return tfp.distributions.kl_divergence(
            self.distribution(p_params), self.distribution(q_params)
        )

    def env_action(self, action):
        """The network's action batch -> the env's action batch (TF). Identity here."""
        return action

    # Kinds that accept action masks set `mask_size` (a mask row's length) and
    # override `apply_mask(params, mask)`; `None` means masks are not supported.
    mask_size = None

    def apply_mask(self, params, mask):
        """Parameters under a boolean action mask `(B, mask_size)`."""
        raise ValueError(f"{type(self).__name__} actions cannot be masked.")

    @property
    def env_dtype(self):
        """The NumPy dtype the env's `step` expects (the space's dtype)."""
        return np.dtype(self.space.dtype)

    def __repr__(self):
        return f"{type(self).__name__}({self.space})"


def float32_constant(array) -> tf.Tensor:
    """A float32 constant of `array` (bounds and offsets baked into graphs)."""
    return tf.constant(np.asarray(array, dtype=np.float32))


def orthogonal(gain: float):
    """Orthogonal initializer of the heads (small gains start near-uniform / near-zero)."""
    return keras.initializers.Orthogonal(gain=gain)


def discrete_offset(space):
    """The `start` of a Discrete/MultiDiscrete space, or None when it is all zeros."""
    start = np.asarray(getattr(space, "start", 0))
    return None if np.all(start == 0) else start
