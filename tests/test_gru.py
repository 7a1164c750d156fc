"""run/gru.py: the training pass's GRU computes nn.GRU's function and its exact gradients."""

from dataclasses import replace

import pytest
import torch
from torch import nn

from mirror_sweep.config import ObjectiveConfig, TrainConfig
from mirror_sweep.run.gru import GRURecurrence, gru_states
from mirror_sweep.run.model import MirrorGRU
from mirror_sweep.run.objectives import objective_losses
from mirror_sweep.run.train import train
from tests.conftest import small_setup


def _batch(batch=5, steps=7, n_actions=4, sensory_dim=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        "perform_actions": torch.randint(0, n_actions, (batch, steps), generator=generator),
        "perform_sensory": torch.randn(batch, steps, sensory_dim, generator=generator,
                                       dtype=torch.float64),
        "observe_sensory": torch.randn(batch, steps, sensory_dim, generator=generator,
                                       dtype=torch.float64),
        "observe_actions": torch.randint(0, n_actions, (batch, steps), generator=generator),
    }


@pytest.mark.parametrize("batch, steps, size", [(1, 1, 1), (3, 5, 4), (6, 12, 9)])
def test_recurrence_gives_nn_grus_states_and_gradients_in_float64(batch, steps, size):
    torch.manual_seed(batch + steps + size)
    core = nn.GRU(size, size, batch_first=True).double()
    x = torch.randn(batch, steps, size, dtype=torch.float64, requires_grad=True)
    expected, _ = core(x)
    gates = torch.nn.functional.linear(x.transpose(0, 1), core.weight_ih_l0, core.bias_ih_l0)
    states = gru_states(core, gates)
    assert states.shape == (batch, steps, size)
    assert torch.allclose(states, expected, rtol=0, atol=1e-13)
    upstream = torch.randn_like(expected)
    wrt = [x, *core.parameters()]
    for ours, torchs in zip(torch.autograd.grad(states, wrt, upstream),
                            torch.autograd.grad(expected, wrt, upstream)):
        assert torch.allclose(ours, torchs, rtol=0, atol=1e-12)


def test_recurrence_passes_gradcheck():
    torch.manual_seed(0)
    gates = torch.randn(4, 3, 15, dtype=torch.float64, requires_grad=True)
    w_hh = torch.randn(15, 5, dtype=torch.float64, requires_grad=True)
    b_hh = torch.randn(15, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(GRURecurrence.apply, (gates, w_hh, b_hh))


@pytest.mark.parametrize("shared", [True, False])
def test_fast_model_pass_equals_the_torch_pass_with_every_gradient(shared):
    torch.manual_seed(1)
    model = MirrorGRU(4, 3, 6, shared_core=shared).double()
    batch = _batch()
    objective = ObjectiveConfig()
    grads = []
    for fast in (False, True):
        perform, observe = model(batch["perform_actions"], batch["observe_sensory"],
                                 fast_gru=fast)
        total = objective_losses(model, perform, observe, batch, objective, None)["total"]
        grads.append([perform, observe, *torch.autograd.grad(total, list(model.parameters()))])
    for torchs, ours in zip(*grads):
        assert torch.allclose(ours, torchs, rtol=0, atol=1e-12)


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_fast_gru_leaves_other_cells_on_torchs_module(cell):
    torch.manual_seed(2)
    model = MirrorGRU(4, 3, 6, shared_core=True, cell=cell).double()
    batch = _batch()
    plain = model(batch["perform_actions"], batch["observe_sensory"])
    fast = model(batch["perform_actions"], batch["observe_sensory"], fast_gru=True)
    assert all(torch.equal(a, b) for a, b in zip(plain, fast))


def test_a_core_it_cannot_run_is_refused():
    with pytest.raises(ValueError, match="one-layer GRU with biases"):
        gru_states(nn.GRU(3, 3, num_layers=2), torch.zeros(2, 1, 9))


def test_training_with_either_pass_ends_at_the_same_weights_within_float_rounding():
    """Same seeds: only float rounding differs, so losses and weights agree closely."""
    results = []
    for fast in (False, True):
        model, train_set, test_set, objective = small_setup()
        generator = torch.Generator().manual_seed(0)
        cfg = replace(TrainConfig(), epochs=3, batch_size=32, progress=False, fast_gru=fast)
        history = train(model, train_set, test_set, cfg, objective, generator)
        results.append((history, model.state_dict()))
    (history_torch, weights_torch), (history_fast, weights_fast) = results
    for row_torch, row_fast in zip(history_torch, history_fast):
        for key in row_torch:
            assert row_fast[key] == pytest.approx(row_torch[key], rel=1e-4), key
    for name, value in weights_torch.items():
        assert torch.allclose(weights_fast[name], value, rtol=0, atol=1e-5), name
