"""Learning-rate schedules over a run, and rl-zoo's `lin_<value>` notation for them.

rl-baselines3-zoo writes a learning rate that decays linearly to 0 over the run as
`lin_3e-4`. In a preset or config the same string becomes a `LinearSchedule` from `3e-4`
to `0` over the optimizer steps the run will take (`schedule_from_spec`), which Keras
calls with the optimizer's step counter, so it is saved inside the agent's `.keras`
file with the optimizer and a resumed run continues along the same line.

Example:
>>> schedule = LinearSchedule(3e-4, decay_steps=1000)
>>> round(float(schedule(500)), 8)
0.00015
>>> float(schedule_from_spec("lin_3e-4", total_steps=1000)(1000))
0.0
"""

import re

import keras
from keras import ops

# `lin_<float>`, as rl-baselines3-zoo's hyperparameter files write it.
LINEAR_PATTERN = re.compile(r"^lin_(?P<value>[-+0-9.eE]+)$")


@keras.saving.register_keras_serializable(package="keras_trust")
class LinearSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """From `initial_learning_rate` to `final_learning_rate` linearly over `decay_steps`.

    `lr(step) = initial + min(step / decay_steps, 1) * (final - initial)`: after
    `decay_steps` optimizer steps it stays at `final_learning_rate`. Stable-Baselines3
    lowers its rate once per rollout, by the fraction of env steps done; this one lowers
    it every optimizer step, reaching the same end point.

    Args:
        initial_learning_rate: the rate at step 0.
        decay_steps: optimizer steps until `final_learning_rate` (a positive integer).
        final_learning_rate: the rate from `decay_steps` on. Defaults to `0.0`.

    Example:
    >>> optimizer = keras.optimizers.Adam(LinearSchedule(1e-3, decay_steps=10_000))
    """

    def __init__(self, initial_learning_rate, decay_steps, final_learning_rate=0.0):
        if not isinstance(decay_steps, int) or isinstance(decay_steps, bool) or decay_steps < 1:
            raise ValueError(
                f"decay_steps must be a positive integer. Received: decay_steps={decay_steps!r}"
            )
        if initial_learning_rate < 0 or final_learning_rate < 0:
            raise ValueError(
                "Learning rates must be >= 0. Received: "
                f"initial_learning_rate={initial_learning_rate}, "
                f"final_learning_rate={final_learning_rate}"
            )
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.final_learning_rate = float(final_learning_rate)

    def __call__(self, step):
        fraction = ops.minimum(ops.cast(step, "float32") / float(self.decay_steps), 1.0)
        return self.initial_learning_rate + fraction * (
            self.final_learning_rate - self.initial_learning_rate
        )

    def get_config(self):
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "final_learning_rate": self.final_learning_rate,
        }


def is_schedule(value) -> bool:
    """Whether a hyperparameter is a schedule (a function of the optimizer's step)."""
    return isinstance(value, keras.optimizers.schedules.LearningRateSchedule)


def serialize_schedule(value):
    """A schedule as `get_config` writes it (a dict); anything else unchanged."""
    return keras.saving.serialize_keras_object(value) if is_schedule(value) else value


def is_schedule_spec(value) -> bool:
    """Whether `value` is a schedule string such as `"lin_3e-4"`."""
    return isinstance(value, str) and LINEAR_PATTERN.match(value) is not None


def schedule_from_spec(value, total_steps: int):
    """`"lin_<x>"` -> `LinearSchedule(x, total_steps)`; a number is returned unchanged.

    Args:
        value: a number or a `"lin_<x>"` string.
        total_steps: the optimizer steps of the whole run (the schedule's length).

    Raises:
        ValueError: a string that is not a schedule, or a negative rate.
    """
    if not isinstance(value, str):
        return value
    match = LINEAR_PATTERN.match(value)
    if match is None:
        raise ValueError(
            f"Unknown schedule {value!r}: write a number or 'lin_<initial value>' "
            "(linear decay to 0 over the run, as in rl-baselines3-zoo), e.g. 'lin_3e-4'."
        )
    try:
        initial = float(match.group("value"))
    except ValueError as e:
        raise ValueError(f"Unknown schedule {value!r}: {e}") from e
    return LinearSchedule(initial, decay_steps=max(int(total_steps), 1))
