"""Keras callbacks for agents: checkpoints, evaluation with the best model, CSV metrics."""

from keras_trust.callbacks.checkpoint import AgentCheckpoint
from keras_trust.callbacks.evaluation import EVAL_KEYS, EvalCallback, EvalResult
from keras_trust.callbacks.metrics import MetricsLogger

__all__ = ["EVAL_KEYS", "AgentCheckpoint", "EvalCallback", "EvalResult", "MetricsLogger"]
