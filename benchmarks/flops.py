"""FLOP counts of the model from its shapes, and this machine's measured dense matmul rate.

Counting convention: a multiply-add is 2 FLOPs; only matrix products are counted (the GRU's gate
matmuls, the sensory projection and the two heads); gate nonlinearities, biases, the embedding
lookup (a gather), losses and Adam are not. Backward is taken as 2x forward (grad of inputs and
grad of weights, each one product of the forward's size).
"""

from __future__ import annotations

import time

import torch

from mirror_sweep.config import RunConfig


def forward_flops_per_sequence(cfg: RunConfig) -> float:
    """Matmul FLOPs of one forward pass of one sequence through both modes (perform + observe)."""
    h, s, k, t = cfg.model.hidden_size, cfg.env.sensory_dim, cfg.env.n_actions, cfg.env.seq_len
    gru = 2 * 3 * (h * h + h * h) * t  # W_ih (input = embedding/projection, size H) and W_hh
    projection = 2 * s * h * t  # observe: sensory (S) -> H
    heads = 2 * h * s * t + 2 * h * k * t  # perform -> sensory head, observe -> action head
    if cfg.objective.shared_readout:
        heads *= 2  # each head also applied to the other mode's states
    return 2 * gru + projection + heads


def training_phase_flops(cfg: RunConfig) -> dict[str, float]:
    """FLOPs of what train() does (per-epoch steps + test evaluation) and of the training phase.

    The training phase of run_experiment also reads out hidden states before and after training
    and evaluates once more: 3 more forward passes over the test set.
    """
    fwd = forward_flops_per_sequence(cfg)
    per_epoch = 3 * fwd * cfg.data.n_train + fwd * cfg.data.n_test
    train_loop = cfg.train.epochs * per_epoch
    return {"train_loop": train_loop, "training_phase": train_loop + 3 * fwd * cfg.data.n_test,
            "steps_only": cfg.train.epochs * 3 * fwd * cfg.data.n_train}


def gru_gemm_shapes(cfg: RunConfig) -> list[tuple[int, int, int, int]]:
    """The (m, k, n, count) matrix products of one training step's GRU, forward and backward.

    Rows through the core: both modes' batches (a shared core runs them in one call; separate
    cores run the same total rows in two calls of half the rows, counted here as one).
    """
    h, t = cfg.model.hidden_size, cfg.env.seq_len
    rows = 2 * cfg.train.batch_size
    return [
        (rows * t, h, 3 * h, 1),  # forward: input gates of all timesteps at once
        (rows, h, 3 * h, t),  # forward: hidden gates, one product per timestep
        (rows * t, 3 * h, h, 1),  # backward: grad of the inputs
        (3 * h, rows * t, h, 1),  # backward: grad of W_ih
        (rows, 3 * h, h, t),  # backward: grad of the hidden state, per timestep
        (3 * h, rows, h, t),  # backward: grad of W_hh, per timestep
    ]


def gemm_rate(shapes: list[tuple[int, int, int, int]], threads: int, min_seconds: float = 0.3,
              rounds: int = 3) -> float:
    """Best-of-rounds GFLOP/s of torch.mm (float32) running `shapes` back to back, on `threads`."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        operands = [(torch.randn(m, k), torch.randn(k, n), count) for m, k, n, count in shapes]
        flops = sum(2 * a.shape[0] * a.shape[1] * b.shape[1] * count for a, b, count in operands)

        def schedule() -> None:
            for a, b, count in operands:
                for _ in range(count):
                    torch.mm(a, b)

        schedule()  # warm-up
        start = time.perf_counter()
        reps = 0
        while time.perf_counter() - start < min_seconds / 3:
            schedule()
            reps += 1
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(reps):
                schedule()
            best = min(best, (time.perf_counter() - start) / reps)
        return flops / best / 1e9
    finally:
        torch.set_num_threads(previous)
