"""Agents: the shared Keras-style loop and the PPO / TRPO updates."""

from keras_trust.agents.agent import Agent
from keras_trust.agents.ppo import PPO
from keras_trust.agents.saving import load_agent
from keras_trust.agents.trpo import TRPO

__all__ = ["PPO", "TRPO", "Agent", "load_agent"]
