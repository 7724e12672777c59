"""The candidates tried against rl-zoo's figures, by row: `bench_presets_zoo.py --variants`.

Each variant is a function of the shipped preset that returns the preset it trains with;
most are one of `zoo_settings`' pinned presets with a few entries replaced (`over`). The
comments say why each was tried; `presets_zoo.md` and `docs/benchmarks.md` what it gave.
Names stay once they have records: a record's `preset` must keep equalling its variant.
"""

from zoo_settings import (
    ACROBOT_PPO_BEFORE,
    ACROBOT_TRPO_8X256,
    GSDE4,
    HOPPER_TRPO_BEFORE,
    LUNAR_PPO_ZOO,
    LUNAR_TRPO_ZOO,
    LUNARC_TRPO_8X256,
    LUNARC_TRPO_ZOO,
    MUJOCO_PPO_PAPER,
    NORM,
    ZOO_MUJOCO_NET,
    over,
    pendulum_ppo_before,
    pendulum_trpo_before,
    pendulum_zoo_ppo,
    pendulum_zoo_trpo,
    zoo,
    zoo_halfcheetah_trpo,
)

# row: {variant: a function of the shipped preset giving the variant's preset}.
# "preset" (the shipped one) is implicit for every row; the others are rl-zoo's settings
# ("zoo") and the candidates tried against rl-zoo's figure.
VARIANTS = {
    "pendulum-ppo": {
        "before": pendulum_ppo_before(),
        "zoo": pendulum_zoo_ppo(),
        # rl-zoo's settings with its gSDE (`action_distribution="gsde"`).
        "zoo_sde": pendulum_zoo_ppo(GSDE4),
        "zoo_sde_nr": pendulum_zoo_ppo({"normalize_rewards": True, **GSDE4}),
        "preset_sde": pendulum_ppo_before(GSDE4),
        "zoo_sde_no": pendulum_zoo_ppo({"normalize_observations": True, **GSDE4}),
        "zoo_sde_e20": pendulum_zoo_ppo({"epochs": 20, **GSDE4}),
        "zoo_sde_lin": pendulum_zoo_ppo(GSDE4, lr="lin_1e-3"),
        "preset_sde_ls-1": pendulum_ppo_before({**GSDE4, "log_std_init": -1.0}),
        "zoo_sde_ls-1": pendulum_zoo_ppo({"log_std_init": -1.0, **GSDE4}),
        "preset_sde_f8": pendulum_ppo_before({**GSDE4, "sde_sample_freq": 8}),
        "8x256": pendulum_ppo_before({"n_envs": 8, "n_steps": 256, "batch_size": 256}),
        "lin_lr": pendulum_ppo_before(optimizer={"learning_rate": "lin_1e-3"}),
        "8x256_lin": pendulum_ppo_before(
            {"n_envs": 8, "n_steps": 256, "batch_size": 256}, {"learning_rate": "lin_1e-3"}
        ),
        "8x256_b64": pendulum_ppo_before({"n_envs": 8, "n_steps": 256, "batch_size": 64}),
        "8x256_ls": pendulum_ppo_before(
            {"n_envs": 8, "n_steps": 256, "batch_size": 256, "log_std_init": -0.5}
        ),
    },
    "pendulum-trpo": {
        "before": pendulum_trpo_before(),
        "zoo": pendulum_zoo_trpo(),
        "zoo_sde": pendulum_zoo_trpo(GSDE4),
        "preset_sde": pendulum_trpo_before(GSDE4),
        "kl03_sde": pendulum_trpo_before(GSDE4, {"max_kl": 0.03}),
        "kl05_sde": pendulum_trpo_before(GSDE4, {"max_kl": 0.05}),
        "zoo_sde_ls-1": pendulum_zoo_trpo({"log_std_init": -1.0, **GSDE4}),
        "8x256_kl03_sde": pendulum_trpo_before(
            {"n_envs": 8, "n_steps": 256, **GSDE4}, {"max_kl": 0.03}
        ),
        "8x256": pendulum_trpo_before({"n_envs": 8, "n_steps": 256}),
        "kl03": pendulum_trpo_before(optimizer={"max_kl": 0.03}),
        "8x256_kl03": pendulum_trpo_before({"n_envs": 8, "n_steps": 256}, {"max_kl": 0.03}),
    },
    "acrobot-trpo": {
        "zoo": lambda p: zoo("trpo", {"n_envs": 2, "n_steps": 1024, **NORM}),
        "8x256": over(base=ACROBOT_TRPO_8X256),
        "kl03": over({"n_envs": 16}, {"max_kl": 0.03}, base=ACROBOT_TRPO_8X256),
        "before": over({"n_envs": 16}, base=ACROBOT_TRPO_8X256),
        "zoo_kl02": lambda p: zoo("trpo", {"n_envs": 2, "n_steps": 1024, **NORM}, {"max_kl": 0.02}),
        "zoo_gae94": lambda p: zoo(
            "trpo", {"n_envs": 2, "n_steps": 1024, "gae_lambda": 0.94, **NORM}
        ),
        "8x256_nr": over({"normalize_rewards": True}, base=ACROBOT_TRPO_8X256),
    },
    "acrobot-ppo": {
        "before": over(base=ACROBOT_PPO_BEFORE),
        "zoo": lambda p: zoo(
            "ppo", {"n_envs": 16, "n_steps": 256, "gae_lambda": 0.94, "epochs": 4, **NORM}
        ),
    },
    "mcc-ppo": {
        # batch_size 256 > the 8-step rollout: SB3 then takes the whole rollout as one batch.
        "zoo": lambda p: zoo(
            "ppo",
            {
                "n_envs": 1,
                "n_steps": 8,
                "batch_size": 8,
                "gamma": 0.9999,
                "gae_lambda": 0.9,
                "ent_coef": 0.00429,
                "clip_ratio": 0.1,
                "max_grad_norm": 5.0,
                "vf_coef": 0.19,
                "log_std_init": -3.29,
                **NORM,
            },
            {"learning_rate": 7.77e-5},
        ),
        "before": over(
            {"n_envs": 16, "n_steps": 512, "batch_size": 512, "gamma": 0.999},
            {"learning_rate": 3e-4},
        ),
        # Without gSDE's state-dependent noise, exploration is a wide Gaussian's.
        "4x256_std": over(
            {"n_envs": 4, "n_steps": 256, "batch_size": 256, "gamma": 0.99, "log_std_init": 1.0},
            {"learning_rate": 1e-3},
        ),
        "4x256": over(
            {"n_envs": 4, "n_steps": 256, "batch_size": 256, "gamma": 0.99},
            {"learning_rate": 1e-3},
        ),
    },
    "halfcheetah-ppo": {
        "zoo": lambda p: zoo(
            "ppo",
            {
                "n_envs": 1,
                "n_steps": 512,
                "batch_size": 64,
                "gamma": 0.98,
                "gae_lambda": 0.92,
                "ent_coef": 0.000401762,
                "clip_ratio": 0.1,
                "epochs": 20,
                "max_grad_norm": 0.8,
                "vf_coef": 0.58096,
                **ZOO_MUJOCO_NET,
                **NORM,
            },
            {"learning_rate": 2.0633e-5},
        ),
    },
    "walker-ppo": {
        "paper": over(base=MUJOCO_PPO_PAPER),
        "zoo": lambda p: zoo(
            "ppo",
            {
                "n_envs": 1,
                "n_steps": 512,
                "batch_size": 32,
                "gamma": 0.99,
                "gae_lambda": 0.95,
                "ent_coef": 0.000585045,
                "clip_ratio": 0.1,
                "epochs": 20,
                "max_grad_norm": 1.0,
                "vf_coef": 0.871923,
                **NORM,
            },
            {"learning_rate": 5.05041e-5},
        ),
        # rl-zoo's Walker2d settings with its HalfCheetah/Hopper network (ReLU 256-256,
        # log-std -2).
        "zoo_relu": lambda p: over(ZOO_MUJOCO_NET)(VARIANTS["walker-ppo"]["zoo"](p)),
    },
    "halfcheetah-trpo": {"zoo": zoo_halfcheetah_trpo},
    "lunar-trpo": {
        "zoo": over(base=LUNAR_TRPO_ZOO),
        "kl02": over(optimizer={"max_kl": 0.02}, base=LUNAR_TRPO_ZOO),
        "g999": over({"gamma": 0.999}, base=LUNAR_TRPO_ZOO),
        "norm": over(NORM, base=LUNAR_TRPO_ZOO),
        # More envs: more (and less correlated) episodes in each update's advantages.
        "8x128": over({"n_envs": 8, "n_steps": 128}, base=LUNAR_TRPO_ZOO),
        "8x256": over({"n_envs": 8, "n_steps": 256}, base=LUNAR_TRPO_ZOO),
        # The two best of the above together: more episode starts and a longer horizon.
        "8x256_g999": over({"n_envs": 8, "n_steps": 256, "gamma": 0.999}, base=LUNAR_TRPO_ZOO),
        "4x512_g999": over({"n_envs": 4, "n_steps": 512, "gamma": 0.999}, base=LUNAR_TRPO_ZOO),
        # An entropy bonus (TRPO's `ent_coef`, PPO's LunarLander value) against the hover.
        "4x512_g999_ent": over(
            {"n_envs": 4, "n_steps": 512, "gamma": 0.999, "ent_coef": 0.01}, base=LUNAR_TRPO_ZOO
        ),
    },
    "lunarc-ppo": {
        "zoo": over(base=LUNAR_PPO_ZOO),
        "norm": over(NORM, base=LUNAR_PPO_ZOO),
    },
    "lunarc-trpo": {
        "zoo": over(base=LUNARC_TRPO_ZOO),
        "kl04": over(optimizer={"max_kl": 0.04}, base=LUNARC_TRPO_ZOO),
        "g999": over({"gamma": 0.999}, base=LUNARC_TRPO_ZOO),
        "sde": over(GSDE4, base=LUNARC_TRPO_ZOO),
        "8x256": over(base=LUNARC_TRPO_8X256),
        "8x256_sde": over({"n_envs": 8, "n_steps": 256, **GSDE4}, base=LUNARC_TRPO_ZOO),
        # From the shipped preset (8 x 256, pinned): a longer horizon, an entropy bonus.
        "8x256_g999": over({"gamma": 0.999}, base=LUNARC_TRPO_8X256),
        "8x256_ent": over({"ent_coef": 0.01}, base=LUNARC_TRPO_8X256),
        # A narrower start (std 0.61, 0.37), as on Hopper; more, shorter rollouts; GAE 0.98.
        "8x256_ls-0.5": over({"log_std_init": -0.5}, base=LUNARC_TRPO_8X256),
        "8x256_ls-1": over({"log_std_init": -1.0}, base=LUNARC_TRPO_8X256),
        "16x128": over({"n_envs": 16, "n_steps": 128}, base=LUNARC_TRPO_8X256),
        "8x256_gae98": over({"gae_lambda": 0.98}, base=LUNARC_TRPO_8X256),
        # A tanh-squashed Gaussian: actions inside the box, where a Gaussian's are clipped.
        "8x256_squash": over({"action_distribution": "squashed_gaussian"}, base=LUNARC_TRPO_8X256),
        # Damping 0.02 (0.01 per dimension, rl-zoo's discrete-lander value); 30 critic passes.
        "8x256_d02": over(optimizer={"cg_damping": 0.02}, base=LUNARC_TRPO_8X256),
        "8x256_v30": over({"value_epochs": 30}, base=LUNARC_TRPO_8X256),
        # The radius decaying linearly to 0 over the run, from the preset's 0.02 and from
        # twice it (the preset's on average).
        "8x256_lin0.02": over(optimizer={"max_kl": "lin_0.02"}, base=LUNARC_TRPO_8X256),
        "8x256_lin0.04": over(optimizer={"max_kl": "lin_0.04"}, base=LUNARC_TRPO_8X256),
        # Observations normalized, rewards not (the lander's +-100 ends then keep their
        # scale against the shaping rewards); and 128-128 tanh networks.
        "8x256_obsnorm": over({"normalize_rewards": False}, base=LUNARC_TRPO_8X256),
        "8x256_h128": over({"hidden_sizes": [128, 128]}, base=LUNARC_TRPO_8X256),
        # gSDE as on Hopper (resampled every 4 steps, log-std -2; `8x256_sde` started at 0).
        "8x256_gsde4_ls-2": over({**GSDE4, "log_std_init": -2.0}, base=LUNARC_TRPO_8X256),
        "8x256_gsde4_ls-1": over({**GSDE4, "log_std_init": -1.0}, base=LUNARC_TRPO_8X256),
        "8x256_gsde4_ls-3": over({**GSDE4, "log_std_init": -3.0}, base=LUNARC_TRPO_8X256),
        # Session 27, seeds 0-2 each: the radius either side of 0.02, ReLU torsos (rl-zoo's
        # PyBullet TRPO), CG to 25 iterations (the MuJoCo rows'), a slower or finer critic,
        # and 4 envs x 512 (between rl-zoo's 2 x 1024 and the preset's 8 x 256).
        "8x256_kl03": over(optimizer={"max_kl": 0.03}, base=LUNARC_TRPO_8X256),
        "8x256_kl015": over(optimizer={"max_kl": 0.015}, base=LUNARC_TRPO_8X256),
        "8x256_relu": over({"activation": "relu"}, base=LUNARC_TRPO_8X256),
        "8x256_cg25": over(optimizer={"cg_iters": 25}, base=LUNARC_TRPO_8X256),
        "8x256_vlr3e-4": over(value_optimizer={"learning_rate": 3e-4}, base=LUNARC_TRPO_8X256),
        "8x256_b64": over({"batch_size": 64}, base=LUNARC_TRPO_8X256),
        "4x512": over({"n_envs": 4, "n_steps": 512}, base=LUNARC_TRPO_8X256),
        # Session 28, seeds 0-2 each: half the data per update (1024 steps, twice the
        # updates) in two shapes; a coarser critic minibatch (b64 scored below) and fewer
        # critic passes; and the two best single changes so far together.
        "8x128": over({"n_envs": 8, "n_steps": 128}, base=LUNARC_TRPO_8X256),
        "4x256": over({"n_envs": 4, "n_steps": 256}, base=LUNARC_TRPO_8X256),
        "8x256_b256": over({"batch_size": 256}, base=LUNARC_TRPO_8X256),
        "8x256_v10": over({"value_epochs": 10}, base=LUNARC_TRPO_8X256),
        "8x256_obsnorm_ls-0.5": over(
            {"normalize_rewards": False, "log_std_init": -0.5}, base=LUNARC_TRPO_8X256
        ),
        # The shipped preset again (= `8x256`) on session 28's install and machine: the
        # Hopper control showed that one seed's run differs between machines.
        "8x256_rerun28": over(base=LUNARC_TRPO_8X256),
        # Three earlier candidates again on this install, as the preset's rerun scored 40
        # below its first six seeds: rl-zoo's 2 x 1024, and the two closest to the preset.
        "zoo_rerun28": over(base=LUNARC_TRPO_ZOO),
        "8x256_ls-0.5_rerun28": over({"log_std_init": -0.5}, base=LUNARC_TRPO_8X256),
        "8x256_obsnorm_rerun28": over({"normalize_rewards": False}, base=LUNARC_TRPO_8X256),
        # The two that held up here (log-std -0.5; the critic on minibatches of 256) together.
        "8x256_ls-0.5_b256": over(
            {"log_std_init": -0.5, "batch_size": 256}, base=LUNARC_TRPO_8X256
        ),
        # The shipped preset since session 28 (= `8x256_b256`, chosen on an AMD EPYC) on
        # session 29's Intel Xeon.
        "8x256_b256_rerun29": over({"batch_size": 256}, base=LUNARC_TRPO_8X256),
        # The previous preset on the same Xeon: does a seed repeat its first Xeon run?
        "8x256_rerun29": over(base=LUNARC_TRPO_8X256),
        # Session 30, from the shipped preset: a shorter credit horizon, either in GAE's
        # lambda (0.9) or in gamma (0.98): neither had been tried below the preset's 0.95 / 0.99.
        "b256_gae90": over({"batch_size": 256, "gae_lambda": 0.9}, base=LUNARC_TRPO_8X256),
        "b256_g98": over({"batch_size": 256, "gamma": 0.98}, base=LUNARC_TRPO_8X256),
    },
    "hopper-trpo": {
        "before": over(base=HOPPER_TRPO_BEFORE),
        # rl-zoo's tuned PPO Hopper horizon (gamma 0.999, GAE 0.99) with its TRPO settings.
        "g999": over({"gamma": 0.999, "gae_lambda": 0.99}, base=HOPPER_TRPO_BEFORE),
        # Twice the data per update (4 envs x 1024): half the updates, less noisy ones.
        "4x1024": over({"n_envs": 4}, base=HOPPER_TRPO_BEFORE),
        # A narrower start (std 0.37): the KL budget then goes less to shrinking the std.
        "ls-1": over({"log_std_init": -1.0}, base=HOPPER_TRPO_BEFORE),
        # Narrower still (std 0.22, 0.14; rl-zoo's MuJoCo PPO starts at -2).
        "ls-1.5": over({"log_std_init": -1.5}, base=HOPPER_TRPO_BEFORE),
        "ls-2": over({"log_std_init": -2.0}, base=HOPPER_TRPO_BEFORE),
        # With an entropy bonus against the std shrinking to a collapse (ls-1.5 seed 2).
        "ls-1.5_ent": over({"log_std_init": -1.5, "ent_coef": 0.01}, base=HOPPER_TRPO_BEFORE),
        "ls-1_ent": over({"log_std_init": -1.0, "ent_coef": 0.01}, base=HOPPER_TRPO_BEFORE),
        # The radius decaying linearly to 0 over the run (TrustRegion's max_kl schedule):
        # large early steps, small ones late, where the fixed radius keeps the policy
        # moving. From 0.03 (half the preset's radius on average) and from 0.06 (the
        # preset's on average).
        "ls-1_lin0.03": over(
            {"log_std_init": -1.0}, {"max_kl": "lin_0.03"}, base=HOPPER_TRPO_BEFORE
        ),
        "ls-1_lin0.06": over(
            {"log_std_init": -1.0}, {"max_kl": "lin_0.06"}, base=HOPPER_TRPO_BEFORE
        ),
        # Both decays scored below the fixed radius, and 4 x 1024 (half the updates) far
        # below: more movement, by a larger radius or by twice the updates on half the data.
        "ls-1_kl045": over({"log_std_init": -1.0}, {"max_kl": 0.045}, base=HOPPER_TRPO_BEFORE),
        "ls-1_2x512": over({"log_std_init": -1.0, "n_steps": 512}, base=HOPPER_TRPO_BEFORE),
        # On the preset's two weaker seeds (1, 3) first: 10 critic passes (sb3-contrib's
        # default) rather than 20, and GAE 0.98 (less bias in the advantages).
        "ls-1_v10": over({"log_std_init": -1.0, "value_epochs": 10}, base=HOPPER_TRPO_BEFORE),
        "ls-1_gae98": over({"log_std_init": -1.0, "gae_lambda": 0.98}, base=HOPPER_TRPO_BEFORE),
        # gSDE (rl-zoo's PyBullet settings: noise resampled every 4 steps, log-std -2):
        # exploration correlated over steps rather than independent per step.
        "gsde4_ls-2": over({**GSDE4, "log_std_init": -2.0}, base=HOPPER_TRPO_BEFORE),
        # The two ideas level with the preset by different means together: gSDE (the best
        # single run) and 10 critic passes (the narrowest spread).
        "gsde4_ls-2_v10": over(
            {**GSDE4, "log_std_init": -2.0, "value_epochs": 10}, base=HOPPER_TRPO_BEFORE
        ),
        # ReLU 256-256 torsos for both networks (rl-zoo's PyBullet TRPO architecture),
        # from the preset's std: a larger critic against the weaker seeds' plateaus.
        "ls-1_relu256": over(
            {"log_std_init": -1.0, "hidden_sizes": [256, 256], "activation": "relu"},
            base=HOPPER_TRPO_BEFORE,
        ),
        # Session 28, on the shipped preset's weakest seed (1) first: a smaller radius
        # (0.045 and the decays scored lower), CG damping 0.1 (a closer natural gradient
        # than 0.3), gSDE from the preset's std, and observations normalized, rewards not.
        "ls-1_kl02": over({"log_std_init": -1.0}, {"max_kl": 0.02}, base=HOPPER_TRPO_BEFORE),
        "ls-1_d01": over({"log_std_init": -1.0}, {"cg_damping": 0.1}, base=HOPPER_TRPO_BEFORE),
        "gsde4_ls-1": over({**GSDE4, "log_std_init": -1.0}, base=HOPPER_TRPO_BEFORE),
        "ls-1_obsnorm": over(
            {"log_std_init": -1.0, "normalize_rewards": False}, base=HOPPER_TRPO_BEFORE
        ),
        # Either side of 0.02, the radius that scored highest of those four.
        "ls-1_kl015": over({"log_std_init": -1.0}, {"max_kl": 0.015}, base=HOPPER_TRPO_BEFORE),
        "ls-1_kl025": over({"log_std_init": -1.0}, {"max_kl": 0.025}, base=HOPPER_TRPO_BEFORE),
        # The shipped preset again (= `ls-1`) on session 28's install (MuJoCo 4.0.0,
        # gymnasium 1.4.0, TensorFlow 2.21): the control for the candidates run on it.
        "ls-1_rerun28": over({"log_std_init": -1.0}, base=HOPPER_TRPO_BEFORE),
        # Session 30: halfway between rl-zoo's start (std 1: the higher ceiling, and
        # collapses) and the preset's (std 0.37: no collapse, a lower ceiling).
        "ls-0.5": over({"log_std_init": -0.5}, base=HOPPER_TRPO_BEFORE),
    },
    "mcc-trpo": {
        "zoo": lambda p: zoo("trpo", {"n_envs": 2, "n_steps": 2048, **NORM}),
        "4x512_std": over({"n_envs": 4, "n_steps": 512, "log_std_init": 1.0}),
        "4x512": over({"n_envs": 4, "n_steps": 512, "log_std_init": 0.0}),
        # The preset before this comparison.
        "before": lambda p: {
            **p,
            "agent": {**{k: v for k, v in p["agent"].items() if k != "log_std_init"}, "n_envs": 16},
        },
    },
}
