"""The training loop of `Agent.fit`: collect, advantages, update, log, once per epoch."""

import time

import keras
import numpy as np

from keras_trust.agents.progress import EpochReporter
from keras_trust.rollout.batch import training_batch
from keras_trust.rollout.reward_scaling import RewardScaler

# Consecutive updates with a non-finite loss, gradient or KL after which `fit` gives up.
MAX_NONFINITE_UPDATES = 3


def start(agent, sampler, env, seed) -> None:
    """Starts the sampler's envs and makes the agent ready for them.

    A sampler that fixes the env count (Ray: workers x envs per worker) sets `n_envs` of
    an agent left at the default 1; another explicit count that differs is the sampler's
    `ValueError`. Without a seed, a fresh agent draws one (recorded in its weights).
    """
    count = getattr(sampler, "num_envs", None)
    if count is not None and agent.n_envs == 1 and count != 1:
        agent.n_envs = int(count)
    if seed is not None:
        agent.set_seed(seed)
    elif not agent.built:
        agent.set_seed(np.random.SeedSequence().entropy % (2**62))
    spaces = sampler.start(env, agent.n_envs, seed)
    masked = agent.use_action_masks and sampler.action_masks
    agent.prepare(*spaces, seed, masked=masked)


def ensure_ready(agent, observation_space, action_space, seed, masked=False) -> None:
    """Builds a fresh agent for the spaces (seeded init), or checks a built one's spaces."""
    if not agent.built:
        if seed is not None:
            keras.utils.set_random_seed(int(seed))
        agent.build_for(observation_space, action_space, masked)
    else:
        for name, mine, theirs in (
            ("observation", agent.observation_space, observation_space),
            ("action", agent.action_space, action_space),
        ):
            if mine != theirs:
                raise ValueError(
                    f"This agent was built for the {name} space {mine}, but the env has {theirs}."
                )
    if agent.optimizer is None:
        agent.compile()
    agent.build_optimizers()


def train(agent, sampler, total_timesteps, callbacks, verbose):
    """Runs whole epochs of `agent` on `sampler` until `total_timesteps` more env steps.

    Each epoch reads like the algorithm: collect a rollout with the current policy,
    compute its advantages (rewards scaled if the agent normalizes them), run the
    agent's compiled update, then log and call back. Returns the agent's `History`.

    Raises:
        FloatingPointError: after `MAX_NONFINITE_UPDATES` updates in a row were rolled
            back for a non-finite loss, gradient or KL (the weights are the last good).
    """
    steps_per_epoch = agent.n_envs * agent.n_steps
    n_epochs = -(-total_timesteps // steps_per_epoch)
    first_epoch = agent.epochs_trained
    report = EpochReporter(agent, callbacks, verbose, n_epochs, steps_per_epoch)
    scaler = None
    if agent.reward_normalizer is not None:
        scaler = RewardScaler(agent.reward_normalizer, agent.gamma, agent.n_envs)
    agent.stop_training = False
    nonfinite_in_a_row = 0
    report.callbacks.on_train_begin()
    for i in range(n_epochs):
        if agent.stop_training:
            break
        epoch = first_epoch + i
        report.callbacks.on_epoch_begin(epoch)
        # Collect.
        start = time.perf_counter()
        rollout = sampler.collect(agent, agent.n_steps, epoch)
        rollout_time = time.perf_counter() - start
        report.add_episodes(rollout.episode_returns, rollout.episode_lengths)
        # Advantages.
        rewards = rollout.rewards if scaler is None else scaler.scale(rollout)
        batch, explained_variance = training_batch(
            rollout,
            rewards,
            agent.gamma,
            agent.gae_lambda,
            [agent.seed % (2**31), epoch],
            sequences=agent.recurrent,
        )
        # Update.
        report.callbacks.on_train_batch_begin(0)
        start = time.perf_counter()
        logs = {k: float(v) for k, v in agent.update(batch).items()}
        update_time = time.perf_counter() - start
        agent.update_statistics(rollout)
        agent.count_epoch(rollout.num_steps)
        # Log.
        nonfinite_in_a_row = nonfinite_in_a_row + 1 if logs["nonfinite"] else 0
        logs.update(report.episode_logs(len(rollout.episode_returns)))
        logs.update(
            explained_variance=explained_variance,
            fps=rollout.num_steps / (rollout_time + update_time),
            rollout_time=rollout_time,
            update_time=update_time,
            timesteps=float(agent.num_timesteps),
            **sampler.logs(),
        )
        report.end_epoch(i, epoch, logs)
        if nonfinite_in_a_row >= MAX_NONFINITE_UPDATES:
            raise FloatingPointError(
                f"{nonfinite_in_a_row} updates in a row met a non-finite loss, gradient or "
                "KL and were rolled back; the weights are those from before them. Lower the "
                "learning rate or check the environment's scale."
            )
    report.callbacks.on_train_end()
    return agent.history
