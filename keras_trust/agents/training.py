"""The training loop of `Agent.fit`: collect, advantages, update, log, once per epoch."""

import time

import keras
import numpy as np

from keras_trust.agents.progress import EpochReporter
from keras_trust.rollout.batch import training_batch
from keras_trust.rollout.env_state import episode_seed
from keras_trust.rollout.envs import env_key
from keras_trust.rollout.reward_scaling import RewardScaler

# Consecutive updates with a non-finite loss, gradient or KL after which `fit` gives up.
MAX_NONFINITE_UPDATES = 3


def start(agent, sampler, env, seed) -> bool:
    """Starts the sampler's envs and makes the agent ready for them.

    A sampler that fixes the env count (Ray: workers x envs per worker) sets `n_envs` of
    an agent left at the default 1; another explicit count that differs is the sampler's
    `ValueError`. Without a seed, a fresh agent draws one (recorded in its weights).

    The envs continue the episodes in progress of the agent's last epoch (`env_state`,
    saved with the agent) when it was trained on the same env, env count and seed; the
    run then goes on exactly as if it had not stopped. Otherwise they start fresh
    episodes: seeded with the seed itself for a new agent, and with one derived from
    the seed and the epoch count for a trained one (so a resumed run does not repeat
    its first episodes), also when a replay fails. Returns whether the episodes were
    continued.
    """
    count = getattr(sampler, "num_envs", None)
    if count is not None and agent.n_envs == 1 and count != 1:
        agent.n_envs = int(count)
    if seed is not None:
        agent.set_seed(seed)
    elif not agent.built:
        agent.set_seed(np.random.SeedSequence().entropy % (2**62))
    state = continuable_state(agent, env)
    # A trained agent's envs start from a seed of its epoch count, so fresh episodes (no
    # state, or a replay that fails) are not its first ones again; a restore replaces
    # each env's base seed with the saved one.
    env_seed = agent.seed
    if agent.epochs_trained > 0:
        env_seed = episode_seed(agent.seed, agent.epochs_trained)
    spaces = sampler.start(env, agent.n_envs, env_seed)
    masked = agent.use_action_masks and sampler.action_masks
    agent.prepare(*spaces, seed, masked=masked)
    return state is not None and sampler.restore(state)


def continuable_state(agent, env):
    """The agent's `env_state` if it belongs to this env, env count, seed and epoch."""
    state = agent.env_state
    if state is None:
        return None
    expected = {
        "seed": agent.seed,
        "epochs": agent.epochs_trained,
        "n_envs": agent.n_envs,
        "env_key": env_key(env),
    }
    for name, value in expected.items():
        if name not in state or state[name].item() != value:
            return None
    return state


def snapshot(agent, sampler, env, scaler) -> None:
    """Records the envs' episodes in progress as the agent's `env_state` (after an epoch)."""
    state = sampler.state()
    if state is not None:
        state.update(
            seed=np.int64(agent.seed),
            epochs=np.int64(agent.epochs_trained),
            n_envs=np.int64(agent.n_envs),
            env_key=np.str_(env_key(env)),
        )
        if scaler is not None:
            state["reward_returns"] = np.asarray(scaler.returns, np.float64)
    agent.env_state = state


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


def train(agent, sampler, env, total_timesteps, callbacks, verbose, continued=False):
    """Runs whole epochs of `agent` on `sampler` until `total_timesteps` more env steps.

    Each epoch reads like the algorithm: collect a rollout with the current policy,
    compute its advantages (rewards scaled if the agent normalizes them), run the
    agent's compiled update, record the envs' episodes in progress (`snapshot`), then
    log and call back. Returns the agent's `History`. `continued` (from `start`) says
    the episodes of the agent's `env_state` go on, with their discounted returns.

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
        if continued and "reward_returns" in agent.env_state:
            scaler.returns = np.array(agent.env_state["reward_returns"], np.float64)
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
        snapshot(agent, sampler, env, scaler)
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
