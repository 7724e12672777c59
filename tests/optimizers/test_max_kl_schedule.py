"""A trust-region radius that follows a schedule, checked step by step against NumPy.

`max_kl` may be a `keras.optimizers.schedules.LearningRateSchedule` of the optimizer's
step counter. Each step's expected weights are recomputed from the explicit Fisher
matrix and gradient with the radius the schedule gives at that step, written out here
as a closed form (`R0 * (1 - k / K)`), not read from the schedule object.
"""

import copy

import numpy as np
import pytest
from policy_reference import SurrogateProblem, reference_line_search

import keras_trust as kt
from keras_trust import presets
from keras_trust.schedules import LinearSchedule

R0, K = 0.2, 4
DAMPING, ITERS, COEFF = 0.1, 8, 0.5


def radius(k):
    return R0 * (1 - k / K)


def flat(weights):
    return np.concatenate([w.ravel() for w in weights])


@pytest.mark.parametrize("kind", ["categorical", "diag_gaussian"])
def test_trust_region_steps_use_the_radius_of_their_step(kind):
    problem = SurrogateProblem(kind)
    loss_fn, kl_fn = problem.loss_fn, problem.kl_fn  # one compiled step for all four
    opt = kt.optimizers.TrustRegion(
        max_kl=LinearSchedule(R0, decay_steps=K),
        cg_iters=problem.size,
        cg_damping=DAMPING,
        backtrack_iters=ITERS,
        backtrack_coeff=COEFF,
    )
    for k in range(K):
        problem.reset(seed=k).freeze()
        accepted, backtracks, theta = reference_line_search(
            problem, radius(k), DAMPING, ITERS, COEFF
        )
        info = opt.minimize(loss_fn, problem.variables, kl_fn)
        assert bool(info["accepted"]) == accepted
        assert int(info["backtracks"]) == backtracks
        expected = theta - flat(problem.initial_weights)
        step = problem.flat_weights() - flat(problem.initial_weights)
        assert np.linalg.norm(step - expected) <= 1e-3 * max(np.linalg.norm(expected), 1e-12)
        if accepted:
            assert problem.numpy_kl(problem.get_weights()) <= radius(k)
    assert int(opt.iterations) == K


def test_natural_gradient_step_has_the_scheduled_quadratic_kl():
    problem = SurrogateProblem("diag_gaussian")
    loss_fn, kl_fn = problem.loss_fn, problem.kl_fn
    opt = kt.optimizers.NaturalGradient(
        max_kl=LinearSchedule(R0, decay_steps=K), cg_iters=problem.size, cg_damping=DAMPING
    )
    for k in range(K):
        problem.reset(seed=10 + k).freeze()
        fisher, grad = problem.fisher_and_gradient()
        x = np.linalg.solve(fisher + DAMPING * np.eye(problem.size), grad)
        expected = -np.sqrt(2 * radius(k) / (x @ fisher @ x)) * x
        opt.minimize(loss_fn, problem.variables, kl_fn)
        step = problem.flat_weights() - flat(problem.initial_weights)
        assert np.linalg.norm(step - expected) <= 1e-3 * np.linalg.norm(expected)
        assert 0.5 * step @ fisher @ step == pytest.approx(radius(k), rel=2e-3)


def test_scheduled_radius_survives_get_config():
    opt = kt.optimizers.TrustRegion(max_kl=LinearSchedule(0.03, decay_steps=100))
    clone = kt.optimizers.TrustRegion.from_config(opt.get_config())
    assert isinstance(clone.max_kl, LinearSchedule)
    assert clone.max_kl.get_config() == {
        "initial_learning_rate": 0.03,
        "decay_steps": 100,
        "final_learning_rate": 0.0,
    }
    assert float(clone.current_max_kl()) == pytest.approx(0.03)


def test_preset_lin_radius_decays_over_the_trpo_updates_and_resumes(tmp_path):
    """`"max_kl": "lin_0.05"` in a preset: one schedule step per TRPO update, each update's
    measured KL within that update's radius, and the position saved with the agent."""
    preset = copy.deepcopy(presets.get_preset("trpo", "Pendulum-v1"))
    preset["agent"].update(n_envs=1, n_steps=256, batch_size=64, value_epochs=1)
    preset["optimizer"]["max_kl"] = "lin_0.05"
    agent = presets.make_agent("trpo", "Pendulum-v1", preset=preset, total_timesteps=1024)
    assert agent.optimizer.max_kl.get_config()["decay_steps"] == 4
    history = agent.fit("Pendulum-v1", total_timesteps=512, seed=0, verbose=0)
    kls = history.history["kl"]
    assert len(kls) == 2
    for k, kl in enumerate(kls):
        assert kl <= 0.05 * (1 - k / 4) * (1 + 1e-6)
    path = str(tmp_path / "agent.keras")
    agent.save(path)
    loaded = kt.load_agent(path)
    assert int(loaded.optimizer.iterations) == 2
    assert float(loaded.optimizer.current_max_kl()) == pytest.approx(0.025)
    # The resumed run goes on along the schedule: the last radius is a quarter of the
    # first (a fixed 0.05 gives this run's last update a KL of about 0.03).
    kls = loaded.fit("Pendulum-v1", total_timesteps=512, verbose=0).history["kl"]
    assert len(kls) == 2
    for k, kl in enumerate(kls, start=2):
        assert kl <= 0.05 * (1 - k / 4) * (1 + 1e-6)


@pytest.mark.parametrize(
    "max_kl, match",
    [
        (LinearSchedule(0.0, decay_steps=10), "must start > 0"),
        ("lin_0.03", "max_kl must be a number > 0 or a keras"),
        (True, "max_kl must be a number > 0 or a keras"),
        (-0.01, "max_kl must be > 0"),
    ],
)
def test_bad_radius_raises(max_kl, match):
    with pytest.raises(ValueError, match=match):
        kt.optimizers.TrustRegion(max_kl=max_kl)
    with pytest.raises(ValueError, match=match):
        kt.optimizers.NaturalGradient(max_kl=max_kl)
