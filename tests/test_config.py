"""Every option of every group composes into a valid run config; bad values fail by name."""


import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from mirror_sweep.config import (
    ActionProcess,
    Cell,
    ConfigError,
    Dynamics,
    Pairing,
    to_run_config,
)
from tests.conftest import GROUPS, compose_config, group_options


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_composes(group, option):
    cfg = to_run_config(compose_config([f"{group}={option}"]))
    assert cfg.model.hidden_size == 8  # TINY still applies on top of the option


def test_defaults_are_the_papers():
    full = to_run_config(compose_config(tiny=False))
    assert (full.seed, full.model.hidden_size, full.data.n_train, full.data.n_test) == (42, 96,
                                                                                    2000, 300)
    assert (full.train.epochs, full.train.batch_size, full.train.lr) == (20, 64, 1e-3)
    assert (full.env.sensory_dim, full.env.seq_len, full.env.decay) == (16, 12, 0.9)
    assert full.model.shared_core and full.env.dynamics is Dynamics.linear
    assert full.analysis.n_permutations == 10_000


def test_conditions_change_what_they_say():
    assert not to_run_config(compose_config(["condition=separate_cores"])).model.shared_core
    assert not to_run_config(compose_config(["condition=untrained"])).train.enabled
    assert to_run_config(compose_config(["condition=forward_only"])).objective.inverse_weight == 0
    cfg = to_run_config(compose_config(["condition=independent_train_pairing"]))
    assert (cfg.data_pairing.train, cfg.data_pairing.test) == (Pairing.independent,
                                                               Pairing.paired)


@pytest.mark.parametrize("override,key", [
    ("model.hidden_size=-5", "model.hidden_size"),
    ("data.n_train=0", "data.n_train"),
    ("analysis.alpha=1.5", "analysis.alpha"),
    ("analysis.decoding_test_fraction=-0.1", "analysis.decoding_test_fraction"),
    ("train.lr=0", "train.lr"),
    ("env.decay=1.0", "env.decay"),
    ("env.n_actions=1", "env.n_actions"),
    ("train.torch_threads=0", "train.torch_threads"),
])
def test_out_of_range_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        to_run_config(compose_config([override]))


def test_wrong_type_and_unknown_key_and_option_fail_at_composition():
    with pytest.raises((ValidationError, ConfigCompositionException), match="hidden_size"):
        compose_config(["model.hidden_size=abc"])
    with pytest.raises((ConfigKeyError, ConfigCompositionException), match="hiden_size"):
        compose_config(["model.hiden_size=3"])
    with pytest.raises(ConfigCompositionException, match="objective/nope"):
        compose_config(["objective=nope"])
    with pytest.raises((ValidationError, ConfigCompositionException), match="dynamics"):
        compose_config(["env.dynamics=chaotic"])


def config_hash(cfg) -> str:
    import yaml
    from omegaconf import OmegaConf

    from mirror_sweep.sweep.results import task_hash

    return task_hash(yaml.safe_load(OmegaConf.to_yaml(cfg)))


def test_config_hash_ignores_display_keys_only():
    base = config_hash(compose_config())
    assert config_hash(compose_config(["train.progress=true"])) == base
    assert config_hash(compose_config(["output.resume=never"])) == base
    assert config_hash(compose_config(["seed=1"])) != base


def test_env_and_model_options_compose_and_validate():
    cfg = to_run_config(compose_config(["env.action_process=sticky", "env.stay_prob=0.3",
                                        "model.cell=lstm", "env.n_actions=8"]))
    assert (cfg.env.action_process, cfg.env.stay_prob) == (ActionProcess.sticky, 0.3)
    assert (cfg.model.cell, cfg.env.n_actions) == (Cell.lstm, 8)
    full = to_run_config(compose_config(tiny=False))
    assert (full.env.action_process, full.model.cell, full.env.n_actions) == (
        ActionProcess.iid, Cell.gru, 4)
    with pytest.raises(ConfigError, match="env.stay_prob"):
        to_run_config(compose_config(["env.stay_prob=1.5"]))
    with pytest.raises((ValidationError, ConfigCompositionException), match="cell"):
        compose_config(["model.cell=transformer"])


def test_new_keys_at_their_default_keep_the_hash_of_runs_made_before_them():
    import yaml
    from omegaconf import OmegaConf

    from mirror_sweep.sweep.results import task_hash

    task = yaml.safe_load(OmegaConf.to_yaml(compose_config()))
    old = {**task, "env": {k: v for k, v in task["env"].items()
                           if k not in ("action_process", "stay_prob")},
           "model": {k: v for k, v in task["model"].items() if k != "cell"}}
    assert task_hash(old) == task_hash(task)
    for override in ["env.action_process=sticky", "env.stay_prob=0.5", "model.cell=lstm"]:
        assert config_hash(compose_config([override])) != task_hash(task), override
