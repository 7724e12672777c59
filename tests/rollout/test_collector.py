"""The in-process sampler: what a Rollout holds for envs whose every step is known.

The envs here are defined so that the expected rollout can be written down from their
definition alone (gymnasium 1.x NEXT_STEP autoreset: after an episode ends, the next
vector step is a reset step that ignores the action, returns reward 0 and the first
observation of the new episode; the observation that reset step was taken in is the
final observation of the ended episode).
"""

import itertools

import gymnasium as gym
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout import EnvError, InProcessSampler
from keras_trust.rollout.collector import EnvRunner


class CounterEnv(gym.Env):
    """Observation = steps taken in this episode; reward of the k-th step = k.

    With `length`, the episode terminates at step `length`; without, it never ends by
    itself (wrap it in `TimeLimit` to truncate it). Records the actions it receives.
    """

    observation_space = gym.spaces.Box(0.0, 1000.0, (1,), np.float32)

    def __init__(self, length=None, action_space=None, nan_reward_at=None, raise_at=None):
        self.length = length
        self.action_space = action_space or gym.spaces.Discrete(2)
        self.nan_reward_at = nan_reward_at
        self.raise_at = raise_at
        self.received = []
        self.calls = 0
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.received.append(np.array(action))
        self.calls += 1
        if self.raise_at is not None and self.calls == self.raise_at:
            raise RuntimeError("boom-from-the-env")
        self.t += 1
        reward = float(self.t)
        if self.nan_reward_at is not None and self.calls == self.nan_reward_at:
            reward = float("nan")
        terminated = self.length is not None and self.t == self.length
        return np.array([self.t], np.float32), reward, terminated, False, {}


def env_maker(*builders):
    """A zero-argument callable whose i-th call returns builders[i]() (env i)."""
    made = []
    it = iter(builders)

    def make():
        env = next(it)()
        made.append(env)
        return env

    return make, made


def unwrapped(env):
    return env.unwrapped


def expected_env_rows(length, t_global):
    """What the counter env (episode `length`) shows at global vector step t_global.

    Returns (obs, valid, reward, done). One episode plus its reset step spans
    `length + 1` vector steps: phases 0..length-1 are the episode's steps (obs = phase,
    reward = phase + 1, done at the last), phase `length` is the reset step, taken in
    the final observation `length`, with reward 0.
    """
    phase = t_global % (length + 1)
    if phase < length:
        return float(phase), True, float(phase + 1), phase == length - 1
    return float(length), False, 0.0, False


def collector_agent(action_space, n_envs, **kwargs):
    """A PPO built for the counter env's spaces, without any training."""
    agent = kt.PPO(n_envs=n_envs, n_steps=8, batch_size=8, hidden_sizes=(8,), **kwargs)
    agent.prepare(CounterEnv.observation_space, action_space, seed=0)
    return agent


def softmax_log_probs(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def test_rollout_of_terminating_and_truncated_envs_matches_their_definition():
    # Env 0 terminates after 3 steps; env 1 never terminates but a TimeLimit truncates
    # it after 4 steps. Two rollouts of 11 steps: env 0's episode ends on the last row
    # of the first rollout, so the second rollout starts with its reset row.
    make, made = env_maker(
        lambda: CounterEnv(length=3),
        lambda: gym.wrappers.TimeLimit(CounterEnv(), max_episode_steps=4),
    )
    lengths, n_steps = (3, 4), 11
    agent = collector_agent(gym.spaces.Discrete(2), n_envs=2)
    sampler = InProcessSampler()
    spaces = sampler.start(make, 2, seed=0)
    assert spaces == (CounterEnv.observation_space, gym.spaces.Discrete(2))
    try:
        rollouts = [sampler.collect(agent, n_steps, iteration=k) for k in range(2)]
    finally:
        sampler.close()

    for k, r in enumerate(rollouts):
        assert r.observations.shape == (n_steps, 2, 1)
        assert r.values.shape == (n_steps + 1, 2)
        assert r.num_steps == n_steps * 2
        for i, length in enumerate(lengths):
            rows = [expected_env_rows(length, k * n_steps + t) for t in range(n_steps)]
            obs, valid, reward, done = (np.array(x) for x in zip(*rows))
            np.testing.assert_array_equal(r.observations[:, i, 0], obs)
            np.testing.assert_array_equal(r.valid[:, i], valid)
            np.testing.assert_array_equal(r.rewards[:, i], reward)
            ends_by = r.terminated if i == 0 else r.truncated
            other = r.truncated if i == 0 else r.terminated
            np.testing.assert_array_equal(ends_by[:, i], done)
            assert not other[:, i].any()
            # The last observation is where the next rollout continues.
            next_obs = expected_env_rows(length, (k + 1) * n_steps)[0]
            assert r.last_observations[i, 0] == next_obs
    # Rows hand-checked for the first rollout: env 0 ends on rows 2, 6, 10 (reset rows
    # 3, 7 and row 0 of the next rollout); env 1 is truncated on rows 3 and 8.
    assert np.flatnonzero(~rollouts[0].valid[:, 0]).tolist() == [3, 7]
    assert np.flatnonzero(~rollouts[1].valid[:, 0]).tolist() == [0, 4, 8]
    assert np.flatnonzero(~rollouts[0].valid[:, 1]).tolist() == [4, 9]
    # Episodes in the order they ended: returns 1+2+3 = 6 and 1+2+3+4 = 10.
    assert rollouts[0].episode_returns == [6.0, 10.0, 6.0, 10.0, 6.0]
    assert rollouts[0].episode_lengths == [3, 4, 3, 4, 3]
    # Second rollout (global steps 11..21): env 0 ends at 14, 18; env 1 at 13, 18.
    assert rollouts[1].episode_returns == [10.0, 6.0, 6.0, 10.0]
    assert rollouts[1].episode_lengths == [4, 3, 3, 4]
    # The env never saw the reset rows' actions: one action per valid row.
    valid_rows = sum(int(r.valid[:, 0].sum()) for r in rollouts)
    assert len(unwrapped(made[0]).received) == valid_rows


def test_truncated_step_is_bootstrapped_with_the_value_of_the_final_observation():
    make, _ = env_maker(lambda: gym.wrappers.TimeLimit(CounterEnv(), max_episode_steps=4))
    agent = collector_agent(gym.spaces.Discrete(2), n_envs=1)
    sampler = InProcessSampler()
    sampler.start(make, 1, seed=0)
    try:
        r = sampler.collect(agent, 9, iteration=0)
    finally:
        sampler.close()
    t = int(np.flatnonzero(r.truncated[:, 0])[0])
    assert t == 3
    # The reset row stores the final observation (4 steps taken), and values[t + 1] is
    # the critic's value of exactly that observation.
    assert r.observations[t + 1, 0, 0] == 4.0
    final_value = agent.acting.value(np.array([[4.0]], np.float32))[0]
    first_value = agent.acting.value(np.array([[0.0]], np.float32))[0]
    assert final_value != first_value  # the check below can tell them apart
    assert r.values[t + 1, 0] == pytest.approx(final_value, rel=1e-5, abs=1e-6)
    # Every row's value is V(its observation); the last row bootstraps V(obs after it).
    expect = agent.acting.value(np.concatenate([r.observations[:, 0], r.last_observations]))
    np.testing.assert_allclose(r.values[:, 0], expect, rtol=1e-5, atol=1e-6)
    # The stored log-probabilities are those of the sampled actions under the policy.
    (logits,) = agent.policy_params(r.observations[:, 0])
    logp = softmax_log_probs(logits)[np.arange(9), r.actions[:, 0]]
    np.testing.assert_allclose(r.log_probs[:, 0], logp, rtol=1e-5, atol=1e-5)


def test_box_actions_reach_the_env_clipped_but_are_trained_on_unclipped():
    box = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    make, made = env_maker(lambda: CounterEnv(length=5, action_space=box))
    agent = collector_agent(box, n_envs=1, log_std_init=1.0)  # std e: most samples |a| > 1
    sampler = InProcessSampler()
    sampler.start(make, 1, seed=0)
    try:
        r = sampler.collect(agent, 30, iteration=0)
    finally:
        sampler.close()
    actions = r.actions[:, 0]
    assert np.abs(actions).max() > 1.5
    received = np.array(made[0].received)
    assert received.shape == (int(r.valid.sum()), 2)
    assert received.min() >= -1.0 and received.max() <= 1.0
    np.testing.assert_array_equal(received, np.clip(actions[r.valid[:, 0]], -1.0, 1.0))
    # log-probs are of the unclipped actions, by the diagonal Gaussian density.
    mean, log_std = (np.asarray(p, np.float64) for p in agent.policy_params(r.observations[:, 0]))
    np.testing.assert_allclose(log_std, 1.0, rtol=1e-6)
    std = np.exp(log_std)
    logp = (-0.5 * ((actions - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(r.log_probs[:, 0], logp, rtol=1e-4, atol=1e-4)


def test_discrete_actions_with_start_arrive_offset():
    space = gym.spaces.Discrete(3, start=-1)
    make, made = env_maker(lambda: CounterEnv(length=6, action_space=space))
    agent = collector_agent(space, n_envs=1)
    sampler = InProcessSampler()
    sampler.start(make, 1, seed=0)
    try:
        r = sampler.collect(agent, 40, iteration=0)
    finally:
        sampler.close()
    indices = r.actions[r.valid[:, 0], 0]
    assert set(indices.tolist()) == {0, 1, 2}  # what the policy samples and trains on
    received = np.array(made[0].received)
    np.testing.assert_array_equal(received, indices - 1)
    assert all(space.contains(int(a)) for a in received)
    # predict speaks the env's language too.
    predicted = agent.predict(np.zeros((5, 1), np.float32))
    assert all(space.contains(int(a)) for a in predicted)


def test_nan_reward_names_non_finite_env_and_step():
    make, _ = env_maker(lambda: CounterEnv(length=10), lambda: CounterEnv(nan_reward_at=3))
    agent = kt.PPO(n_envs=2, n_steps=8, batch_size=8, hidden_sizes=(8,))
    with pytest.raises(ValueError, match=r"non-finite") as info:
        agent.fit(make, 16, verbose=0, seed=0)
    message = str(info.value)
    assert "Environment 1 " in message
    assert "step 3 " in message
    assert agent.num_timesteps == 0


def test_exception_inside_step_names_env_index_and_message():
    counter = itertools.count()

    def make():
        return CounterEnv(raise_at=2) if next(counter) == 1 else CounterEnv()

    agent = kt.PPO(n_envs=2, n_steps=8, batch_size=8, hidden_sizes=(8,))
    with pytest.raises(EnvError, match=r"Environment 1 .*boom-from-the-env") as info:
        agent.fit(make, 16, verbose=0, seed=0)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert agent.num_timesteps == 0


def reference_episodes(rollouts, n_envs):
    """Valid masks and ended episodes of consecutive rollouts, step by step in Python."""
    prev_done = [False] * n_envs
    ret, length = [0.0] * n_envs, [0] * n_envs
    out = []
    for rewards, done in rollouts:
        valid = np.zeros(done.shape, bool)
        returns, lengths = [], []
        for t in range(done.shape[0]):
            for j in range(n_envs):
                valid[t, j] = not prev_done[j]
                if valid[t, j]:
                    ret[j] += float(rewards[t, j])
                    length[j] += 1
            for j in range(n_envs):
                if done[t, j]:
                    returns.append(ret[j])
                    lengths.append(length[j])
                    ret[j], length[j] = 0.0, 0
                prev_done[j] = bool(done[t, j])
        out.append((valid, returns, lengths))
    return out


@pytest.mark.parametrize("seed", range(5))
def test_episode_bookkeeping_matches_a_step_by_step_reference(seed, random_episode_ends):
    """Random ends (never two in a row: a reset row follows each end) over consecutive
    rollouts of 3 envs; episodes may span rollouts and end on a rollout's last row."""
    rng = np.random.default_rng(seed)
    n_envs, n_steps = 3, 17
    done_all = random_episode_ends(rng, 4 * n_steps, n_envs, max_first=6, gaps=(2, 9))
    rewards_all = rng.normal(size=done_all.shape).astype(np.float32)
    rollouts = [
        (rewards_all[k : k + n_steps], done_all[k : k + n_steps])
        for k in range(0, len(done_all), n_steps)
    ]
    runner = EnvRunner.__new__(EnvRunner)  # only the bookkeeping state, no env
    runner.prev_done = np.zeros(n_envs, bool)
    runner.ep_return = np.zeros(n_envs)
    runner.ep_length = np.zeros(n_envs, np.int64)
    for (rewards, done), (valid, returns, lengths) in zip(
        rollouts, reference_episodes(rollouts, n_envs)
    ):
        got_valid, got_returns, got_lengths = runner._episodes(rewards, done)
        np.testing.assert_array_equal(got_valid, valid)
        np.testing.assert_allclose(got_returns, returns, rtol=1e-9, atol=1e-9)
        assert got_lengths == lengths
