import torch

from mirror_sweep.run.model import MirrorGRU


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
