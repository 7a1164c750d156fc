"""The objectives' loss terms as a registry: each term a pure function of tensors and its weight.

An objective is a weighted sum of registered loss terms. The built-in terms are `forward` (MSE of
the sensory prediction from perform states) and `inverse` (cross-entropy of the action prediction
from observe states), weighted by `objective.forward_weight` and `objective.inverse_weight`; the
paper's objective and its controls (conf/objective/*.yaml) set those weights and the terms'
switches (`shuffle_observe_labels`, `shared_readout`). A new objective is one `register` call
here (a term whose weight is `objective.extra_terms[name]`) and one YAML in conf/objective/ that
sets that weight. The loss names in the training history come from this registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mirror_sweep.config import ObjectiveConfig
from mirror_sweep.run.model import MirrorGRU

Batch = dict[str, torch.Tensor]
# term(model, perform_hidden (B, T, H), observe_hidden (B, T, H), batch, objective, generator)
# -> a scalar loss tensor.
TermFn = Callable[[MirrorGRU, torch.Tensor, torch.Tensor, Batch, ObjectiveConfig,
                   torch.Generator | None], torch.Tensor]


@dataclass(frozen=True)
class LossTerm:
    """A registered loss term: its function and where its weight is in the objective config."""

    name: str
    fn: TermFn
    weight_key: str | None = None  # an ObjectiveConfig field; None: extra_terms[name]
    always: bool = False  # reported (and computed) by every run, even at weight 0

    def weight(self, objective: ObjectiveConfig) -> float:
        if self.weight_key is not None:
            return getattr(objective, self.weight_key)
        return objective.extra_terms.get(self.name, 0.0)


LOSS_TERMS: dict[str, LossTerm] = {}


def register(name: str, fn: TermFn, weight_key: str | None = None,
             always: bool = False) -> LossTerm:
    """Add a loss term to the registry (its weight: `objective.extra_terms[name]` by default)."""
    if name in LOSS_TERMS or name == "total":
        raise ValueError(f"loss term {name!r} is already registered or reserved")
    LOSS_TERMS[name] = LossTerm(name, fn, weight_key, always)
    return LOSS_TERMS[name]


def active_terms(objective: ObjectiveConfig) -> list[str]:
    """The terms a run computes and reports: the built-in ones, then its extra_terms.

    Raises ValueError naming `objective.extra_terms` when it names an unregistered term.
    """
    unknown = sorted(set(objective.extra_terms) - set(LOSS_TERMS))
    if unknown:
        raise ValueError(f"config key 'objective.extra_terms' names unknown loss term(s) "
                         f"{unknown}; registered: {sorted(LOSS_TERMS)}")
    return [name for name, term in LOSS_TERMS.items()
            if term.always or name in objective.extra_terms]


def loss_names(objective: ObjectiveConfig | None = None) -> list[str]:
    """The names of the reported losses: the active terms and 'total'."""
    return [*active_terms(objective or ObjectiveConfig()), "total"]


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


def forward_loss(model, perform_hidden, observe_hidden, batch, objective, generator):
    """MSE of the sensory prediction from perform states against perform_sensory; with
    shared_readout, the mean of that and the same head on observe states (observe_sensory)."""
    loss = F.mse_loss(model.sensory_head(perform_hidden), batch["perform_sensory"])
    if objective.shared_readout:
        loss = 0.5 * (loss + F.mse_loss(model.sensory_head(observe_hidden),
                                        batch["observe_sensory"]))
    return loss


def inverse_loss(model, perform_hidden, observe_hidden, batch, objective, generator):
    """Cross-entropy of the action prediction from observe states against observe_actions
    (re-paired at random across sequences under shuffle_observe_labels); with shared_readout,
    the mean of that and the same head on perform states (perform_actions)."""
    logits = model.action_head(observe_hidden)
    targets = batch["observe_actions"]
    if objective.shuffle_observe_labels:
        targets = shuffle_across_sequences(targets, logits.shape[-1], generator)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    if objective.shared_readout:
        loss = 0.5 * (loss + F.cross_entropy(model.action_head(perform_hidden).flatten(0, 1),
                                             batch["perform_actions"].flatten()))
    return loss


def action_head_on_perform_loss(model, perform_hidden, observe_hidden, batch, objective,
                                generator):
    """Cross-entropy of the action head on perform states against perform_actions: the action
    readout trained in both modes (objective action_head_both)."""
    logits = model.action_head(perform_hidden)
    return F.cross_entropy(logits.flatten(0, 1), batch["perform_actions"].flatten())


def sensory_head_on_observe_loss(model, perform_hidden, observe_hidden, batch, objective,
                                 generator):
    """MSE of the sensory head on observe states against observe_sensory: the sensory readout
    trained in both modes (objective sensory_head_both)."""
    return F.mse_loss(model.sensory_head(observe_hidden), batch["observe_sensory"])


register("forward", forward_loss, weight_key="forward_weight", always=True)
register("inverse", inverse_loss, weight_key="inverse_weight", always=True)
# Readout-sharing variants (weights in objective.extra_terms; conf/objective/*_head_both.yaml)
register("action_head_on_perform", action_head_on_perform_loss)
register("sensory_head_on_observe", sensory_head_on_observe_loss)


def objective_losses(model: MirrorGRU, perform_hidden: torch.Tensor, observe_hidden: torch.Tensor,
                     batch: Batch, objective: ObjectiveConfig,
                     generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Every active term's loss for one batch and their weighted sum 'total' (scalar tensors).

    Terms are computed in registry order (their draws from `generator` too).
    """
    losses, total = {}, None
    for name in active_terms(objective):
        term = LOSS_TERMS[name]
        losses[name] = term.fn(model, perform_hidden, observe_hidden, batch, objective, generator)
        weighted = term.weight(objective) * losses[name]
        total = weighted if total is None else total + weighted
    losses["total"] = total
    return losses
