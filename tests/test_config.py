"""Config validation: every user mistake is a ConfigError that names the key."""

import pytest
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from conftest import make_config
from dlbasics.config import Config, MLPConfig, TrainerConfig
from dlbasics.errors import ConfigError


def test_defaults_are_an_mlp_on_digits_with_minibatch_adam():
    cfg = make_config()
    assert isinstance(cfg, Config)
    assert isinstance(cfg.model, MLPConfig)
    assert (cfg.data.name, cfg.optim.name, cfg.trainer.mode, cfg.act.name) == (
        "digits",
        "adam",
        "minibatch",
        "relu",
    )
    assert cfg.trainer.seed == cfg.data.seed == cfg.seed == 0


def test_top_level_seed_reaches_data_and_trainer():
    cfg = make_config("seed=7")
    assert cfg.data.seed == cfg.trainer.seed == 7


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["optim.lr=-1"], "optim.lr"),
        (["trainer.batch_size=0"], "trainer.batch_size"),
        (["reg.dropout=1.5"], "reg.dropout"),
        (["reg=l2", "reg.l2=-0.1"], "reg.l2"),
        (["trainer.epochs=0"], "trainer.epochs"),
        (["trainer=sgd", "trainer.batch_size=8"], "trainer.batch_size"),
        (["trainer=batch", "trainer.batch_size=8"], "trainer.batch_size"),
        (["trainer.early_stopping.monitor=val_accuracy"], "trainer.early_stopping.monitor"),
        (["optim.schedule=linear"], "optim.schedule"),
        (["data.val_size=0.6", "data.test_size=0.5"], "data.val_size"),
        (["+model.depth=3"], "model.depth"),
        (["+optim._target_=os.system"], "optim._target_"),
        (["trainer.threads=0"], "trainer.threads"),
    ],
)
def test_bad_values_name_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        make_config(*overrides)


def test_unknown_key_lists_what_is_accepted():
    with pytest.raises(ConfigError) as error:
        make_config("+trainer.epoch=3")
    assert "trainer.epoch" in str(error.value) and "epochs" in str(error.value)


@pytest.mark.parametrize("override", ["optim.lrr=0.1", "optim.lr=fast", "model=mlpp"])
def test_hydra_refuses_unknown_keys_wrong_types_and_choices(override):
    with pytest.raises((HydraException, OmegaConfBaseException)):
        make_config(override)


def test_trainer_modes_fix_the_batch_size():
    assert make_config("trainer=batch").trainer.batch_size is None
    assert make_config("trainer=sgd").trainer.batch_size == 1
    assert make_config("trainer=minibatch", "trainer.batch_size=32").trainer.batch_size == 32


def test_regularisers_combine():
    cfg = make_config("reg=[l2,dropout]")
    assert (cfg.reg.l2, cfg.reg.dropout) == (1e-4, 0.5)
    cfg = make_config("reg=l2", "reg.dropout=0.2")
    assert (cfg.reg.l1, cfg.reg.l2, cfg.reg.dropout) == (0.0, 1e-4, 0.2)


def test_schema_defaults_are_valid_on_their_own():
    TrainerConfig()  # __post_init__ runs on the defaults too
    with pytest.raises(ConfigError, match="trainer.grad_clip"):
        TrainerConfig(grad_clip=-1.0)
