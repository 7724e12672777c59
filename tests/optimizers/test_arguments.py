"""Keras optimizer arguments the curvature optimizers cannot honour are refused, and
configs (old ones with an unused `learning_rate` included) still load."""

import keras
import pytest

import keras_trust as kt
from keras_trust.optimizers.arguments import UNSUPPORTED

OPTIMIZERS = {
    "NaturalGradient": kt.optimizers.NaturalGradient,
    "TrustRegion": kt.optimizers.TrustRegion,
}
SET_VALUES = {
    "weight_decay": 0.01,
    "clipnorm": 1.0,
    "clipvalue": 0.5,
    "global_clipnorm": 1.0,
    "use_ema": True,
    "ema_momentum": 0.9,
    "ema_overwrite_frequency": 10,
    "gradient_accumulation_steps": 4,
    "loss_scale_factor": 128.0,
}


def test_every_unsupported_argument_has_a_case():
    assert sorted(SET_VALUES) == sorted(UNSUPPORTED)


@pytest.mark.parametrize("name", sorted(SET_VALUES))
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_unsupported_argument_raises_naming_it(optimizer, name):
    with pytest.raises(ValueError, match=rf"{optimizer} does not support {name}.*Received"):
        OPTIMIZERS[optimizer](**{name: SET_VALUES[name]})


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_arguments_at_their_off_values_are_accepted(optimizer):
    off = {name: value for name, (value, _) in UNSUPPORTED.items()}
    opt = OPTIMIZERS[optimizer](max_kl=0.02, **off)
    assert opt.max_kl == 0.02


def test_learning_rate_with_max_kl_raises():
    with pytest.raises(ValueError, match="learning_rate would be unused"):
        kt.optimizers.NaturalGradient(max_kl=0.01, learning_rate=0.1)
    with pytest.raises(ValueError, match="learning_rate would be unused"):
        kt.optimizers.TrustRegion(learning_rate=0.1)
    assert float(kt.optimizers.NaturalGradient(learning_rate=0.1).learning_rate) == pytest.approx(
        0.1
    )
    assert float(kt.optimizers.NaturalGradient().learning_rate) == pytest.approx(0.01)


@pytest.mark.parametrize(
    "opt, has_learning_rate",
    [
        (kt.optimizers.NaturalGradient(), True),
        (kt.optimizers.NaturalGradient(learning_rate=0.2, cg_iters=4), True),
        (kt.optimizers.NaturalGradient(max_kl=0.05, cg_damping=0.2), False),
        (kt.optimizers.TrustRegion(max_kl=0.02, backtrack_iters=3), False),
    ],
)
def test_config_round_trips_and_holds_learning_rate_only_where_used(opt, has_learning_rate):
    config = opt.get_config()
    assert ("learning_rate" in config) == has_learning_rate
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is type(opt)
    assert clone.get_config() == config


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_old_config_with_unused_learning_rate_loads(optimizer):
    # What get_config wrote before (and agents saved to .keras files hold): the base
    # keys at their defaults and a learning_rate that max_kl makes unused.
    config = OPTIMIZERS[optimizer](max_kl=0.03).get_config()
    config["learning_rate"] = 1.0 if optimizer == "TrustRegion" else 0.01
    clone = OPTIMIZERS[optimizer].from_config(config)
    assert clone.max_kl == 0.03
    assert "learning_rate" not in clone.get_config()
