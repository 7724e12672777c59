"""The predictive distribution behind a Keras loss, and the KL that defines its Fisher.

A loss that is the negative log-likelihood of a distribution over the targets, whose
parameters are the model's outputs, has a Fisher matrix `J^T H J`: the generalized
Gauss-Newton matrix of the loss (Martens, 2020, "New insights and perspectives on the
natural gradient method", Sec. 9). Its curvature-vector products are the Hessian-vector
products of `KL(p_old || p_theta)` at `theta_old`, which is what `NaturalGradient` and
`TrustRegion` take as `kl_fn`. Three losses have such a distribution:

| loss | distribution | KL per output element |
|---|---|---|
| (sparse) categorical cross-entropy | Categorical | `sum_k p_old,k log(p_old,k / p_k)` |
| binary cross-entropy | Bernoulli | `p_old log(p_old/p) + (1-p_old) log((1-p_old)/(1-p))` |
| mean squared error | Gaussian, unit variance | `1/2 (mu_old - mu)^2` |

Categorical and Bernoulli outputs are logits (`from_logits=True`) or probabilities.
The KL of one example sums over its output elements (independent components). Keras
losses average over the last axis instead (MSE is `mean((y - mu)^2)`, whose Hessian is
`2/d I`): for one output that is a constant factor, which a `max_kl` step length absorbs.
Probabilities are normalized and clipped to `[epsilon, 1 - epsilon]` as Keras's
cross-entropies do. Any other loss (MAE, hinge, Huber, focal, a custom function) has no
such distribution here and is a `ValueError` naming it.
"""

import functools
from collections.abc import Callable
from typing import NamedTuple

import keras
import tensorflow as tf


def categorical_kl(old, new, from_logits=True, axis=-1) -> tf.Tensor:
    """KL(Categorical(old) || Categorical(new)) along `axis`.

    Example:
    >>> float(categorical_kl(tf.constant([0.0, 0.0]), tf.constant([0.0, 0.0])))
    0.0
    """
    if from_logits:
        log_old = tf.nn.log_softmax(old, axis=axis)
        log_new = tf.nn.log_softmax(new, axis=axis)
    else:
        log_old = tf.math.log(_normalized(old, axis))
        log_new = tf.math.log(_normalized(new, axis))
    return tf.reduce_sum(tf.exp(log_old) * (log_old - log_new), axis=axis)


def bernoulli_kl(old, new, from_logits=True) -> tf.Tensor:
    """Elementwise KL(Bernoulli(old) || Bernoulli(new)).

    Example:
    >>> round(float(bernoulli_kl(tf.constant(0.0), tf.constant(0.0))), 6)
    0.0
    """
    if from_logits:
        log_p_old, log_q_old = tf.math.log_sigmoid(old), tf.math.log_sigmoid(-old)
        log_p_new, log_q_new = tf.math.log_sigmoid(new), tf.math.log_sigmoid(-new)
    else:
        old, new = _clipped(old), _clipped(new)
        log_p_old, log_q_old = tf.math.log(old), tf.math.log(1.0 - old)
        log_p_new, log_q_new = tf.math.log(new), tf.math.log(1.0 - new)
    return tf.exp(log_p_old) * (log_p_old - log_p_new) + tf.exp(log_q_old) * (log_q_old - log_q_new)


def unit_gaussian_kl(old, new) -> tf.Tensor:
    """Elementwise KL(N(old, 1) || N(new, 1)) = 1/2 (old - new)^2.

    Example:
    >>> float(unit_gaussian_kl(tf.constant(1.0), tf.constant(3.0)))
    2.0
    """
    return 0.5 * tf.square(old - new)


def crossentropy_kl(old, new) -> tf.Tensor:
    """KL for Keras's `"crossentropy"`/`"ce"` shortcut: Bernoulli if one unit, else Categorical.

    Keras resolves the shortcut to binary cross-entropy when the output has one unit and
    to (sparse) categorical cross-entropy otherwise, both from probabilities.
    """
    if new.shape[-1] == 1:
        return bernoulli_kl(old, new, from_logits=False)
    return categorical_kl(old, new, from_logits=False)


def _normalized(p, axis):
    p = p / tf.reduce_sum(p, axis=axis, keepdims=True)
    return _clipped(p)


def _clipped(p):
    eps = keras.config.epsilon()
    return tf.clip_by_value(p, eps, 1.0 - eps)


def predictive_kl(loss: str | keras.losses.Loss | Callable) -> Callable:
    """The elementwise KL of the predictive distribution behind a Keras loss.

    Args:
        loss: a loss as `compile(loss=...)` takes it for one output: a name
            (`"sparse_categorical_crossentropy"`, `"mse"`, ...), a `keras.losses.Loss`
            instance, a `keras.losses` function, or a `functools.partial` of one.

    Returns:
        `kl(old, new)`: the KL from the distribution whose parameters are the outputs
        `old` to the one of `new`, per element (the class axis of a Categorical summed).

    Raises:
        ValueError: the loss has no predictive distribution (e.g. `"mae"`, `"hinge"`,
            a custom function); the message names it.

    Example:
    >>> kl = predictive_kl(keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    >>> kl(tf.constant([[0.0, 0.0]]), tf.constant([[0.0, 0.0]])).shape
    TensorShape([1])
    >>> predictive_kl("mae")
    Traceback (most recent call last):
    ...
    ValueError: Loss 'mae' is not the negative log-likelihood ...
    """
    if isinstance(loss, str) and loss.lower() in ("crossentropy", "ce"):
        return crossentropy_kl
    resolved = _resolve(loss)
    if isinstance(resolved, keras.losses.Loss):
        kind = _LOSS_CLASSES.get(type(resolved))
        options = resolved.get_config()
    elif isinstance(resolved, functools.partial):
        kind = _LOSS_FUNCTIONS.get(resolved.func)
        options = resolved.keywords
    else:
        kind = _LOSS_FUNCTIONS.get(resolved)
        options = {}
    if kind is None:
        raise ValueError(
            f"Loss {_name(loss)!r} is not the negative log-likelihood of a predictive "
            "distribution, so it defines no Fisher metric for NaturalGradient or "
            "TrustRegion. Use (sparse) categorical cross-entropy (Categorical), binary "
            "cross-entropy (Bernoulli) or mean squared error (unit-variance Gaussian), or "
            "another optimizer for this loss."
        )
    from_logits = bool(options.get("from_logits", False))
    if kind == "categorical":
        return functools.partial(
            categorical_kl, from_logits=from_logits, axis=options.get("axis", -1)
        )
    if kind == "bernoulli":
        return functools.partial(bernoulli_kl, from_logits=from_logits)
    return unit_gaussian_kl


def _resolve(loss):
    if isinstance(loss, str | dict):
        try:
            return keras.losses.get(loss)
        except ValueError:
            return None
    return loss


def _name(loss) -> str:
    if isinstance(loss, str):
        return loss
    if isinstance(loss, keras.losses.Loss):
        return type(loss).__name__  # what the user wrote, e.g. Huber
    if isinstance(loss, functools.partial):
        loss = loss.func
    return getattr(loss, "name", None) or getattr(loss, "__name__", None) or repr(loss)


_LOSS_CLASSES = {
    keras.losses.SparseCategoricalCrossentropy: "categorical",
    keras.losses.CategoricalCrossentropy: "categorical",
    keras.losses.BinaryCrossentropy: "bernoulli",
    keras.losses.MeanSquaredError: "gaussian",
}
_LOSS_FUNCTIONS = {
    keras.losses.sparse_categorical_crossentropy: "categorical",
    keras.losses.categorical_crossentropy: "categorical",
    keras.losses.binary_crossentropy: "bernoulli",
    keras.losses.mean_squared_error: "gaussian",
}


class OutputKL(NamedTuple):
    """The KL term of one model output.

    Attributes:
        index: position of the output in `tf.nest.flatten(y_pred)`.
        kl: elementwise KL, from `predictive_kl`.
        weight: the output's loss weight (1 unless `compile(loss_weights=...)` sets one).
    """

    index: int
    kl: Callable
    weight: float


def output_kls(loss, loss_weights, y_pred, output_names=None) -> list[OutputKL]:
    """One `OutputKL` per model output that has a loss, matched as `compile` matches them.

    A single loss applies to every output; a list has one entry per output (in
    `tf.nest.flatten` order); a dict is keyed by the output names (the keys of a dict
    output, else the model's `output_names`). `loss_weights` follows the same rules.

    Raises:
        ValueError: `loss` or `loss_weights` does not fit the outputs, or some loss has
            no predictive distribution.
    """
    losses = per_output(loss, y_pred, output_names, "loss")
    weights = per_output(loss_weights, y_pred, output_names, "loss_weights")
    return [
        OutputKL(i, predictive_kl(one), 1.0 if weight is None else float(weight))
        for i, (one, weight) in enumerate(zip(losses, weights))
        if one is not None
    ]


def per_output(value, y_pred, output_names, what: str) -> list:
    """`value` (one, a list, or a dict keyed by output name) as one entry per flat output."""
    count = len(tf.nest.flatten(y_pred))
    if value is None:
        return [None] * count
    if isinstance(value, dict):
        names = sorted(y_pred) if isinstance(y_pred, dict) else list(output_names or [])
        unknown = sorted(set(value) - set(names))
        if len(names) != count or unknown:
            raise ValueError(
                f"The keys of {what} must be the model's output names {names}. "
                f"Received: {what} keys {sorted(value)}"
            )
        return [value.get(name) for name in names]
    if isinstance(value, list | tuple):
        if len(value) != count:
            raise ValueError(
                f"{what} has {len(value)} entries for a model with {count} outputs. "
                f"Received: {what}={value}"
            )
        return list(value)
    return [value] * count


def mean_kl(terms, old, new, sample_weight=None, output_names=None) -> tf.Tensor:
    """Sum over outputs of `weight *` the sample-weighted mean over the batch of the KL.

    Each example's KL sums its output's elements. With `sample_weight` (per example,
    shape `(batch,)` or `(batch, 1)`; one per output as a list or dict) the mean is
    `sum_i w_i KL_i / sum_i w_i`.

    Args:
        terms: from `output_kls`.
        old: outputs at the start of the step (held fixed), structured like `new`.
        new: outputs at the current variables.
        sample_weight: optional per-example weights.
        output_names: the model's output names, for a dict of sample weights.

    Returns:
        A scalar tensor, 0 where `new` equals `old`.
    """
    flat_old, flat_new = tf.nest.flatten(old), tf.nest.flatten(new)
    weights = per_output(sample_weight, new, output_names, "sample_weight")
    total = 0.0
    for term in terms:
        kl = term.kl(flat_old[term.index], flat_new[term.index])
        per_example = tf.reduce_sum(kl, axis=list(range(1, kl.shape.rank)))
        total += term.weight * _weighted_mean(per_example, weights[term.index])
    return total


def _weighted_mean(values, weight):
    if weight is None:
        return tf.reduce_mean(values)
    weight = tf.cast(weight, values.dtype)
    if weight.shape.rank > 1 and weight.shape[1:].num_elements() != 1:
        raise ValueError(
            "The KL of NaturalGradient/TrustRegion takes one sample weight per example, "
            f"shape (batch,) or (batch, 1). Received: sample_weight shape {weight.shape}"
        )
    weight = tf.reshape(weight, [-1])
    return tf.math.divide_no_nan(tf.reduce_sum(weight * values), tf.reduce_sum(weight))
