import pytest
import torch

from mirror_sweep.run.model import CELLS, MirrorGRU, core_parameters


def gru_weight_ids(model):
    return {id(p) for core in model.cores() for p in core.parameters()}


def test_shapes_in_both_modes():
    model = MirrorGRU(n_actions=4, sensory_dim=16, hidden_size=12, shared_core=True)
    actions = torch.randint(0, 4, (5, 7))
    sensory = torch.randn(3, 7, 16)
    perform, observe = model(actions, sensory)
    assert perform.shape == (5, 7, 12) and observe.shape == (3, 7, 12)
    assert model.sensory_head(perform).shape == (5, 7, 16)
    assert model.action_head(observe).shape == (3, 7, 4)


def test_shared_model_has_one_core_and_separate_two_of_equal_size():
    shared = MirrorGRU(4, 16, 12, shared_core=True)
    separate = MirrorGRU(4, 16, 12, shared_core=False)
    assert shared.perform_core is shared.observe_core
    assert len([m for m in shared.modules() if isinstance(m, torch.nn.GRU)]) == 1
    assert len([m for m in separate.modules() if isinstance(m, torch.nn.GRU)]) == 2
    core_size = sum(p.numel() for p in shared.perform_core.parameters())
    assert sum(p.numel() for p in separate.observe_core.parameters()) == core_size
    n_shared = sum(p.numel() for p in shared.parameters())
    assert sum(p.numel() for p in separate.parameters()) == n_shared + core_size
    assert len(gru_weight_ids(separate)) == 2 * len(gru_weight_ids(shared))


def test_shared_pass_equals_two_separate_calls_of_the_core():
    torch.manual_seed(0)
    model = MirrorGRU(4, 16, 12, shared_core=True)
    actions, sensory = torch.randint(0, 4, (5, 7)), torch.randn(5, 7, 16)
    _, observe = model(actions, sensory)
    alone, _ = model.perform_core(model.sensory_projection(sensory))
    torch.testing.assert_close(observe, alone)


def test_observe_gradient_reaches_the_shared_core_but_not_a_separate_perform_core():
    for shared in (True, False):
        model = MirrorGRU(4, 16, 12, shared_core=shared)
        _, observe = model(torch.randint(0, 4, (2, 5)), torch.randn(2, 5, 16))
        model.action_head(observe).sum().backward()
        grad = model.perform_core.weight_hh_l0.grad
        assert (grad is not None and grad.abs().sum() > 0) == shared


@pytest.mark.parametrize("cell", ["gru", "lstm", "rnn"])
@pytest.mark.parametrize("shared", [True, False])
def test_every_cell_type_runs_both_modes_with_state_size_h(cell, shared):
    model = MirrorGRU(4, 16, 12, shared_core=shared, cell=cell)
    assert all(isinstance(core, CELLS[cell]) for core in model.cores())
    assert len(model.cores()) == (1 if shared else 2)
    perform, observe = model(torch.randint(0, 4, (5, 7)), torch.randn(3, 7, 16))
    assert perform.shape == (5, 7, 12) and observe.shape == (3, 7, 12)
    n_core = sum(p.numel() for core in model.cores() for p in core.parameters())
    assert n_core == len(model.cores()) * core_parameters(cell, 12)


def test_lstm_hidden_state_is_h_not_the_cell_state():
    torch.manual_seed(1)
    model = MirrorGRU(4, 16, 12, shared_core=True, cell="lstm")
    actions = torch.randint(0, 4, (2, 5))
    perform, _ = model(actions, torch.randn(2, 5, 16))
    _, (h_last, c_last) = model.perform_core(model.action_embedding(actions))
    torch.testing.assert_close(perform[:, -1], h_last[0])
    assert not torch.allclose(perform[:, -1], c_last[0])


def test_vanilla_rnn_uses_tanh():
    model = MirrorGRU(4, 16, 12, shared_core=True, cell="rnn")
    assert model.perform_core.nonlinearity == "tanh"


def test_default_gru_draws_the_same_initial_weights_as_the_plain_gru_model():
    # the earlier model built these modules in this order; the default must stay bit-identical
    from torch import nn
    torch.manual_seed(3)
    plain = [nn.Embedding(4, 12), nn.Linear(16, 12), nn.GRU(12, 12, batch_first=True),
             nn.GRU(12, 12, batch_first=True), nn.Linear(12, 16), nn.Linear(12, 4)]
    torch.manual_seed(3)
    model = MirrorGRU(4, 16, 12, shared_core=False)
    ours = [model.action_embedding, model.sensory_projection, model.perform_core,
            model.observe_core, model.sensory_head, model.action_head]
    for old, new in zip(plain, ours):
        for a, b in zip(old.parameters(), new.parameters()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_unknown_cell_is_refused_by_name():
    with pytest.raises(ValueError, match="transformer"):
        MirrorGRU(4, 16, 12, shared_core=True, cell="transformer")
