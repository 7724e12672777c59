"""Rollouts: environments, samplers, storage and advantage estimation."""

from keras_trust.rollout.buffer import Rollout
from keras_trust.rollout.collector import EnvRunner, InProcessSampler, Sampler
from keras_trust.rollout.envs import EnvError, EnvOutputError, make_vector_env
from keras_trust.rollout.gae import compute_gae
from keras_trust.rollout.reward_scaling import RewardScaler

__all__ = [
    "EnvError",
    "EnvOutputError",
    "EnvRunner",
    "InProcessSampler",
    "RewardScaler",
    "Rollout",
    "Sampler",
    "compute_gae",
    "make_vector_env",
]
