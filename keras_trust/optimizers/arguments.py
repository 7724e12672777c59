"""Keras optimizer arguments that the curvature optimizers cannot honour.

`keras.optimizers.Optimizer` accepts gradient clipping, weight decay, an EMA of the
weights, gradient accumulation and loss scaling, and applies them all in `apply()`. The
curvature optimizers never go through `apply()`: `minimize(loss_fn, var_list, kl_fn)`
computes its own step from the loss and the Fisher metric. Accepted silently, such
arguments would do nothing, so they are refused at construction, as is a
`learning_rate` that `max_kl` makes unused.
"""

# Each argument with the value that means "off" (Keras's default) and the way out.
UNSUPPORTED = {
    "weight_decay": (None, "add an L2 `kernel_regularizer` to the model: it enters the loss"),
    "clipnorm": (None, "the step length comes from `max_kl` or `learning_rate`"),
    "clipvalue": (None, "the step length comes from `max_kl` or `learning_rate`"),
    "global_clipnorm": (None, "the step length comes from `max_kl` or `learning_rate`"),
    "use_ema": (False, "keep a copy of the weights in a callback instead"),
    "ema_momentum": (0.99, "it is only read with `use_ema`, which is not supported"),
    "ema_overwrite_frequency": (None, "it is only read with `use_ema`, which is not supported"),
    "gradient_accumulation_steps": (None, "use larger batches: each step needs the whole batch"),
    "loss_scale_factor": (None, "the step is solved in the variables' own precision"),
}


def check_optimizer_arguments(optimizer: str, kwargs: dict) -> None:
    """Raises `ValueError` for Keras optimizer arguments `minimize` would ignore.

    Each argument of `UNSUPPORTED` is accepted at its "off" value (what
    `keras.optimizers.Optimizer.get_config()` writes for it), so configs written by
    `get_config` load back.

    Args:
        optimizer: class name, for the message.
        kwargs: the keyword arguments bound for `keras.optimizers.Optimizer.__init__`.

    Example:
    >>> check_optimizer_arguments("TrustRegion", {"clipnorm": None, "name": "tr"})
    >>> check_optimizer_arguments("TrustRegion", {"clipnorm": 1.0})
    Traceback (most recent call last):
    ...
    ValueError: TrustRegion does not support clipnorm ...
    """
    for name, (off, way_out) in UNSUPPORTED.items():
        if name in kwargs and kwargs[name] != off:
            raise ValueError(
                f"{optimizer} does not support {name} (Keras applies it in `apply()`, "
                f"which {optimizer}'s `minimize` never calls); {way_out}. "
                f"Received: {name}={kwargs[name]!r}"
            )


def check_learning_rate_used(optimizer: str, max_kl, learning_rate) -> None:
    """Raises `ValueError` for an explicit `learning_rate` that `max_kl` overrides.

    With `max_kl` the step length is chosen so the quadratic KL of the step equals
    `max_kl`; a learning rate given as well would be ignored without a word.

    Example:
    >>> check_learning_rate_used("NaturalGradient", None, 0.1)
    >>> check_learning_rate_used("NaturalGradient", 0.01, 0.1)
    Traceback (most recent call last):
    ...
    ValueError: NaturalGradient takes its step length from max_kl ...
    """
    if max_kl is not None and learning_rate is not None:
        raise ValueError(
            f"{optimizer} takes its step length from max_kl, so learning_rate would be "
            f"unused: pass one of them. Received: max_kl={max_kl}, "
            f"learning_rate={learning_rate}"
        )


def drop_unused_learning_rate(config: dict) -> dict:
    """A copy of an optimizer config without `learning_rate` when it has `max_kl`.

    Configs written before `get_config` dropped the unused learning rate (e.g. in
    agents saved to `.keras` files) still carry one; `from_config` ignores it.

    Example:
    >>> drop_unused_learning_rate({"max_kl": 0.01, "learning_rate": 1.0})
    {'max_kl': 0.01}
    >>> drop_unused_learning_rate({"max_kl": None, "learning_rate": 0.1})
    {'max_kl': None, 'learning_rate': 0.1}
    """
    if config.get("max_kl") is None:
        return dict(config)
    return {k: v for k, v in config.items() if k != "learning_rate"}
