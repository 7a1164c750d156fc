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
    if objective.extra_terms:  # the readout probes: test_readout_sharing_objectives
        pytest.skip("an objective with extra terms has no pre-registry reference")
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


def batch_states():
    model, train_set, _, _ = small_setup()
    batch = to_tensors(train_set)
    perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
    return model, batch, perform, observe


def test_readout_sharing_objectives_train_one_head_in_both_modes():
    model, batch, perform, observe = batch_states()
    f = F.mse_loss(model.sensory_head(perform), batch["perform_sensory"])
    i = F.cross_entropy(model.action_head(observe).flatten(0, 1),
                        batch["observe_actions"].flatten())
    a = F.cross_entropy(model.action_head(perform).flatten(0, 1),
                        batch["perform_actions"].flatten())
    s = F.mse_loss(model.sensory_head(observe), batch["observe_sensory"])
    for name, want in [("action_head_both", f + 0.5 * i + 0.5 * a),
                       ("sensory_head_both", 0.5 * f + 0.5 * s + i)]:
        objective = to_run_config(compose_config([f"condition={name}"])).objective
        got = objectives.objective_losses(model, perform, observe, batch, objective, None)
        torch.testing.assert_close(got["total"], want)
        assert set(got) == {"forward", "inverse", "total", *objective.extra_terms}


def test_both_probes_together_are_the_shared_readout():
    # shared_readout is both heads in both modes: the two registry terms at the same weights
    # give the same loss and the same gradients (up to float rounding)
    model, batch, perform, observe = batch_states()
    shared = to_run_config(compose_config(["condition=shared_readout"])).objective
    both = dataclasses.replace(shared, shared_readout=False, forward_weight=0.5,
                               inverse_weight=0.5,
                               extra_terms={"action_head_on_perform": 0.5,
                                            "sensory_head_on_observe": 0.5})
    totals = []
    for objective in (shared, both):
        model.zero_grad()
        perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
        total = objectives.objective_losses(model, perform, observe, batch, objective,
                                            None)["total"]
        total.backward()
        totals.append((total.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(totals[0][0], totals[1][0])
    for g0, g1 in zip(totals[0][1], totals[1][1]):
        torch.testing.assert_close(g0, g1)
