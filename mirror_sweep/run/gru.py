"""The GRU recurrence for training, with a hand-written backward pass.

nn.GRU on the CPU is a loop of ATen operations that autograd records one by one: at H = 96 the
backward pass is ~200 small nodes per batch, and the weight gradient is 12 small products. Here
the forward pass saves what the backward needs, the backward runs a few operations per timestep,
and the recurrent weight gradient is one product over all timesteps. Same equations as nn.GRU
(torch.nn.GRU's documentation), zero initial state; float64 gradients agree with autograd's to
~1e-15 (tests/test_gru.py). Floating-point rounding differs from nn.GRU's in the last bits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class GRURecurrence(torch.autograd.Function):
    """Hidden states, batch-first (B, T, H), of a GRU from its input gates x W_ih^T + b_ih,
    time-major (T, B, 3H).

    Gate order r, z, n as nn.GRU: r, z = sigmoid(gx + gh) on the first 2H, n = tanh(gx_n + r gh_n),
    h' = n + z (h - n), with gh = h W_hh^T + b_hh and h_0 = 0.
    """

    @staticmethod
    def forward(ctx, gates_x: torch.Tensor, w_hh: torch.Tensor, b_hh: torch.Tensor
                ) -> torch.Tensor:
        steps, batch, _ = gates_x.shape
        size = w_hh.shape[1]
        states = gates_x.new_empty(steps + 1, batch, size)  # states[t + 1] = h_t
        states[0].zero_()
        gates_h = gates_x.new_empty(steps, batch, 3 * size)
        reset_update = gates_x.new_empty(steps, batch, 2 * size)
        candidate = gates_x.new_empty(steps, batch, size)
        previous_minus_candidate = gates_x.new_empty(steps, batch, size)
        w_hh_t = w_hh.t()
        for t in range(steps):
            torch.addmm(b_hh, states[t], w_hh_t, out=gates_h[t])
            rz = torch.add(gates_x[t, :, :2 * size], gates_h[t, :, :2 * size],
                           out=reset_update[t]).sigmoid_()
            n = torch.addcmul(gates_x[t, :, 2 * size:], rz[:, :size], gates_h[t, :, 2 * size:],
                              out=candidate[t]).tanh_()
            torch.sub(states[t], n, out=previous_minus_candidate[t])
            torch.addcmul(n, rz[:, size:], previous_minus_candidate[t], out=states[t + 1])
        ctx.save_for_backward(states, gates_h, reset_update, candidate, previous_minus_candidate,
                              w_hh)
        return states[1:].transpose(0, 1).contiguous()  # what the read-out heads take

    @staticmethod
    def backward(ctx, grad_states: torch.Tensor):
        states, gates_h, reset_update, candidate, previous_minus_candidate, w_hh = \
            ctx.saved_tensors
        steps, batch, size = candidate.shape
        reset, update = reset_update[..., :size], reset_update[..., size:]
        # What does not depend on the incoming gradient, for all timesteps at once:
        # d n_pre = dh (1 - z)(1 - n^2); d z_pre = dh (h - n) z (1 - z); d r_pre = dn_pre gh_n r (1 - r)
        sigmoid_slope = torch.addcmul(reset_update, reset_update, reset_update, value=-1)
        to_candidate = (1 - update) * (1 - candidate * candidate)
        to_update = previous_minus_candidate * sigmoid_slope[..., size:]
        to_reset = gates_h[..., 2 * size:] * sigmoid_slope[..., :size]
        grad_gates_h = candidate.new_empty(steps, batch, 3 * size)
        grad_gates_x = candidate.new_empty(steps, batch, 3 * size)
        grad_h = candidate.new_zeros(batch, size)
        for t in reversed(range(steps)):
            grad_h = grad_h + grad_states[:, t]
            grad_n = torch.mul(grad_h, to_candidate[t], out=grad_gates_x[t, :, 2 * size:])
            torch.mul(grad_h, to_update[t], out=grad_gates_h[t, :, size:2 * size])
            torch.mul(grad_n, to_reset[t], out=grad_gates_h[t, :, :size])
            torch.mul(grad_n, reset[t], out=grad_gates_h[t, :, 2 * size:])
            grad_h = torch.addmm(grad_h * update[t], grad_gates_h[t], w_hh)
        grad_gates_x[..., :2 * size] = grad_gates_h[..., :2 * size]
        flat = grad_gates_h.view(steps * batch, 3 * size)
        grad_w_hh = flat.t() @ states[:-1].reshape(steps * batch, size)
        return grad_gates_x, grad_w_hh, flat.sum(0)


def gru_states(core: nn.GRU, gates_x: torch.Tensor) -> torch.Tensor:
    """Batch-first hidden states (B, T, H) of a one-layer `core` from time-major input gates."""
    if not (isinstance(core, nn.GRU) and core.num_layers == 1 and core.bias
            and not core.bidirectional):
        raise ValueError(f"run/gru.py runs a one-layer GRU with biases, not {core}")
    return GRURecurrence.apply(gates_x, core.weight_hh_l0, core.bias_hh_l0)


def action_gates(core: nn.GRU, embedding: nn.Embedding, actions: torch.Tensor) -> torch.Tensor:
    """Time-major input gates (T, B, 3H) of embedded actions (B, T): the K rows of
    embedding W_ih^T + b_ih looked up, the same per-row products as on the embedded sequence."""
    table = F.linear(embedding.weight, core.weight_ih_l0, core.bias_ih_l0)
    return F.embedding(actions.t(), table)


def sensory_gates(core: nn.GRU, projection: nn.Linear, sensory: torch.Tensor) -> torch.Tensor:
    """Time-major input gates (T, B, 3H) of projected sensory vectors (B, T, S): one S -> 3H map,
    W_ih (P s + c) + b_ih = (W_ih P) s + (W_ih c + b_ih), instead of S -> H -> 3H."""
    weight = core.weight_ih_l0 @ projection.weight
    bias = F.linear(projection.bias, core.weight_ih_l0, core.bias_ih_l0)
    return F.linear(sensory.transpose(0, 1), weight, bias)
