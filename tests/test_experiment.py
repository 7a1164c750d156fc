"""Every group option runs a tiny job in-process; the untrained condition really is untrained."""

import pytest

from mirror_sweep.config import to_run_config
from mirror_sweep.run.experiment import run_experiment
from mirror_sweep.run.model import core_parameters
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


def test_population_and_causal_tables_and_their_switch():
    cfg = to_run_config(compose_config(["analysis.n_permutations=50"]))
    result = run_experiment(cfg)
    assert set(result.ablation["selection"]) == {"mirror", "anti", "random"}
    assert set(result.ablation["mode"]) == {"perform", "observe"}
    assert set(result.subset_decoding["selection"]) == {"mirror", "anti", "random"}
    for key in ("cka", "untrained_cka", "untrained_rsa_actions", "time_ablation_s",
                "ablation_mirror_mean_forward_loss_z", "ablation_random_zero_inverse_loss_delta"):
        assert key in result.summary, key
    off = run_experiment(to_run_config(compose_config(["analysis.n_permutations=50",
                                                      "ablation.enabled=false"])))
    assert off.ablation.empty and list(off.ablation.columns) == list(result.ablation.columns)
    assert not any(key.startswith("ablation_") for key in off.summary)
    # the ablation has its own seed stream: switching it off changes no other number
    assert {k: v for k, v in off.summary.items() if not k.startswith("time_")} == pytest.approx(
        {k: v for k, v in result.summary.items()
         if not k.startswith(("time_", "ablation_"))}, nan_ok=True)


def test_adding_the_ablation_stream_kept_the_other_seeds():
    import numpy as np

    from mirror_sweep.run.experiment import RunSeeds
    seeds = RunSeeds.from_seed(7)
    old = [int(c.generate_state(1)[0]) for c in np.random.SeedSequence(7).spawn(5)]
    assert [seeds.env, seeds.data, seeds.init, seeds.batches, seeds.analysis] == old


@pytest.mark.parametrize("overrides", [
    ["model.cell=lstm"], ["model.cell=rnn", "condition=separate_cores"],
    ["env.action_process=sticky", "env.stay_prob=0.5"], ["env.action_process=constant"],
    ["env.n_actions=2"],
])
def test_every_new_env_and_model_option_runs_a_tiny_job(overrides):
    cfg = to_run_config(compose_config([*overrides, "analysis.n_permutations=50"]))
    result = run_experiment(cfg)
    assert len(result.units) == cfg.model.hidden_size == 8
    assert result.activations["perform_hidden"].shape == (20, 12, 8)
    n_cores = 1 if cfg.model.shared_core else 2
    assert result.summary["n_core_parameters"] == n_cores * core_parameters(cfg.model.cell.value, 8)
    if cfg.env.action_process.value == "constant":
        actions = result.activations["perform_actions"]
        assert (actions == actions[:, :1]).all()
