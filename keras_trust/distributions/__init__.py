"""Action distributions: one class per kind, chosen from the gymnasium action space.

| action space    | class              | name                  | params                          |
|-----------------|--------------------|-----------------------|---------------------------------|
| `Discrete(n)`   | `Categorical`      | `"categorical"`       | `[logits (B, n)]`               |
| `MultiDiscrete` | `MultiCategorical` | `"multi_categorical"` | `[logits (B, k, max_n)]`, padded |
| `Box` (1-D)     | `DiagGaussian`     | `"diag_gaussian"`     | `[mean (B, d), log_std (B, d)]` |

Heads are Keras layers that output parameter tensors, never distribution objects; the
distribution object builds the TFP distribution from them. A new action space is one
new `ActionDistribution` subclass in its own file, added to `DISTRIBUTIONS`.

Example:
>>> import gymnasium as gym
>>> dist = for_space(gym.spaces.Discrete(4))
>>> round(float(dist.entropy([tf.zeros([1, 4])])[0]), 4)  # log(4)
1.3863
"""

import tensorflow as tf

from keras_trust.distributions.base import ActionDistribution
from keras_trust.distributions.categorical import Categorical, CategoricalHead
from keras_trust.distributions.diag_gaussian import DiagGaussian, DiagGaussianHead
from keras_trust.distributions.multi_categorical import MultiCategorical, MultiCategoricalHead

# Tried in order by `for_space`.
DISTRIBUTIONS = (Categorical, MultiCategorical, DiagGaussian)
KINDS = tuple(cls.name for cls in DISTRIBUTIONS)
_BY_NAME = {cls.name: cls for cls in DISTRIBUTIONS}


def for_space(space, **options) -> ActionDistribution:
    """The action distribution for a gymnasium action space.

    Args:
        space: the action space.
        **options: kind-specific options (e.g. `log_std_init` for Gaussians).

    Raises:
        ValueError: naming the space when no distribution supports it.
    """
    for cls in DISTRIBUTIONS:
        if cls.supports(space):
            return cls(space, **options)
    raise ValueError(
        f"Unsupported action space {type(space).__name__} ({space}): keras_trust supports "
        "Discrete, MultiDiscrete and 1-D Box action spaces."
    )


def distribution_kind(space) -> str:
    """The name of the distribution used for `space` (`ValueError` if unsupported)."""
    return for_space(space).name


def head_for_space(space, **kwargs):
    """The distribution head layer for a gymnasium action space.

    Example:
    >>> import gymnasium as gym
    >>> type(head_for_space(gym.spaces.Discrete(2))).__name__
    'CategoricalHead'
    """
    return for_space(space).make_head(**kwargs)


def by_name(kind: str) -> ActionDistribution:
    """A space-free instance of the kind named `kind`: its math, without env mapping."""
    cls = _BY_NAME.get(kind)
    if cls is None:
        raise ValueError(f"Unknown distribution kind {kind!r}; expected one of {KINDS}.")
    return cls(None)


def make_distribution(kind: str, params):
    """The TFP distribution of kind `kind` (a name in `KINDS`) from its parameter tensors.

    For callers that hold parameters but no action space (e.g. `KLPenalty`); agents use
    their `ActionDistribution` object instead.
    """
    return by_name(kind).distribution(list(params))


def kl_divergence(kind: str, p_params, q_params) -> tf.Tensor:
    """Closed-form KL(P || Q) per batch row, P and Q given by their parameters."""
    return by_name(kind).kl(list(p_params), list(q_params))


def deterministic_action(kind: str, params) -> tf.Tensor:
    """The mode of the distribution (plain TF ops)."""
    return by_name(kind).mode(list(params))


def infer_kind(params) -> str:
    """Guesses the kind from the parameter list: 2 tensors -> Gaussian, rank 3 -> multi."""
    params = list(params)
    if len(params) == 2:
        return "diag_gaussian"
    if len(params) == 1:
        return "multi_categorical" if params[0].shape.rank == 3 else "categorical"
    raise ValueError(f"Cannot infer a distribution from {len(params)} parameter tensors.")


__all__ = [
    "KINDS",
    "ActionDistribution",
    "Categorical",
    "CategoricalHead",
    "DiagGaussian",
    "DiagGaussianHead",
    "MultiCategorical",
    "MultiCategoricalHead",
    "by_name",
    "distribution_kind",
    "for_space",
    "head_for_space",
    "infer_kind",
    "kl_divergence",
    "make_distribution",
]
