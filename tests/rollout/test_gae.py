"""GAE over NEXT_STEP rollouts, checked against advantages computed by hand.

Rows of a `(T, n_envs)` rollout: a row with `valid` False is the reset step that follows an
episode end (gymnasium 1.x NEXT_STEP autoreset); its observation is the final observation
of the ended episode, so `values[t + 1]` after a truncation is V(final observation).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_trust.rollout import compute_gae


def col(*xs, dtype=np.float64):
    """A (T, 1) column."""
    return np.asarray(xs, dtype=dtype)[:, None]


def flags(T, rows, n_envs=1):
    out = np.zeros((T, n_envs), dtype=bool)
    for t, i in rows:
        out[t, i] = True
    return out


def test_single_terminal_step():
    # delta = r - V(s0) = 2 - 0.5; the bootstrap value 7 is ignored (terminal).
    yes, no = col(True, dtype=bool), col(False, dtype=bool)
    adv, ret = compute_gae(col(2.0), col(0.5, 7.0), yes, no, yes, gamma=0.9, gae_lambda=0.7)
    assert adv.shape == ret.shape == (1, 1)
    assert adv.dtype == ret.dtype == np.float32
    assert adv[0, 0] == pytest.approx(1.5)
    assert ret[0, 0] == pytest.approx(2.0)


def test_three_step_episode_by_hand():
    # gamma = lambda = 1/2, so gamma * lambda = 1/4; V = 1 everywhere, terminal at t=2.
    # delta2 = 3 - 1 = 2;  delta1 = 2 + .5 - 1 = 1.5;  delta0 = 1 + .5 - 1 = .5
    # A2 = 2;  A1 = 1.5 + .25 * 2 = 2;  A0 = .5 + .25 * 2 = 1
    adv, ret = compute_gae(
        col(1.0, 2.0, 3.0),
        col(1.0, 1.0, 1.0, 123.0),
        col(False, False, True, dtype=bool),
        col(False, False, False, dtype=bool),
        col(True, True, True, dtype=bool),
        gamma=0.5,
        gae_lambda=0.5,
    )
    np.testing.assert_allclose(adv[:, 0], [1.0, 2.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [2.0, 3.0, 3.0], rtol=1e-6)


@pytest.mark.parametrize("ending", ["terminated", "truncated"])
def test_episode_end_then_reset_row_then_new_episode(ending):
    # t0: last step of an episode; t1: reset row (its obs is the final obs, V = 4);
    # t2: first step of the next episode, bootstrapped with values[3] = 6 at the rollout end.
    # gamma = 1/2, lambda = 1: nothing of t2 may flow into t0 although lambda = 1.
    rewards = col(1.0, 100.0, 2.0)  # the reset row's reward must be ignored
    values = col(0.0, 4.0, 9.0, 6.0)
    term = col(ending == "terminated", False, False, dtype=bool)
    trunc = col(ending == "truncated", False, False, dtype=bool)
    valid = col(True, False, True, dtype=bool)
    adv, ret = compute_gae(rewards, values, term, trunc, valid, gamma=0.5, gae_lambda=1.0)
    # terminated: A0 = 1 - 0 (no bootstrap); truncated: A0 = 1 + .5 * V(final obs) - 0 = 3
    a0 = 1.0 if ending == "terminated" else 3.0
    np.testing.assert_allclose(adv[:, 0], [a0, 0.0, 2.0 + 0.5 * 6.0 - 9.0], rtol=1e-6)
    # returns = advantages + V: the reset row's is its V (it has weight 0 in the losses)
    np.testing.assert_allclose(ret[:, 0], [a0, 4.0, 5.0], rtol=1e-6)


def test_reset_row_does_not_leak_into_neighbours():
    # Same rollout twice, differing only in the reward and the value of the reset row
    # (t=2, after a termination at t=1): neither may change any advantage.
    T = 4
    base = dict(
        terminated=col(False, True, False, False, dtype=bool),
        truncated=col(False, False, False, False, dtype=bool),
        valid=col(True, True, False, True, dtype=bool),
        gamma=0.9,
        gae_lambda=0.8,
    )
    a, _ = compute_gae(col(1.0, 1.0, 0.0, 1.0), values=col(1.0, 2.0, 3.0, 4.0, 5.0), **base)
    b, _ = compute_gae(col(1.0, 1.0, -1e6, 1.0), values=col(1.0, 2.0, 1e6, 4.0, 5.0), **base)
    np.testing.assert_array_equal(a, b)
    assert a[2, 0] == 0.0
    # By hand: A3 = 1 + .9 * 5 - 4 = 1.5 (rollout end); A1 = 1 - 2 = -1 (terminal);
    # A0 = (1 + .9 * 2 - 1) + .72 * (-1) = 1.08
    np.testing.assert_allclose(a[:, 0], [1.08, -1.0, 0.0, 1.5], rtol=1e-6)
    assert a.shape == (T, 1)


def test_rollout_end_is_bootstrapped_with_last_value():
    # No episode end: delta1 = 1 + .9 * 10 - 0 = 10; delta0 = 1 + .9 * 0 - 0 = 1;
    # A0 = 1 + .9 * .8 * 10 = 8.2
    adv, ret = compute_gae(
        col(1.0, 1.0),
        col(0.0, 0.0, 10.0),
        col(False, False, dtype=bool),
        col(False, False, dtype=bool),
        col(True, True, dtype=bool),
        gamma=0.9,
        gae_lambda=0.8,
    )
    np.testing.assert_allclose(adv[:, 0], [8.2, 10.0], rtol=1e-6)
    np.testing.assert_allclose(ret[:, 0], [8.2, 10.0], rtol=1e-6)


def test_two_envs_ending_at_different_steps():
    # gamma = 1, lambda = 1: advantages are (undiscounted sums of rewards to the episode
    # end, plus the bootstrap) minus V. Env 0 terminates at t=1 (reset row t=2, new
    # episode at t=3); env 1 is truncated at t=2 (reset row t=3), final-obs value 5.
    rewards = np.array([[1.0, 10.0], [2.0, 20.0], [0.0, 30.0], [4.0, 0.0]])
    values = np.array([[0.5, 1.0], [0.25, 2.0], [7.0, 3.0], [1.0, 5.0], [3.0, 8.0]])
    term = flags(4, [(1, 0)], 2)
    trunc = flags(4, [(2, 1)], 2)
    valid = ~flags(4, [(2, 0), (3, 1)], 2)
    adv, ret = compute_gae(rewards, values, term, trunc, valid, gamma=1.0, gae_lambda=1.0)
    expected = np.array(
        [
            [1.0 + 2.0 - 0.5, 10.0 + 20.0 + 30.0 + 5.0 - 1.0],
            [2.0 - 0.25, 20.0 + 30.0 + 5.0 - 2.0],
            [0.0, 30.0 + 5.0 - 3.0],
            [4.0 + 3.0 - 1.0, 0.0],
        ]
    )
    np.testing.assert_allclose(adv, expected, rtol=1e-6)
    np.testing.assert_allclose(ret, expected + values[:4], rtol=1e-6)


def random_episode(rng, T):
    rewards = rng.normal(size=(T, 1))
    values = rng.normal(size=(T + 1, 1))
    return rewards, values


@pytest.mark.parametrize("terminal", [True, False])
def test_lambda_one_is_monte_carlo_return_minus_value(terminal):
    rng = np.random.default_rng(0)
    T, gamma = 7, 0.8
    rewards, values = random_episode(rng, T)
    term = np.zeros((T, 1), bool)
    term[-1] = terminal
    adv, _ = compute_gae(rewards, values, term, np.zeros_like(term), np.ones_like(term), gamma, 1.0)
    for t in range(T):
        g = sum(gamma**k * rewards[t + k, 0] for k in range(T - t))
        if not terminal:
            g += gamma ** (T - t) * values[T, 0]
        assert adv[t, 0] == pytest.approx(g - values[t, 0], rel=1e-5, abs=1e-5)


def test_lambda_zero_is_one_step_td_error():
    rng = np.random.default_rng(1)
    T, gamma = 6, 0.95
    rewards, values = random_episode(rng, T)
    term = np.zeros((T, 1), bool)
    term[2] = True
    valid = np.ones((T, 1), bool)
    valid[3] = False
    adv, _ = compute_gae(rewards, values, term, np.zeros_like(term), valid, gamma, 0.0)
    for t in range(T):
        if not valid[t, 0]:
            expected = 0.0
        elif term[t, 0]:
            expected = rewards[t, 0] - values[t, 0]
        else:
            expected = rewards[t, 0] + gamma * values[t + 1, 0] - values[t, 0]
        assert adv[t, 0] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_values_of_wrong_length_raise():
    with pytest.raises(ValueError, match="T \\+ 1"):
        z = np.zeros((3, 1))
        compute_gae(z, z, z.astype(bool), z.astype(bool), z.astype(bool) | True)


# ------------------------------------------------------------------ property test


def reference_gae(rewards, values, terminated, truncated, valid, gamma, lam):
    """Per env, per episode, straight from the definition A_t = sum_k (g l)^k delta_{t+k}.

    An episode is a maximal run of valid rows that ends at a terminated or truncated row
    (or at the rollout end). delta_t = r_t + gamma * V_next - V_t with V_next = 0 after a
    termination, V(final observation) = values[t + 1] after a truncation, and values[t + 1]
    inside an episode and at the rollout end.
    """
    T, n = rewards.shape
    adv = np.zeros((T, n))
    for i in range(n):
        t = 0
        while t < T:
            if not valid[t, i]:
                t += 1
                continue
            start = t
            while t < T - 1 and not (terminated[t, i] or truncated[t, i]):
                t += 1
            end = t  # last row of the episode inside this rollout
            deltas = []
            for s in range(start, end + 1):
                v_next = 0.0 if terminated[s, i] else values[s + 1, i]
                deltas.append(rewards[s, i] + gamma * v_next - values[s, i])
            for s in range(start, end + 1):
                adv[s, i] = sum(
                    (gamma * lam) ** k * deltas[s - start + k] for k in range(end - s + 1)
                )
            t = end + 1
    return adv


@st.composite
def rollouts(draw):
    T = draw(st.integers(1, 12))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    p_done = draw(st.sampled_from([0.0, 0.2, 0.5]))
    rng = np.random.default_rng(seed)
    terminated = np.zeros((T, n), bool)
    truncated = np.zeros((T, n), bool)
    valid = np.zeros((T, n), bool)
    for i in range(n):
        prev_done = bool(rng.random() < 0.3)  # the previous rollout may end with a done
        for t in range(T):
            valid[t, i] = not prev_done
            done = valid[t, i] and rng.random() < p_done
            if done:
                if rng.random() < 0.5:
                    terminated[t, i] = True
                else:
                    truncated[t, i] = True
            prev_done = done
    rewards = rng.normal(size=(T, n)) * 3
    values = rng.normal(size=(T + 1, n)) * 3
    gamma = draw(st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0]))
    lam = draw(st.sampled_from([0.0, 0.5, 0.95, 1.0]))
    return rewards, values, terminated, truncated, valid, gamma, lam


@settings(max_examples=200, deadline=None)
@given(rollouts())
def test_matches_per_episode_reference(case):
    rewards, values, terminated, truncated, valid, gamma, lam = case
    adv, ret = compute_gae(rewards, values, terminated, truncated, valid, gamma, lam)
    expected = reference_gae(rewards, values, terminated, truncated, valid, gamma, lam)
    np.testing.assert_allclose(adv, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ret, expected + values[:-1], rtol=1e-5, atol=1e-4)
    assert np.all(adv[~valid] == 0.0)
