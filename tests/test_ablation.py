"""Causal ablation: the step-wise core against the module, clamping, and planted necessary units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from mirror_sweep.config import ObjectiveConfig
from mirror_sweep.run.ablation import (
    ABLATION_COLUMNS,
    ablation_summary,
    ablation_table,
    core_steps,
    first_sequences,
    silenced_metrics,
)
from mirror_sweep.run.env import SequenceSet
from mirror_sweep.run.model import MirrorGRU
from mirror_sweep.run.train import collect_hidden, evaluate, to_tensors

N, T, H, K, S = 30, 7, 12, 4, 5


def random_set(seed: int) -> SequenceSet:
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, K, (N, T))
    sensory = rng.standard_normal((N, T, S)).astype(np.float32)
    return SequenceSet(actions, sensory, sensory, actions)


@pytest.mark.parametrize("core", [nn.GRU(6, H, batch_first=True),
                                  nn.LSTM(6, H, batch_first=True),
                                  nn.RNN(6, H, batch_first=True)], ids=["gru", "lstm", "rnn"])
def test_step_wise_core_matches_the_module_and_clamps_units(core):
    torch.manual_seed(0)
    x = torch.randn(N, T, 6)
    keep = torch.ones(3, H)
    keep[1, [2, 5]] = 0.0
    keep[2, [0]] = 0.0
    fill = torch.full((3, H), 0.25)
    with torch.no_grad():
        states = core_steps(core, x, keep, fill)
        reference = core(x)[0]
    assert states.shape == (3, N, T, H)
    torch.testing.assert_close(states[0], reference, atol=1e-6, rtol=1e-5)
    assert (states[1][..., [2, 5]] == 0.25).all() and (states[2][..., 0] == 0.25).all()
    assert not torch.allclose(states[1], reference)  # silencing changes the other units


def test_relu_rnn_is_refused():
    with pytest.raises(ValueError, match="ablation"):
        core_steps(nn.RNN(3, 4, nonlinearity="relu", batch_first=True), torch.zeros(2, 3, 3),
                   torch.ones(1, 4), torch.zeros(1, 4))


@pytest.mark.parametrize("shared", [True, False])
def test_no_silencing_reproduces_evaluate(shared):
    torch.manual_seed(1)
    model = MirrorGRU(K, S, H, shared_core=shared)
    data = random_set(2)
    ones, zeros = torch.ones(1, H), torch.zeros(1, H)
    reference = evaluate(model, to_tensors(data), ObjectiveConfig())
    perform = silenced_metrics(model, data, "perform", ones, zeros)
    observe = silenced_metrics(model, data, "observe", ones, zeros)
    assert perform["forward_loss"][0] == pytest.approx(reference["forward_loss"], rel=1e-5)
    assert observe["inverse_loss"][0] == pytest.approx(reference["inverse_loss"], rel=1e-5)
    assert observe["observe_accuracy"][0] == pytest.approx(reference["observe_accuracy"])


def planted_model(h: int) -> tuple[MirrorGRU, SequenceSet]:
    """A model whose sensory prediction and action read-out use units 0-2 only: units 0-2 carry
    the input straight through (large input weights, no recurrence), the heads read only them.
    Random 3-unit sets hit one of them in 28% of draws at H = 30."""
    torch.manual_seed(3)
    model = MirrorGRU(K, S, h, shared_core=True)
    core = model.perform_core
    with torch.no_grad():
        core.weight_hh_l0.zero_()
        core.weight_ih_l0[2 * h: 2 * h + 3].mul_(20.0)  # candidate gate of units 0-2
        model.sensory_head.weight[:, 3:] = 0.0
        model.action_head.weight[:, 3:] = 0.0
        model.action_head.weight[:, :3] = 10 * torch.randn(K, 3)
    rng = np.random.default_rng(4)
    actions = rng.integers(0, K, (60, T))
    # targets the model predicts from units 0-2: its own unablated outputs in each mode
    with torch.no_grad():
        hidden = model.perform_core(model.action_embedding(torch.from_numpy(actions)))[0]
        sensory = model.sensory_head(hidden)
        observed = model.observe_core(model.sensory_projection(sensory))[0]
        model.action_head.bias.copy_(-model.action_head(observed).mean((0, 1)))  # all classes
        labels = model.action_head(observed).argmax(-1)
    return model, SequenceSet(actions, sensory.numpy(), sensory.numpy(), labels.numpy())


def test_silencing_planted_necessary_units_hurts_more_than_random_units():
    h = 30
    model, data = planted_model(h)
    perform, observe = collect_hidden(model, data)
    r = np.full(h, 0.1)
    r[:3] = [0.9, 0.8, 0.7]  # the planted necessary units rank as the top mirror units
    r[-3:] = [-0.9, -0.8, -0.7]
    means = {"perform": perform.mean(axis=(0, 1)), "observe": observe.mean(axis=(0, 1))}
    table = ablation_table(model, data, r, means, fractions=[3 / h], n_random=20,
                           rng=np.random.default_rng(0))
    assert list(table.columns) == ABLATION_COLUMNS
    assert len(table) == 3 * 2 * 3  # (forward, inverse, accuracy) x clamps x selections
    rows = table.set_index(["metric", "clamp", "selection"])
    for clamp in ("zero", "mean"):
        mirror = rows.loc[("forward_loss", clamp, "mirror")]
        anti = rows.loc[("forward_loss", clamp, "anti")]
        assert mirror["baseline"] == pytest.approx(0.0, abs=1e-10)  # targets = own predictions
        assert mirror["delta"] > 0 and mirror["z_vs_random"] > 2
        assert mirror["percentile_vs_random"] >= 0.9
        assert anti["delta"] == pytest.approx(0.0, abs=1e-7)  # units the heads never read
        accuracy = rows.loc[("observe_accuracy", clamp, "mirror")]
        assert accuracy["baseline"] == 1.0  # labels = own predictions
        assert accuracy["delta"] < accuracy["random_mean"] - 0.1
        assert accuracy["percentile_vs_random"] <= 0.2
    assert rows.loc[("forward_loss", "zero", "random"), "n_draws"] == 20
    # random sets are the reference: no comparison of them with themselves
    random_row = rows.loc[("forward_loss", "zero", "random")]
    assert np.isnan(random_row[["random_mean", "random_sd", "z_vs_random",
                                "percentile_vs_random"]].astype(float)).all()
    summary = ablation_summary(table, 3)
    assert summary["ablation_mirror_mean_forward_loss_z"] == rows.loc[
        ("forward_loss", "mean", "mirror"), "z_vs_random"]
    assert "ablation_random_zero_observe_accuracy_z" not in summary
    threaded = ablation_table(model, data, r, means, fractions=[3 / h], n_random=20,
                              rng=np.random.default_rng(0), n_threads=2)
    pd.testing.assert_frame_equal(threaded, table, check_exact=True)  # same table in 2 threads


def test_first_sequences_cuts_every_array():
    data = random_set(5)
    cut = first_sequences(data, 4)
    assert len(cut) == 4 and cut.observe_sensory.shape == (4, T, S)
    assert first_sequences(data, None) is data and first_sequences(data, 1000) is data
