"""TRPO's entropy bonus (`ent_coef`) against a NumPy natural-gradient step.

The policy is linear softmax on CartPole (an identity torso under the categorical head),
so its Fisher matrix is small enough to form explicitly: for logits z = x W + b it is the
weighted mean over states of J^T (diag(p) - p p^T) J. With `NaturalGradient(learning_rate=
lr)` the step is `-lr (F + damping I)^-1 grad(loss)`, linear in the loss's gradient, so the
step with a bonus minus the step without one, from the same weights on the same batch, is
`lr * ent_coef * (F + damping I)^-1 grad(H)`, with the entropy's gradient in closed form:
dH/dz_j = -p_j (log p_j + H).
"""

import keras
import numpy as np
import pytest

import keras_trust as kt
from keras_trust.rollout import InProcessSampler
from keras_trust.rollout.batch import training_batch

LR, DAMPING, ENT_COEF = 0.5, 0.1, 0.05


def linear_trpo(ent_coef):
    agent = kt.TRPO(
        policy=keras.Sequential([keras.layers.Identity()]),
        n_envs=2,
        n_steps=64,
        batch_size=64,
        ent_coef=ent_coef,
        normalize_advantage=False,
    )
    agent.compile(
        optimizer=kt.optimizers.NaturalGradient(learning_rate=LR, cg_iters=40, cg_damping=DAMPING)
    )
    return agent


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def jacobians(x, n_actions):
    """dz/dtheta per state, theta = [vec(W) row-major, b]: (states, actions, params)."""
    n, d = x.shape
    jac = np.zeros((n, n_actions, d * n_actions + n_actions))
    for k in range(n_actions):
        jac[:, k, k : d * n_actions : n_actions] = x  # dz_k / dW[i, k] = x_i
        jac[:, k, d * n_actions + k] = 1.0  # dz_k / db_k = 1
    return jac


@pytest.fixture(scope="module")
def batch_and_agents():
    sampler = InProcessSampler()
    spaces = sampler.start("CartPole-v1", 2, seed=0)
    agents = {}
    try:
        for coef in (0.0, ENT_COEF):
            agent = linear_trpo(coef)
            agent._seed.assign(0)
            agent.prepare(*spaces, seed=0)
            agents[coef] = agent
        # Away from the (near-uniform) initial policy, where the entropy's gradient is ~0.
        rng = np.random.default_rng(0)
        weights = [rng.normal(0.0, 0.5, (4, 2)).astype(np.float32), np.float32([0.3, -0.2])]
        for agent in agents.values():
            for v, value in zip(agent.policy_variables, weights):
                v.assign(value)
        rollout = sampler.collect(agents[0.0], 64, 0)
        batch, _ = training_batch(rollout, rollout.rewards, 0.99, 0.95, [0, 0])
    finally:
        sampler.close()
    return batch, agents, weights


def test_entropy_bonus_adds_the_natural_gradient_of_the_entropy(batch_and_agents):
    batch, agents, (kernel, bias) = batch_and_agents
    x = batch["obs"].numpy().astype(np.float64)
    w = batch["weights"].numpy().astype(np.float64)
    w = w / w.sum()
    p = softmax(x @ kernel.astype(np.float64) + bias)
    jac = jacobians(x, p.shape[1])
    fisher_z = np.einsum("sk,kl->skl", p, np.eye(p.shape[1])) - np.einsum("sk,sl->skl", p, p)
    fisher = np.einsum("s,ski,skl,slj->ij", w, jac, fisher_z, jac)
    entropy = -(p * np.log(p)).sum(-1)
    dh_dz = -p * (np.log(p) + entropy[:, None])
    grad_h = np.einsum("s,sk,ski->i", w, dh_dz, jac)
    expected = LR * ENT_COEF * np.linalg.solve(fisher + DAMPING * np.eye(len(grad_h)), grad_h)

    steps = {}
    for coef, agent in agents.items():
        logs = agent.update(batch)
        assert bool(logs["accepted"])
        new = np.concatenate([v.numpy().ravel() for v in agent.policy_variables])
        steps[coef] = new - np.concatenate([kernel.ravel(), bias])
    difference = steps[ENT_COEF] - steps[0.0]
    assert np.linalg.norm(expected) > 1e-3  # the bonus moves the policy measurably
    np.testing.assert_allclose(difference, expected, rtol=2e-3, atol=1e-5 * np.abs(expected).max())


def test_logged_policy_loss_is_the_surrogate_without_the_bonus():
    sampler = InProcessSampler()
    spaces = sampler.start("CartPole-v1", 2, seed=1)
    agent = linear_trpo(ENT_COEF)
    agent._seed.assign(0)
    agent.prepare(*spaces, seed=1)
    try:
        rollout = sampler.collect(agent, 64, 0)
        batch, _ = training_batch(rollout, rollout.rewards, 0.99, 0.95, [1, 0])
    finally:
        sampler.close()
    logs = agent.update(batch)
    kernel, bias = (v.numpy().astype(np.float64) for v in agent.policy_variables)
    p = softmax(batch["obs"].numpy() @ kernel + bias)
    actions = batch["actions"].numpy().astype(int)
    w = batch["weights"].numpy() / batch["weights"].numpy().sum()
    ratio = p[np.arange(len(actions)), actions] / np.exp(batch["log_probs"].numpy())
    surrogate = np.sum(w * ratio * batch["advantages"].numpy())
    entropy = np.sum(w * -(p * np.log(p)).sum(-1))
    assert float(logs["policy_loss"]) == pytest.approx(-surrogate, rel=1e-4, abs=1e-6)
    assert float(logs["entropy"]) == pytest.approx(entropy, rel=1e-4)


def test_ent_coef_survives_save_and_load(tmp_path):
    agent = kt.TRPO(n_steps=64, batch_size=32, value_epochs=1, hidden_sizes=(8,), ent_coef=0.01)
    agent.fit("CartPole-v1", 64, verbose=0, seed=0)
    agent.save(tmp_path / "trpo.keras")
    assert kt.load_agent(tmp_path / "trpo.keras").ent_coef == 0.01
    assert kt.TRPO(ent_coef=np.float32(0.5)).ent_coef == 0.5  # NumPy scalars are numbers


@pytest.mark.parametrize("bad", ["0.01", None])  # negative: test_validation.py
def test_bad_ent_coef_raises(bad):
    with pytest.raises(ValueError, match="ent_coef must be a number >= 0"):
        kt.TRPO(ent_coef=bad)
