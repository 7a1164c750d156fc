"""Every group option runs a tiny job in-process; the untrained condition really is untrained."""

import pytest

from mirror_sweep.config import to_run_config
from mirror_sweep.run.experiment import run_experiment
from tests.conftest import GROUPS, compose_config, group_options


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in group_options(g)])
def test_every_group_option_runs_a_tiny_job(group, option):
    cfg = to_run_config(compose_config([f"{group}={option}", "analysis.n_permutations=50"]))
    result = run_experiment(cfg)
    assert len(result.units) == cfg.model.hidden_size
    assert len(result.history) == (cfg.train.epochs if cfg.train.enabled else 0)
    assert result.activations["perform_hidden"].shape == (20, 12, 8)
    assert 0.0 <= result.summary["frac_abs_r_gt"] <= 1.0


def test_untrained_condition_equals_its_own_baseline():
    cfg = to_run_config(compose_config(["condition=untrained", "train.epochs=3"]))
    result = run_experiment(cfg)
    assert result.history.empty
    assert result.summary["frac_abs_r_gt"] == result.summary["untrained_frac_abs_r_gt"]
    assert (result.units["r"] - result.units["r_untrained"]).abs().max() < 1e-6
