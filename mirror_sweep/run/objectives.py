"""The losses of each objective, as functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirror_sweep.config import ObjectiveConfig
from mirror_sweep.run.model import MirrorGRU


def shuffle_across_sequences(labels: torch.Tensor, n_actions: int,
                             generator: torch.Generator) -> torch.Tensor:
    """Give every sequence the label row of another sequence of the batch.

    A random cyclic derangement: no sequence keeps its own labels, because the ~1/B of rows that
    a plain random permutation leaves in place would leak the true sensory -> action mapping
    (enough, over 20 epochs, for argmax accuracy well above chance). A batch of one sequence has
    no other row to borrow, so it gets uniformly random labels. labels: (B, T) int64.
    """
    n = len(labels)
    if n < 2:
        return torch.randint(0, n_actions, labels.shape, generator=generator)
    order = torch.randperm(n, generator=generator)
    shuffled = torch.empty_like(labels)
    shuffled[order] = labels[order.roll(1)]
    return shuffled


def objective_losses(model: MirrorGRU, perform_hidden: torch.Tensor, observe_hidden: torch.Tensor,
                     batch: dict[str, torch.Tensor], objective: ObjectiveConfig,
                     generator: torch.Generator) -> dict[str, torch.Tensor]:
    """Forward, inverse and total loss for one batch.

    forward: MSE of the sensory prediction from perform states against perform_sensory;
    inverse: cross-entropy of the action prediction from observe states against observe_actions
    (re-paired at random across sequences under shuffle_observe_labels). With shared_readout the
    sensory head is also trained on observe states and the action head on perform states.
    Returns scalar tensors 'forward', 'inverse', 'total' and the observe logits as 'logits'.
    """
    predicted_sensory = model.sensory_head(perform_hidden)
    logits = model.action_head(observe_hidden)
    targets = batch["observe_actions"]
    if objective.shuffle_observe_labels:
        targets = shuffle_across_sequences(targets, logits.shape[-1], generator)
    forward = F.mse_loss(predicted_sensory, batch["perform_sensory"])
    inverse = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    if objective.shared_readout:
        forward = 0.5 * (forward + F.mse_loss(model.sensory_head(observe_hidden),
                                              batch["observe_sensory"]))
        inverse = 0.5 * (inverse + F.cross_entropy(
            model.action_head(perform_hidden).flatten(0, 1), batch["perform_actions"].flatten()))
    total = objective.forward_weight * forward + objective.inverse_weight * inverse
    return {"forward": forward, "inverse": inverse, "total": total, "logits": logits}
