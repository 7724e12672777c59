"""The shipped presets: every one builds a working agent for its env, and the MuJoCo ones
are the published settings they claim to be."""

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt
from keras_trust import presets
from keras_trust.env_wrappers import env_factory

ISSUE_ENVS = [
    "CartPole-v1",
    "Acrobot-v1",
    "MountainCarContinuous-v0",
    "Pendulum-v1",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
    "LunarLander-v3",
    "LunarLanderContinuous-v3",
]


def test_every_issue_env_has_ppo_and_trpo():
    have = set(presets.available())
    assert {(env, algo) for env in ISSUE_ENVS for algo in ("ppo", "trpo")} <= have


@pytest.mark.parametrize("env_id,algo", presets.available())
def test_preset_builds_an_agent_that_acts_in_its_env(env_id, algo):
    agent = presets.make_agent(algo, env_id)
    make = env_factory(env_id, presets.get_preset(algo, env_id).get("env_wrappers"))
    env = make() if callable(make) else gym.make(make)
    agent.prepare(env.observation_space, env.action_space, seed=0)
    obs, _ = env.reset(seed=0)
    action = agent.predict(obs)
    assert env.action_space.contains(np.asarray(action, env.action_space.dtype))
    preset = presets.get_preset(algo, env_id)
    assert preset["total_timesteps"] >= agent.n_envs * agent.n_steps
    env.close()


def test_halfcheetah_ppo_preset_is_rl_zoos_tuned_setting():
    # rl-baselines3-zoo's hyperparams/ppo.yml, HalfCheetah-v3 (1M steps): 6353, 6081, 6108
    # at 1M with seeds 0-2 here against rl-zoo's 5819; the PPO paper's settings reached
    # 1897 (benchmarks/results/presets_zoo.md).
    p = presets.get_preset("ppo", "HalfCheetah-v5")
    a = p["agent"]
    assert (a["n_envs"], a["n_steps"], a["batch_size"], a["epochs"]) == (1, 512, 64, 20)
    assert (a["gamma"], a["gae_lambda"], a["clip_ratio"]) == (0.98, 0.92, 0.1)
    assert (a["ent_coef"], a["vf_coef"], a["max_grad_norm"]) == (0.000401762, 0.58096, 0.8)
    assert (a["hidden_sizes"], a["activation"], a["log_std_init"]) == ([256, 256], "relu", -2.0)
    assert p["optimizer"] == {"name": "adam", "learning_rate": 2.0633e-5, "epsilon": 1e-5}
    assert a["normalize_observations"] and a["normalize_rewards"]
    agent = presets.make_agent("ppo", "HalfCheetah-v5")
    assert (agent.hidden_sizes, agent.activation, agent.log_std_init) == ((256, 256), "relu", -2.0)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_pendulum_presets_explore_with_gsde(algo):
    # rl-zoo's Pendulum PPO and TRPO use gSDE with sde_sample_freq 4; with it the presets
    # reach rl-zoo's returns at its 100k budget (benchmarks/results/presets_zoo.md).
    p = presets.get_preset(algo, "Pendulum-v1")
    assert (p["agent"]["action_distribution"], p["agent"]["sde_sample_freq"]) == ("gsde", 4)
    assert p["agent"]["gamma"] == 0.9 and p["total_timesteps"] <= 102_400
    agent = presets.make_agent(algo, "Pendulum-v1")
    env = gym.make("Pendulum-v1")
    agent.prepare(env.observation_space, env.action_space, seed=0)
    dist = agent.action_distribution
    assert type(dist).__name__ == "StateDependentGaussian" and dist.sample_freq == 4
    # sigma is a (features, actions) matrix at exp(log_std_init).
    log_std = agent.policy_head.log_std.numpy()
    assert log_std.shape == (64, 1)
    np.testing.assert_allclose(log_std, p["agent"].get("log_std_init", 0.0))


def test_walker2d_ppo_preset_is_rl_zoos_tuned_setting():
    # rl-baselines3-zoo's hyperparams/ppo.yml, Walker2d-v3: at 1M, seeds 0-2 gave 3091, 2420,
    # 3707 here against rl-zoo's 3479; the PPO paper's settings 2119 on seed 0
    # (benchmarks/results/presets_zoo.md).
    p = presets.get_preset("ppo", "Walker2d-v5")
    a = p["agent"]
    assert (a["n_envs"], a["n_steps"], a["batch_size"], a["epochs"]) == (1, 512, 32, 20)
    assert (a["gamma"], a["gae_lambda"], a["clip_ratio"]) == (0.99, 0.95, 0.1)
    assert (a["ent_coef"], a["vf_coef"], a["max_grad_norm"]) == (0.000585045, 0.871923, 1.0)
    assert "hidden_sizes" not in a and "activation" not in a  # SB3's default 64-64 tanh
    assert p["optimizer"] == {"name": "adam", "learning_rate": 5.05041e-5, "epsilon": 1e-5}
    assert a["normalize_observations"] and a["normalize_rewards"]
    assert p["total_timesteps"] == 1_000_000


@pytest.mark.parametrize("env_id", ["Hopper-v5"])
def test_mujoco_ppo_presets_are_the_ppo_papers_settings(env_id):
    # Schulman et al. (2017), Table 3 (Mujoco 1M steps), plus obs/reward normalization.
    p = presets.get_preset("ppo", env_id)
    a = p["agent"]
    assert a["n_envs"] * a["n_steps"] == 2048
    assert (a["epochs"], a["batch_size"], a["gamma"], a["gae_lambda"]) == (10, 64, 0.99, 0.95)
    assert a["clip_ratio"] == 0.2
    assert p["optimizer"] == {"name": "adam", "learning_rate": 3e-4, "epsilon": 1e-5}
    assert a["normalize_observations"] and a["normalize_rewards"]
    assert p["total_timesteps"] == 1_000_000


@pytest.mark.parametrize("env_id", ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5"])
def test_mujoco_trpo_presets_are_rl_zoos_settings_in_our_kl_units(env_id):
    # rl-baselines3-zoo's sb3-contrib TRPO on MuJoCo: 2 envs x 1024 steps, target_kl 0.01,
    # cg_damping 0.1 (per action dimension there: times d here), 25 CG iterations, 20
    # critic epochs of 128, and SB3's critic Adam (lr 1e-3, eps 1e-5).
    p = presets.get_preset("trpo", env_id)
    env = gym.make(env_id)
    d = env.action_space.shape[0]
    env.close()
    a, opt = p["agent"], p["optimizer"]
    assert (a["n_envs"], a["n_steps"], a["batch_size"], a["value_epochs"]) == (2, 1024, 128, 20)
    assert opt["max_kl"] == pytest.approx(0.01 * d) and opt["cg_damping"] == pytest.approx(0.1 * d)
    assert opt["cg_iters"] == 25 and opt["damped_step_length"]
    assert p["value_optimizer"] == {"name": "adam", "learning_rate": 1e-3, "epsilon": 1e-5}
    # Hopper starts narrower (std e^-1): over seeds 0-5 at 1M, 3361 +/- 223 against
    # 2894 +/- 616 for rl-zoo's std 1 (benchmarks/results/presets_zoo.md).
    log_std_init = -1.0 if env_id == "Hopper-v5" else 0.0
    assert a.get("log_std_init", 0.0) == log_std_init
    assert presets.make_agent("trpo", env_id).log_std_init == log_std_init


@pytest.mark.parametrize("env_id", ["LunarLander-v3", "LunarLanderContinuous-v3"])
def test_lunar_lander_presets_are_rl_zoos_settings(env_id):
    # rl-baselines3-zoo's ppo.yml and trpo.yml (LunarLander-v2/-v3 and the continuous
    # one), with SB3's and sb3-contrib's defaults where the yml is silent; TRPO's KL and
    # damping per action dimension there are times d here (2 for the continuous lander).
    # Changes, each above rl-zoo's settings over seeds (benchmarks/results/presets_zoo.md):
    # on the continuous lander PPO with observation and reward normalization and TRPO with 8
    # envs x 256 steps (the same 2048 steps per update as 2 x 1024) and critic minibatches
    # of 256; on the discrete one TRPO with 4 envs x 512 steps (twice rl-zoo's 2 x 512) and
    # gamma 0.999.
    discrete = env_id == "LunarLander-v3"
    ppo, trpo = presets.get_preset("ppo", env_id), presets.get_preset("trpo", env_id)
    a = ppo["agent"]
    assert (a["n_envs"], a["n_steps"], a["batch_size"], a["epochs"]) == (16, 1024, 64, 4)
    assert (a["gamma"], a["gae_lambda"], a["ent_coef"], a["clip_ratio"]) == (0.999, 0.98, 0.01, 0.2)
    assert ppo["optimizer"] == {"name": "adam", "learning_rate": 3e-4, "epsilon": 1e-5}
    assert ppo["total_timesteps"] == 1_000_000
    assert (
        bool(a.get("normalize_observations")) == bool(a.get("normalize_rewards")) == (not discrete)
    )
    t, opt = trpo["agent"], trpo["optimizer"]
    d = 1 if discrete else 2
    assert (t["n_envs"], t["n_steps"]) == ((4, 512) if discrete else (8, 256))
    # The continuous lander's critic on minibatches of 256 (rl-zoo's 128 scored below it
    # over seeds 0-11 on one machine: benchmarks/results/presets_zoo.md, `8x256_b256`).
    assert t["batch_size"] == (128 if discrete else 256)
    assert t["gamma"] == (0.999 if discrete else 0.99)
    assert (t["value_epochs"], t["gae_lambda"]) == ((15, 0.98) if discrete else (20, 0.95))
    assert bool(t.get("normalize_observations")) == (not discrete)
    assert opt["max_kl"] == pytest.approx(0.01 * d)
    assert opt["cg_damping"] == pytest.approx((0.01 if discrete else 0.1) * d)
    assert trpo["value_optimizer"] == {"name": "adam", "learning_rate": 1e-3, "epsilon": 1e-5}
    assert 200_000 <= trpo["total_timesteps"] < 200_000 + t["n_envs"] * t["n_steps"]


def test_trpo_default_critic_optimizer_is_sb3_contribs():
    opt = kt.TRPO()._default_value_optimizer()
    assert isinstance(opt, keras.optimizers.Adam)
    assert float(opt.learning_rate) == pytest.approx(1e-3) and opt.epsilon == 1e-5


def test_atari_and_minigrid_presets_are_rl_zoos_settings_and_wrap_their_envs():
    pong = presets.get_preset("ppo", "ALE/Pong-v5")
    a = pong["agent"]
    assert (a["n_envs"], a["n_steps"], a["epochs"], a["batch_size"]) == (8, 128, 4, 256)
    assert a["clip_ratio"] == "lin_0.1" and pong["optimizer"]["learning_rate"] == "lin_2.5e-4"
    env = env_factory("ALE/Pong-v5", pong["env_wrappers"])()
    assert env.observation_space.shape == (4, 84, 84) and env.observation_space.dtype == np.uint8
    env.close()
    grid = presets.get_preset("ppo", "MiniGrid-Empty-5x5-v0")
    env = env_factory("MiniGrid-Empty-5x5-v0", grid["env_wrappers"])()
    assert set(env.observation_space.spaces) == {"image", "direction"}
    agent = presets.make_agent("ppo", "ALE/Pong-v5")
    assert isinstance(agent.clip_ratio, kt.schedules.LinearSchedule)
    with pytest.raises(ValueError, match="Unknown env wrappers"):
        env_factory("CartPole-v1", ["nope"])
