"""The training loop and the read-out of hidden states: no files, no Hydra."""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, replace

import numpy as np
import torch

from mirror_sweep.config import ObjectiveConfig, TrainConfig
from mirror_sweep.run.env import SequenceSet
from mirror_sweep.run.model import MirrorGRU
from mirror_sweep.run.objectives import loss_names, objective_losses
from mirror_sweep.run.threads import JobThreads


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; no metrics are written for such a run."""


EpochCallback = Callable[[dict[str, float]], None]


def history_columns(objective: ObjectiveConfig) -> list[str]:
    """The columns of a training history: epoch, train_{loss}_loss for every reported loss
    (the objective's terms and total), test_{term}_loss, test_observe_accuracy."""
    names = loss_names(objective)
    return ["epoch", *(f"train_{n}_loss" for n in names),
            *(f"test_{n}_loss" for n in names if n != "total"), "test_observe_accuracy"]


class Adam:
    """Adam with torch.optim.Adam's defaults (betas 0.9, 0.999; eps 1e-8; no weight decay).

    Why not torch.optim.Adam: constructing any torch.optim optimizer imports torch._dynamo, about
    1 s on a 2-core machine, paid by every run and every sweep worker while the default run's
    whole training takes a few seconds. `step` is the same sequence of tensor operations as
    torch.optim.Adam's single-tensor path (the one it takes on CPU), so the parameters match it
    bit for bit (checked for torch 2.13 on every model and objective variant).
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, (self.beta1, self.beta2), self.eps = lr, betas, eps
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format)
                        for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format)
                           for p in self.params]
        self.steps = [0] * len(self.params)  # per parameter, as torch.optim counts them

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for i, (param, exp_avg, exp_avg_sq) in enumerate(
                zip(self.params, self.exp_avg, self.exp_avg_sq)):
            if param.grad is None:  # as torch.optim: a parameter without a gradient is skipped
                continue
            self.steps[i] += 1
            step = float(self.steps[i])
            bias_correction1 = 1 - self.beta1 ** step
            bias_correction2_sqrt = (1 - self.beta2 ** step) ** 0.5
            grad = param.grad
            exp_avg.lerp_(grad, 1 - self.beta1)
            exp_avg_sq.mul_(self.beta2).addcmul_(grad, grad, value=1 - self.beta2)
            denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
            param.addcdiv_(exp_avg, denom, value=-(self.lr / bias_correction1))


def to_tensors(data: SequenceSet) -> dict[str, torch.Tensor]:
    """The arrays of a SequenceSet as torch tensors (shared memory, no copy)."""
    return {name: torch.from_numpy(np.ascontiguousarray(array))
            for name, array in asdict(data).items()}


@torch.no_grad()
def evaluate(model: MirrorGRU, tensors: dict[str, torch.Tensor],
             objective: ObjectiveConfig, threads: JobThreads | None = None) -> dict[str, float]:
    """Each term's loss (true labels, unshuffled) and observe-mode action accuracy on a set:
    {term}_loss for every term of the objective, observe_accuracy.

    The core's states run on the threads torch has (during training, the training steps'):
    their products split across threads by rows, which gives the same bits on any count. The
    losses and the accuracy run on `threads`' baseline: a second thread would split their
    reductions and round differently (tests/test_threads.py).
    """
    model.eval()
    perform_hidden, observe_hidden = model(tensors["perform_actions"], tensors["observe_sensory"])
    with threads.baseline() if threads is not None else nullcontext():
        plain = replace(objective, shuffle_observe_labels=False)
        losses = objective_losses(model, perform_hidden, observe_hidden, tensors, plain, None)
        correct = model.action_head(observe_hidden).argmax(-1) == tensors["observe_actions"]
        return {**{f"{name}_loss": loss.item() for name, loss in losses.items()
                   if name != "total"},
                "observe_accuracy": correct.float().mean().item()}


def train(model: MirrorGRU, train_set: SequenceSet, test_set: SequenceSet,
          train_cfg: TrainConfig, objective: ObjectiveConfig, generator: torch.Generator,
          on_epoch: EpochCallback | None = None, threads: JobThreads | None = None
          ) -> list[dict[str, float]]:
    """Adam on the objective's total loss; returns one row of metrics per epoch.

    Each row has history_columns(objective): epoch, train_{loss}_loss per loss of the objective
    and total (batch means), test_{term}_loss, test_observe_accuracy. Raises NonFiniteLossError
    at the first non-finite loss. `threads` sets the training steps' threads (re-checked between
    steps), which the held-out evaluation's forward pass shares; its losses run on the baseline
    (run/threads.py). None leaves torch's setting alone.
    """
    threads = threads or JobThreads(None)
    tensors, test_tensors = to_tensors(train_set), to_tensors(test_set)
    optimizer = Adam(model.parameters(), lr=train_cfg.lr)
    n = len(train_set)
    history = []
    threads.start_training()
    for epoch in range(1, train_cfg.epochs + 1):
        model.train()
        sums = dict.fromkeys(loss_names(objective), 0.0)
        order = torch.randperm(n, generator=generator)
        n_batches = 0
        for start in range(0, n, train_cfg.batch_size):
            threads.tick()
            idx = order[start: start + train_cfg.batch_size]
            batch = {name: tensor[idx] for name, tensor in tensors.items()}
            perform_hidden, observe_hidden = model(batch["perform_actions"],
                                                   batch["observe_sensory"],
                                                   fast_gru=train_cfg.fast_gru)
            losses = objective_losses(model, perform_hidden, observe_hidden, batch, objective,
                                      generator)
            total = losses["total"]
            if not math.isfinite(total.item()):
                raise NonFiniteLossError(
                    f"non-finite loss at epoch {epoch}, batch {n_batches}: "
                    + ", ".join(f"{k}={v.item()}" for k, v in losses.items()))
            optimizer.zero_grad()
            total.backward()
            optimizer.step()
            for key in sums:
                sums[key] += losses[key].item()
            n_batches += 1
        row = {"epoch": epoch, **{f"train_{k}_loss": v / n_batches for k, v in sums.items()}}
        test = evaluate(model, test_tensors, objective, threads)
        row.update({f"test_{k}": v for k, v in test.items()})
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    threads.end_training()
    return history


@torch.no_grad()
def collect_hidden(model: MirrorGRU, data: SequenceSet) -> tuple[np.ndarray, np.ndarray]:
    """Core states on a set in both modes, aligned by sequence and timestep: 2 x (N, T, H)."""
    model.eval()
    tensors = to_tensors(data)
    perform_hidden, observe_hidden = model(tensors["perform_actions"], tensors["observe_sensory"])
    return perform_hidden.numpy(), observe_hidden.numpy()
