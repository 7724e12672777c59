"""Exporting a trained policy as a TensorFlow SavedModel that needs only TensorFlow."""

import keras
import tensorflow as tf


def export_saved_model(agent, filepath) -> None:
    """Writes `agent`'s policy as a SavedModel.

    Endpoints (all take a float32 observation batch):
    - `serving_default`: the deterministic action batch (mode; Box actions clipped to
      the bounds), observation normalization included. Plain TF ops only.
    - `value`: the critic's estimate in the env's reward units.
    """
    obs_spec = tf.TensorSpec((None, *agent._obs_shape), tf.float32, name="observation")
    archive = keras.export.ExportArchive()
    archive.track(agent)

    def action(observation):
        return agent._deterministic_action(observation)

    def value(observation):
        v = agent.value_estimate(observation)
        if agent.reward_normalizer is not None:
            v = v * tf.cast(agent.reward_normalizer.std, v.dtype)
        return v

    archive.add_endpoint("serving_default", action, input_signature=[obs_spec])
    archive.add_endpoint("value", value, input_signature=[obs_spec])
    archive.write_out(str(filepath), verbose=False)
