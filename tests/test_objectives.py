"""The registry of loss terms: every shipped objective against a plain reference of its losses,
and a new objective added with one registry entry and one YAML."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mirror_sweep.config import CONFIG_DIR, to_run_config
from mirror_sweep.run import objectives
from mirror_sweep.run.experiment import run_experiment
from mirror_sweep.run.train import history_columns, to_tensors
from tests.conftest import compose_config, small_setup

OBJECTIVE_YAMLS = sorted(p.stem for p in (Path(CONFIG_DIR) / "objective").glob("*.yaml"))


def reference_losses(model, perform, observe, batch, objective, generator):
    """The objectives as one plain if-chain (how they were written before the registry)."""
    predicted_sensory = model.sensory_head(perform)
    logits = model.action_head(observe)
    targets = batch["observe_actions"]
    if objective.shuffle_observe_labels:
        targets = objectives.shuffle_across_sequences(targets, logits.shape[-1], generator)
    forward = F.mse_loss(predicted_sensory, batch["perform_sensory"])
    inverse = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    if objective.shared_readout:
        forward = 0.5 * (forward + F.mse_loss(model.sensory_head(observe),
                                              batch["observe_sensory"]))
        inverse = 0.5 * (inverse + F.cross_entropy(
            model.action_head(perform).flatten(0, 1), batch["perform_actions"].flatten()))
    total = objective.forward_weight * forward + objective.inverse_weight * inverse
    return {"forward": forward, "inverse": inverse, "total": total}


@pytest.mark.parametrize("name", OBJECTIVE_YAMLS)
def test_every_shipped_objective_is_bit_identical_to_the_plain_reference(name):
    objective = to_run_config(compose_config([f"objective={name}"])).objective
    objective = dataclasses.replace(objective, forward_weight=0.7)  # a weight that is not 1
    model, train_set, _, _ = small_setup()
    batch = to_tensors(train_set)
    perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
    got = objectives.objective_losses(model, perform, observe, batch, objective,
                                      torch.Generator().manual_seed(3))
    want = reference_losses(model, perform, observe, batch, objective,
                            torch.Generator().manual_seed(3))
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_an_unregistered_extra_term_is_named():
    objective = dataclasses.replace(objectives.ObjectiveConfig(), extra_terms={"nope": 1.0})
    with pytest.raises(ValueError, match="objective.extra_terms.*'nope'"):
        objectives.active_terms(objective)


@pytest.fixture
def toy_term(monkeypatch):
    """A toy loss term (mean squared perform activation), registered for one test."""
    monkeypatch.setattr(objectives, "LOSS_TERMS", dict(objectives.LOSS_TERMS))
    return objectives.register(
        "toy", lambda model, perform, observe, batch, objective, generator:
        perform.pow(2).mean())


def test_a_new_objective_is_one_registry_entry_and_one_yaml(toy_term, tmp_path):
    (tmp_path / "objective").mkdir()
    (tmp_path / "objective" / "toy.yaml").write_text(
        "defaults:\n  - bidirectional\n  - _self_\nextra_terms:\n  toy: 0.5\n")
    cfg = to_run_config(compose_config(["objective=toy", f"hydra.searchpath=[file://{tmp_path}]"]))
    assert cfg.objective.extra_terms == {"toy": 0.5}
    model, train_set, _, _ = small_setup()
    batch = to_tensors(train_set)
    perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
    losses = objectives.objective_losses(model, perform, observe, batch, cfg.objective, None)
    torch.testing.assert_close(losses["total"], losses["forward"] + losses["inverse"]
                               + 0.5 * perform.pow(2).mean())
    result = run_experiment(cfg)
    assert list(result.history.columns) == history_columns(cfg.objective)
    assert {"train_toy_loss", "test_toy_loss"} <= set(result.history.columns)
    assert "final_train_toy_loss" in result.summary
