"""Keras callbacks for agents."""

from keras_trust.callbacks.checkpoint import AgentCheckpoint

__all__ = ["AgentCheckpoint"]
