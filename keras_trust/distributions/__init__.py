"""Action distributions: one class per kind, chosen from the gymnasium action space.

| action space    | class              | name                  | params                          |
|-----------------|--------------------|-----------------------|---------------------------------|
| `Discrete(n)`   | `Categorical`      | `"categorical"`       | `[logits (B, n)]`               |
| `MultiDiscrete` | `MultiCategorical` | `"multi_categorical"` | `[logits (B, k, max_n)]`, padded |
| `MultiBinary`   | `Bernoulli`        | `"bernoulli"`         | `[logits (B, n)]`               |
| `Box`           | `DiagGaussian`     | `"diag_gaussian"`     | `[mean (B, d), log_std (B, d)]` |
| `Box` (bounded) | `SquashedDiagGaussian` | `"squashed_gaussian"` | `[mean, log_std]` (pre-tanh) |
| `Box` (gSDE)    | `StateDependentGaussian` | `"gsde"`  | `[mean, log_std, features]`     |

`Categorical` and `MultiCategorical` accept action masks (`apply_mask`).

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
from keras_trust.distributions.bernoulli import Bernoulli, BernoulliHead
from keras_trust.distributions.categorical import Categorical, CategoricalHead
from keras_trust.distributions.diag_gaussian import DiagGaussian, DiagGaussianHead
from keras_trust.distributions.multi_categorical import MultiCategorical, MultiCategoricalHead
from keras_trust.distributions.squashed_gaussian import SquashedDiagGaussian
from keras_trust.distributions.state_dependent_gaussian import (
    StateDependentGaussian,
    StateDependentGaussianHead,
)

# The default for each space, tried in order by `for_space`.
DEFAULTS = (Categorical, MultiCategorical, Bernoulli, DiagGaussian)
# Every kind, selectable by name with `for_space(space, action_distribution=name)`.
DISTRIBUTIONS = (*DEFAULTS, SquashedDiagGaussian, StateDependentGaussian)
KINDS = tuple(cls.name for cls in DISTRIBUTIONS)
_BY_NAME = {cls.name: cls for cls in DISTRIBUTIONS}


def for_space(space, action_distribution=None, **options) -> ActionDistribution:
    """The action distribution for a gymnasium action space.

    Args:
        space: the action space.
        action_distribution: a kind's name (e.g. `"squashed_gaussian"`) instead of the
            space's default. Defaults to `None`.
        **options: kind-specific options (e.g. `log_std_init` for Gaussians).

    Raises:
        ValueError: naming the space when no distribution supports it.
    """
    if action_distribution is not None:
        cls = _BY_NAME.get(action_distribution)
        if cls is None:
            raise ValueError(
                f"Unknown action_distribution {action_distribution!r}; expected one of "
                f"{KINDS}. Received: action_distribution={action_distribution!r}"
            )
        if not cls.supports(space):
            raise ValueError(
                f"action_distribution={action_distribution!r} does not support the action "
                f"space {space}."
            )
        return cls(space, **options)
    for cls in DEFAULTS:
        if cls.supports(space):
            return cls(space, **options)
    raise ValueError(
        f"Unsupported action space {type(space).__name__} ({space}): keras_trust supports "
        "Discrete, MultiDiscrete, MultiBinary and float Box action spaces. Flatten a "
        "Dict/Tuple action space into one of these with an action wrapper."
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
    """Guesses the kind from the parameter list: 2 tensors -> Gaussian, 3 -> gSDE, rank 3 -> multi.

    Ambiguous for Bernoulli logits (rank 2, like categorical ones): pass the kind.
    """
    params = list(params)
    if len(params) == 2:
        return "diag_gaussian"
    if len(params) == 3:
        return "gsde"
    if len(params) == 1:
        return "multi_categorical" if params[0].shape.rank == 3 else "categorical"
    raise ValueError(f"Cannot infer a distribution from {len(params)} parameter tensors.")


__all__ = [
    "KINDS",
    "ActionDistribution",
    "Bernoulli",
    "BernoulliHead",
    "Categorical",
    "CategoricalHead",
    "DiagGaussian",
    "DiagGaussianHead",
    "MultiCategorical",
    "MultiCategoricalHead",
    "SquashedDiagGaussian",
    "StateDependentGaussian",
    "StateDependentGaussianHead",
    "by_name",
    "distribution_kind",
    "for_space",
    "head_for_space",
    "infer_kind",
    "kl_divergence",
    "make_distribution",
]
