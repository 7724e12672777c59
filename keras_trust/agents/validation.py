"""Argument checks of the agents: a `ValueError` that says what was received, at once."""

import keras
import numpy as np


def require(condition, message: str) -> None:
    """Raises `ValueError(message)` unless `condition` holds."""
    if not condition:
        raise ValueError(message)


def require_positive_int(name: str, value) -> None:
    """`value` must be a positive integer (Python or NumPy)."""
    require(
        isinstance(value, int | np.integer) and not isinstance(value, bool) and value >= 1,
        f"{name} must be a positive integer. Received: {name}={value!r}",
    )


def require_built(agent) -> None:
    """An agent must be built (by `fit`, `prepare` or loading) before it is used or saved."""
    require(agent.built, "The agent has not been built yet: call fit(env, ...) first.")


def require_int(name: str, value) -> None:
    """`value` must be an integer (Python or NumPy, not a bool)."""
    require(
        isinstance(value, int | np.integer) and not isinstance(value, bool),
        f"{name} must be an integer. Received: {name}={value!r}",
    )


def check_agent_arguments(
    policy, value, n_envs, n_steps, batch_size, gamma, gae_lambda, hidden_sizes, activation="tanh"
) -> None:
    """The checks of `Agent.__init__`, before anything is built."""
    for name, x in (("n_envs", n_envs), ("n_steps", n_steps), ("batch_size", batch_size)):
        require_positive_int(name, x)
    require(
        batch_size <= n_envs * n_steps,
        f"batch_size={batch_size} is larger than a rollout (n_envs * n_steps = "
        f"{n_envs} * {n_steps} = {n_envs * n_steps}).",
    )
    require(0.0 <= gamma <= 1.0, f"gamma must be in [0, 1]. Received: gamma={gamma}")
    require(
        0.0 <= gae_lambda <= 1.0, f"gae_lambda must be in [0, 1]. Received: gae_lambda={gae_lambda}"
    )
    for name, model in (("policy", policy), ("value", value)):
        require(
            model is None or isinstance(model, keras.layers.Layer),
            f"{name} must be a Keras model (or None). Received: {type(model).__name__}",
        )
    require(
        len(hidden_sizes) >= 1 and all(int(h) >= 1 for h in hidden_sizes),
        f"hidden_sizes must be positive integers. Received: {hidden_sizes}",
    )
    require(
        isinstance(activation, str) and _is_activation(activation),
        f"activation must be the name of a Keras activation, e.g. 'tanh' or 'relu'. "
        f"Received: activation={activation!r}",
    )


def _is_activation(name: str) -> bool:
    try:
        keras.activations.get(name)
    except (ValueError, TypeError):
        return False
    return True
