"""Bad input fails early with a ValueError that names the problem (issue: reliability)."""

import gymnasium as gym
import keras
import numpy as np
import pytest

import keras_trust as kt


class SpaceEnv(gym.Env):
    """An env with arbitrary spaces; it is never stepped (validation comes first)."""

    def __init__(self, observation_space, action_space):
        self.observation_space = observation_space
        self.action_space = action_space

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        raise AssertionError("validation must happen before any step")


BOX = gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
DISCRETE = gym.spaces.Discrete(2)

CONSTRUCTOR_CASES = [
    (kt.PPO, {"gamma": 1.5}, "gamma"),
    (kt.PPO, {"gamma": -0.1}, "gamma"),
    (kt.TRPO, {"gae_lambda": 2.0}, "gae_lambda"),
    (kt.PPO, {"n_steps": 0}, "n_steps"),
    (kt.TRPO, {"n_steps": -5}, "n_steps"),
    (kt.PPO, {"batch_size": 0}, "batch_size"),
    (kt.PPO, {"n_envs": 0}, "n_envs"),
    (kt.PPO, {"epochs": 0}, "epochs"),
    (kt.TRPO, {"value_epochs": 0}, "value_epochs"),
    (kt.PPO, {"clip_ratio": 0.0}, "clip_ratio"),
    (kt.PPO, {"clip_ratio": -0.2}, "clip_ratio"),
    (kt.PPO, {"clip_ratio": None}, "clip_ratio, kl_penalty"),
    (kt.PPO, {"n_steps": 16, "batch_size": 64}, "batch_size=64 is larger than a rollout"),
    (kt.PPO, {"n_envs": 2, "n_steps": 8, "batch_size": 17}, "batch_size=17"),
    (kt.PPO, {"target_kl": 0.0}, "target_kl"),
    (kt.PPO, {"target_kl": -1.0}, "target_kl"),
    (kt.PPO, {"max_grad_norm": 0.0}, "max_grad_norm"),
    (kt.PPO, {"ent_coef": -0.01}, "ent_coef"),
    (kt.PPO, {"kl_penalty": "yes"}, "kl_penalty"),
    (kt.PPO, {"policy": "mlp"}, "policy must be a Keras model"),
    (kt.PPO, {"activation": "nope"}, "activation must be the name of a Keras activation"),
    (kt.TRPO, {"activation": 3}, "activation must be the name"),
    (kt.TRPO, {"ent_coef": -0.01}, "ent_coef must be a number >= 0"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), CONSTRUCTOR_CASES)
def test_invalid_hyperparameters_raise_in_constructor(cls, kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        cls(**kwargs)


OPTIMIZER_CASES = [
    (kt.optimizers.TrustRegion, {"max_kl": 0.0}, "max_kl"),
    (kt.optimizers.TrustRegion, {"max_kl": -0.01}, "max_kl"),
    (kt.optimizers.TrustRegion, {"backtrack_coeff": 1.0}, "backtrack_coeff"),
    (kt.optimizers.TrustRegion, {"backtrack_coeff": 0.0}, "backtrack_coeff"),
    (kt.optimizers.TrustRegion, {"cg_iters": 0}, "cg_iters"),
    (kt.optimizers.TrustRegion, {"cg_damping": -1.0}, "cg_damping"),
    (kt.optimizers.NaturalGradient, {"max_kl": 0.0}, "max_kl"),
    (kt.optimizers.NaturalGradient, {"cg_iters": 0}, "cg_iters"),
    (kt.layers.KLPenalty, {"target_kl": 0.0}, "target_kl"),
    (kt.layers.KLPenalty, {"initial_beta": -1.0}, "initial_beta"),
]


@pytest.mark.parametrize(("cls", "kwargs", "message"), OPTIMIZER_CASES)
def test_invalid_optimizer_and_layer_arguments(cls, kwargs, message):
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


SPACE_CASES = [
    (gym.spaces.Text(5), DISCRETE, "Unsupported observation space Text"),
    (gym.spaces.Graph(BOX, None), DISCRETE, "Unsupported observation space Graph"),
    (gym.spaces.Sequence(BOX), DISCRETE, "Unsupported observation space Sequence"),
    (
        gym.spaces.Dict({"a": BOX, "b": gym.spaces.Text(3)}),
        DISCRETE,
        r"Unsupported observation space Text .* at observation\['b'\]",
    ),
    (gym.spaces.Tuple((BOX, gym.spaces.Sequence(BOX))), DISCRETE, r"at observation\[1\]"),
    (BOX, gym.spaces.Dict({"a": DISCRETE}), "Unsupported action space Dict"),
    (BOX, gym.spaces.Tuple((DISCRETE, DISCRETE)), "Unsupported action space Tuple"),
    (BOX, gym.spaces.Box(-1, 1, (2, 2), np.int64), "Box actions must be float"),
    (BOX, gym.spaces.Text(4), "Unsupported action space Text"),
]


@pytest.mark.parametrize(("obs_space", "act_space", "message"), SPACE_CASES)
def test_unsupported_spaces_raise_before_any_step(obs_space, act_space, message):
    agent = kt.PPO(n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match=message):
        agent.fit(lambda: SpaceEnv(obs_space, act_space), 8, verbose=0)


def test_unknown_env_id():
    with pytest.raises(ValueError, match="Unknown environment id 'NoSuchEnv-v0'"):
        kt.PPO(n_steps=8, batch_size=8).fit("NoSuchEnv-v0", 8, verbose=0)


def test_env_instance_cannot_be_copied():
    with pytest.raises(ValueError, match="cannot be copied"):
        kt.PPO(n_envs=2, n_steps=8, batch_size=8).fit(gym.make("CartPole-v1"), 16, verbose=0)


def test_vector_env_count_mismatch():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("CartPole-v1")] * 3)
    with pytest.raises(ValueError, match="n_envs=3"):
        kt.PPO(n_envs=2, n_steps=8, batch_size=8).fit(envs, 16, verbose=0)


def test_user_model_with_wrong_input_shape():
    policy = keras.Sequential([keras.Input((7,)), keras.layers.Dense(8)])
    with pytest.raises(ValueError, match="policy model does not accept observations"):
        kt.PPO(policy=policy, n_steps=8, batch_size=8).fit("CartPole-v1", 8, verbose=0)


def test_user_model_with_wrong_output_rank():
    value = keras.Sequential([keras.Input((4,)), keras.layers.Reshape((2, 2))])
    with pytest.raises(ValueError, match=r"value model must map .* \(batch, features\)"):
        kt.TRPO(value=value, n_steps=8, batch_size=8).fit("CartPole-v1", 8, verbose=0)


def test_wrong_optimizer_kinds():
    with pytest.raises(ValueError, match="use kt.TRPO"):
        kt.PPO().compile(optimizer=kt.optimizers.TrustRegion())
    with pytest.raises(ValueError, match="TrustRegion or NaturalGradient"):
        kt.TRPO().compile(optimizer="adam")
    with pytest.raises(ValueError, match="one optimizer"):
        kt.PPO().compile(optimizer="adam", value_optimizer="adam")


def test_fit_arguments():
    agent = kt.PPO(n_steps=8, batch_size=8)
    with pytest.raises(ValueError, match="total_timesteps"):
        agent.fit("CartPole-v1", 0, verbose=0)
    with pytest.raises(ValueError, match="verbose"):
        agent.fit("CartPole-v1", 8, verbose=3)


def test_inference_before_fit():
    with pytest.raises(ValueError, match="not been built"):
        kt.PPO().predict(np.zeros(4))


def test_other_keras_backend_is_refused():
    from keras_trust._backend import check_backend

    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        check_backend("jax")
    with pytest.raises(ImportError, match="KERAS_BACKEND=tensorflow"):
        check_backend("torch")
