"""Config validation: every user mistake is a ConfigError that names the key."""

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from conftest import CONFIGS, compose_only, make_config
from dlbasics.config import CHOICES, Config
from dlbasics.errors import ConfigError
from dlbasics.models.mlp import MLPConfig
from dlbasics.trainer import TrainerConfig


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
        (["schedule=step", "schedule.gamma=0"], "schedule.gamma"),
        (["seed=99999999999999999999"], "seed=99999999999999999999"),
        (["trainer.seed=-1"], "trainer.seed"),
        (["optim.lr=inf"], "optim.lr=inf"),
        (["data.val_size=1.5"], "data.val_size=1.5"),
        (["data.train_size=2.5"], "data.train_size=2.5"),
        (["model=perceptron", "act=tanh"], "act=tanh"),
        (["model=perceptron", "reg=l2"], "reg.l2"),
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


@pytest.mark.parametrize("group", CHOICES)
def test_each_choice_has_one_yaml_file_that_names_its_own_schema(group):
    # Adding a choice touches its module (schema and builder) and one YAML file.
    files = sorted((CONFIGS / group).glob("*.yaml"))
    assert [path.stem for path in files] == CHOICES[group].names()
    for path in files:
        defaults = OmegaConf.load(path).defaults
        assert f"/schema/{group}/{path.stem}@_here_" in defaults, path


def test_the_composed_config_holds_only_the_keys_that_apply():
    perceptron = OmegaConf.to_container(compose_only("model=perceptron", "optim=sgd"))
    assert perceptron["act"] is None and perceptron["reg"] is None
    assert set(perceptron["optim"]) == {"name", "lr", "weight_decay"}
    assert set(perceptron["schedule"]) == {"name"}
    mlp = OmegaConf.to_container(compose_only("optim=momentum", "schedule=cosine"))
    assert mlp["act"] == {"name": "relu"} and set(mlp["reg"]) == {"l1", "l2", "dropout"}
    assert set(mlp["optim"]) == {"name", "lr", "weight_decay", "momentum"}
    assert set(mlp["schedule"]) == {"name", "min_lr"}


def test_a_group_the_model_ignores_is_refused_only_when_set():
    assert make_config("model=perceptron").act is None
    assert make_config("model=perceptron", "reg=none").reg.l2 == 0  # changes nothing
    with pytest.raises(ConfigError, match=r"act=relu does not apply to model=perceptron"):
        make_config("model=perceptron", "act=relu")
    with pytest.raises(ConfigError, match=r"act=relu does not apply to model=rnn"):
        make_config("model=rnn", "data=seq_digits", "act=relu")
