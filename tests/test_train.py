import dataclasses

import numpy as np
import pytest
import torch

from mirror_sweep.config import ObjectiveConfig, RunConfig, TrainConfig
from mirror_sweep.run import train as train_module
from mirror_sweep.run.experiment import RunSeeds, build_model
from mirror_sweep.run.objectives import objective_losses, shuffle_across_sequences
from mirror_sweep.run.train import NonFiniteLossError, collect_hidden, to_tensors, train
from tests.conftest import small_setup


def test_both_losses_fall_over_a_short_training():
    model, train_set, test_set, objective = small_setup()
    history = train(model, train_set, test_set, TrainConfig(epochs=8, batch_size=16, lr=1e-2), objective,
                    torch.Generator().manual_seed(0))
    assert len(history) == 8
    assert history[-1]["test_forward_loss"] < 0.5 * history[0]["test_forward_loss"]
    assert history[-1]["test_inverse_loss"] < history[0]["test_inverse_loss"]
    assert history[-1]["test_observe_accuracy"] > 0.5  # chance is 0.25


def test_forward_only_leaves_the_observe_pathway_untouched():
    model, train_set, test_set, _ = small_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train(model, train_set, test_set, TrainConfig(epochs=2, batch_size=32),
          ObjectiveConfig(inverse_weight=0.0), torch.Generator().manual_seed(0))
    after = model.state_dict()
    for name in ["sensory_projection.weight", "action_head.weight"]:
        torch.testing.assert_close(after[name], before[name])
    assert not torch.equal(after["perform_core.weight_hh_l0"], before["perform_core.weight_hh_l0"])


def test_shuffled_observe_labels_are_a_repairing_of_the_true_labels():
    model, train_set, _, _ = small_setup()
    batch = to_tensors(train_set)
    perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
    plain = objective_losses(model, perform, observe, batch, ObjectiveConfig(), None)
    shuffled = objective_losses(model, perform, observe, batch,
                                ObjectiveConfig(shuffle_observe_labels=True),
                                torch.Generator().manual_seed(0))
    assert shuffled["inverse"].item() != pytest.approx(plain["inverse"].item())
    torch.testing.assert_close(shuffled["forward"], plain["forward"])


@pytest.mark.parametrize("n", [2, 3, 64])
def test_shuffled_labels_never_keep_a_sequences_own_row(n):
    labels = torch.arange(n).unsqueeze(1).repeat(1, 5)  # row i is all i: rows are identifiable
    for seed in range(20):
        shuffled = shuffle_across_sequences(labels, n, torch.Generator().manual_seed(seed))
        assert (shuffled[:, 0] != labels[:, 0]).all()  # a derangement: no fixed point
        assert sorted(shuffled[:, 0].tolist()) == list(range(n))  # every row used once
        assert (shuffled == shuffled[:, :1]).all()  # whole rows move, time order kept


def test_a_single_sequence_batch_gets_random_labels():
    labels = torch.zeros(1, 500, dtype=torch.int64)
    shuffled = shuffle_across_sequences(labels, 4, torch.Generator().manual_seed(0))
    assert set(shuffled.unique().tolist()) == {0, 1, 2, 3}


def test_shared_readout_trains_both_heads_in_both_modes():
    model, train_set, _, _ = small_setup()
    batch = to_tensors(train_set)
    perform, observe = model(batch["perform_actions"], batch["observe_sensory"])
    losses = objective_losses(model, perform.detach(), observe, batch,
                              ObjectiveConfig(shared_readout=True), None)
    losses["forward"].backward()  # the sensory head now reads observe states too
    assert model.sensory_projection.weight.grad.abs().sum() > 0


def test_non_finite_loss_stops_training_with_a_clear_error():
    model, train_set, test_set, objective = small_setup()
    poisoned = dataclasses.replace(train_set, perform_sensory=np.full_like(
        train_set.perform_sensory, np.nan))
    with pytest.raises(NonFiniteLossError, match="non-finite loss at epoch 1"):
        train(model, poisoned, test_set, TrainConfig(epochs=1), objective,
              torch.Generator().manual_seed(0))


def test_collect_hidden_is_aligned_by_sequence_and_timestep():
    model, _, test_set, _ = small_setup()
    perform, observe = collect_hidden(model, test_set)
    assert perform.shape == observe.shape == (32, 12, 16)
    one_perform, one_observe = collect_hidden(model, test_set.__class__(
        *(array[5:6] for array in dataclasses.astuple(test_set))))
    np.testing.assert_allclose(one_perform[0], perform[5], atol=1e-5)
    np.testing.assert_allclose(one_observe[0], observe[5], atol=1e-5)


def test_seeds_are_independent_streams():
    a, b = RunSeeds.from_seed(0), RunSeeds.from_seed(1)
    assert a == RunSeeds.from_seed(0) and a != b
    assert len(set(dataclasses.astuple(a))) == len(dataclasses.fields(RunSeeds))


@pytest.mark.parametrize("shared,objective", [
    (True, ObjectiveConfig()), (False, ObjectiveConfig()),
    (True, ObjectiveConfig(inverse_weight=0.0)), (True, ObjectiveConfig(shared_readout=True))])
def test_our_adam_matches_torch_optim_adam_bit_for_bit(monkeypatch, shared, objective):
    def trained(optimizer_class):
        monkeypatch.setattr(train_module, "Adam", optimizer_class)
        model, train_set, test_set, _ = small_setup(n_train=64)
        if not shared:
            model = build_model(dataclasses.replace(RunConfig(), model=dataclasses.replace(
                RunConfig().model, shared_core=False, hidden_size=16)), 0)
        train(model, train_set, test_set, TrainConfig(epochs=2, batch_size=16), objective,
              torch.Generator().manual_seed(0))
        return model.state_dict()

    ours, reference = trained(train_module.Adam), trained(torch.optim.Adam)
    for name, value in reference.items():
        assert torch.equal(ours[name], value), name
