"""Exporting a trained policy: TensorFlow SavedModel, TensorFlow Lite and ONNX.

Every format serves the same function, the deterministic action batch for a float32
observation batch (the distribution's mode; Box actions clipped to their bounds; the
Discrete/MultiDiscrete `start` added; observation normalization included). It is built
from plain TensorFlow ops, so no format needs TensorFlow Probability or keras_trust to run.

Example:
>>> from keras_trust.export import export
>>> export(agent, "policy", format="saved_model")        # doctest: +SKIP
>>> export(agent, "policy.tflite", format="tflite")      # doctest: +SKIP
>>> export(agent, "policy.onnx", format="onnx")          # doctest: +SKIP
"""

import os

import keras
import tensorflow as tf

FORMATS = ("saved_model", "tflite", "onnx")
# Other spellings accepted for the formats (`tf_saved_model` is Keras's own name).
_ALIASES = {"tf_saved_model": "saved_model", "savedmodel": "saved_model", "tf_lite": "tflite"}
# Name of the observation input in every format.
INPUT_NAME = "observation"
# Name of the action output in the TFLite and ONNX files.
OUTPUT_NAME = "action"


def export(agent, filepath, format: str = "saved_model") -> None:
    """Writes `agent`'s deterministic policy to `filepath` in `format`.

    Args:
        agent: a built `kt.Agent` (trained or loaded).
        filepath: a directory for `"saved_model"`, a file for `"tflite"` and `"onnx"`.
        format: one of `"saved_model"` (alias `"tf_saved_model"`), `"tflite"`, `"onnx"`.
            Defaults to `"saved_model"`.

    Raises:
        ValueError: for an unknown format, an agent that was never built, or a path that
            cannot be written (not a str/PathLike, empty, a file where a SavedModel
            directory goes or a directory where a file goes, below a file).
        ImportError: for `"onnx"` when `tf2onnx` is not installed (the `export` extra).
    """
    name = _ALIASES.get(str(format).lower(), str(format).lower())
    if name not in FORMATS:
        raise ValueError(
            f"Unsupported export format {format!r}; expected one of {list(FORMATS)}. "
            f"Received: format={format!r}"
        )
    if not getattr(agent, "built", False) or agent.observation_space is None:
        raise ValueError("The agent has not been built yet: call fit(env, ...) first.")
    filepath = _checked_path(filepath, name)
    {"saved_model": export_saved_model, "tflite": export_tflite, "onnx": export_onnx}[name](
        agent, filepath
    )


def _checked_path(filepath, name: str) -> str:
    """`filepath` as a str, checked to be writable as `name`'s output (ValueError)."""
    if not isinstance(filepath, str | os.PathLike) or not isinstance(os.fspath(filepath), str):
        raise ValueError(
            f"The export path must be a str or os.PathLike. Received: {filepath!r} "
            f"(of type {type(filepath).__name__})"
        )
    path = os.fspath(filepath)
    if not path:
        raise ValueError("The export path is empty.")
    if name == "saved_model" and os.path.isfile(path):
        raise ValueError(
            f"Cannot export a SavedModel to {path!r}: it is a file (a SavedModel is a directory)."
        )
    if name != "saved_model" and os.path.isdir(path):
        raise ValueError(f"Cannot export a {name} file to {path!r}: it is a directory.")
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ValueError(f"Cannot export to {path!r}: {parent!r} is not a directory.")
    return path


# Name of the action-mask input of masked agents' SavedModels.
MASK_NAME = "action_mask"


def _observation_spec(agent):
    """The observation input: a named spec, or a nest of them for Dict/Tuple spaces.

    Leaves keep their storage dtypes (images uint8, the rest float32); nested leaves are
    named `observation_<key>` (`observation_<i>` for Tuple positions).
    """
    fmt = agent.observation_format
    specs = fmt.specs()
    if not fmt.nested:
        return tf.TensorSpec(specs.shape, specs.dtype, name=INPUT_NAME)
    leaves = [
        tf.TensorSpec(spec.shape, spec.dtype, name=f"{INPUT_NAME}_{name}")
        for spec, name in zip(tf.nest.flatten(specs), fmt.leaf_names)
    ]
    return fmt.pack(leaves)


def _input_signature(agent):
    """`[observation spec]`, plus the mask spec for agents trained with action masks."""
    signature = [_observation_spec(agent)]
    if agent.masked:
        size = agent.action_distribution.mask_size
        signature.append(tf.TensorSpec((None, size), tf.bool, name=MASK_NAME))
    return signature


def export_saved_model(agent, filepath) -> None:
    """Writes `agent`'s policy as a SavedModel.

    Endpoints (all take a float32 observation batch):
    - `serving_default`: the deterministic action batch (mode; Box actions clipped to
      the bounds), observation normalization included. Plain TF ops only.
    - `value`: the critic's estimate in the env's reward units.
    """
    obs_spec = _observation_spec(agent)
    archive = keras.export.ExportArchive()
    archive.track(agent)
    if agent.recurrent:
        _add_recurrent_endpoints(agent, archive)
        archive.write_out(str(filepath), verbose=False)
        return

    def action(observation, action_mask=None):
        return agent.deterministic_action(observation, action_mask)

    def value(observation):
        v = agent.value_estimate(observation)
        if agent.reward_normalizer is not None:
            v = v * tf.cast(agent.reward_normalizer.std, v.dtype)
        return v

    archive.add_endpoint("serving_default", action, input_signature=_input_signature(agent))
    archive.add_endpoint("value", value, input_signature=[obs_spec])
    archive.write_out(str(filepath), verbose=False)


def _add_recurrent_endpoints(agent, archive) -> None:
    """`step` (= `serving_default`): (observation, [action_mask], state_0, ...) ->
    {"action", "state_0", ...}; the caller carries the state and passes zeros at each
    episode start (`agent.initial_state`)."""
    sizes = agent.policy_torso.state_sizes if hasattr(agent.policy_torso, "state_sizes") else []
    states = [tf.TensorSpec((None, s), tf.float32, name=f"state_{i}") for i, s in enumerate(sizes)]
    signature = [*_input_signature(agent), states]

    def step(observation, *rest):
        *mask, state = rest
        rows = tf.shape(tf.nest.flatten(observation)[0])[0]
        starts = tf.zeros([rows], tf.bool)
        out = agent.acting.deterministic_step(observation, mask[0] if mask else None, state, starts)
        return {OUTPUT_NAME: out[0], **{f"state_{i}": t for i, t in enumerate(out[1:])}}

    archive.add_endpoint("step", step, input_signature=signature)
    archive.add_endpoint("serving_default", step, input_signature=signature)


def _action_function(agent):
    """The deterministic action as a `tf.function` over an observation batch."""

    if agent.masked or agent.observation_format.nested or agent.recurrent:
        raise ValueError(
            "TFLite and ONNX export take one observation tensor: agents with Dict/Tuple "
            "observations, action masks or recurrent policies export as SavedModel "
            "(format='saved_model')."
        )

    @tf.function(input_signature=[_observation_spec(agent)])
    def action(observation):
        return agent.deterministic_action(observation)

    return action


def _frozen_action_function(agent):
    """The action function, `{"action": ...}`, with every variable folded into a constant.

    Freezing lets the converter fold the float64 normalization statistics (the running
    mean/variance) into float32 constants; TFLite has no float64 kernels.
    """
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(_action_function(agent).get_concrete_function())

    # Freezing flattens the outputs; this wrapper names the output again.
    @tf.function(input_signature=[_observation_spec(agent)])
    def action(observation):
        (result,) = frozen(observation)
        return {OUTPUT_NAME: result}

    return action.get_concrete_function()


def export_tflite(agent, filepath) -> None:
    """Writes `agent`'s policy as a TensorFlow Lite flatbuffer (a `.tflite` file).

    The model has one input, `observation` (float32, shape `(batch, *obs_shape)`, the
    batch dimension resizable), and one output, `action`, the deterministic action batch
    (int64 for discrete spaces, float32 for Box). Only TFLite builtin ops are used, so the
    stock interpreter (or LiteRT) runs it:
    `Interpreter(path).get_signature_runner()(observation=obs)["action"]`.
    """
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [_frozen_action_function(agent)], tf.Module()
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    _write_bytes(filepath, converter.convert())


def export_onnx(agent, filepath, opset: int = 17) -> None:
    """Writes `agent`'s policy as an ONNX model, converted by `tf2onnx`.

    The graph has one input, `observation` (float32, shape `(batch, *obs_shape)`), and
    one output, `action`, the deterministic action batch. Run it with
    `onnxruntime.InferenceSession(path).run(["action"], {"observation": obs})`.

    Args:
        agent: a built agent.
        filepath: the `.onnx` file to write.
        opset: the ONNX opset. Defaults to `17`.
    """
    try:
        import tf2onnx
    except ImportError as e:
        raise ImportError(
            "ONNX export needs tf2onnx: pip install 'keras-trust[export]' "
            f"(or pip install tf2onnx onnxruntime). Import failed with: {e}"
        ) from e
    model, _ = tf2onnx.convert.from_function(
        _action_function(agent), input_signature=[_observation_spec(agent)], opset=opset
    )
    _rename_output(model.graph, OUTPUT_NAME)
    _write_bytes(filepath, model.SerializeToString())


def _rename_output(graph, name):
    """Renames the graph's single output (tf2onnx calls it `Identity:0` or similar)."""
    (output,) = graph.output
    old = output.name
    for node in graph.node:
        for i, out in enumerate(node.output):
            if out == old:
                node.output[i] = name
        for i, inp in enumerate(node.input):
            if inp == old:
                node.input[i] = name
    output.name = name


def _write_bytes(filepath, data: bytes) -> None:
    filepath = os.fspath(filepath)
    directory = os.path.dirname(os.path.abspath(filepath))
    os.makedirs(directory, exist_ok=True)
    with open(filepath, "wb") as f:
        f.write(data)
