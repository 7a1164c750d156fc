"""The GRU recurrence for training, with a hand-written backward pass.

nn.GRU on the CPU is a loop of ATen operations that autograd records one by one: at H = 96 the
backward pass is ~200 small nodes per batch, and the weight gradient is 12 small products. Here
the forward pass saves what the backward needs, the backward runs a few operations per timestep,
and the recurrent weight gradient is one product over all timesteps. The input gates of a whole
sequence are computed before the loop, from the embedding's K rows (perform mode) or one folded
S -> 3H map (observe mode). Same equations as nn.GRU (torch.nn.GRU's documentation), zero initial
state; float64 gradients agree with autograd's through nn.GRU to ~1e-15 (tests/test_gru.py).
Floating-point rounding differs from nn.GRU's in the last bits. The model uses this for training
(train.fast_gru); evaluation and the read-outs of hidden states run nn.GRU itself.
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
        # per-timestep views made once (each indexing op costs about as much as a small gate op)
        h, gh, rz = states.unbind(0), gates_h.unbind(0), reset_update.unbind(0)
        gx_rz, gx_n = gates_x[..., :2 * size].unbind(0), gates_x[..., 2 * size:].unbind(0)
        gh_rz, gh_n = gates_h[..., :2 * size].unbind(0), gates_h[..., 2 * size:].unbind(0)
        r, z = reset_update[..., :size].unbind(0), reset_update[..., size:].unbind(0)
        n, h_minus_n = candidate.unbind(0), previous_minus_candidate.unbind(0)
        gh[0].copy_(b_hh.expand_as(gh[0]))  # h_0 = 0
        for t in range(steps):
            if t:
                torch.addmm(b_hh, h[t], w_hh_t, out=gh[t])
            torch.add(gx_rz[t], gh_rz[t], out=rz[t]).sigmoid_()
            torch.addcmul(gx_n[t], r[t], gh_n[t], out=n[t]).tanh_()
            torch.sub(h[t], n[t], out=h_minus_n[t])
            torch.addcmul(n[t], z[t], h_minus_n[t], out=h[t + 1])
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
        # dn_pre = dh (1 - z)(1 - n^2), dz_pre = dh (h - n) z (1 - z), dr_pre = dn_pre gh_n r (1 - r)
        sigmoid_slope = torch.addcmul(reset_update, reset_update, reset_update, value=-1)
        to_candidate = (1 - update) * (1 - candidate * candidate)
        to_update = previous_minus_candidate * sigmoid_slope[..., size:]
        to_reset = gates_h[..., 2 * size:] * sigmoid_slope[..., :size]
        grad_gates_h = candidate.new_empty(steps, batch, 3 * size)
        grad_gates_x = candidate.new_empty(steps, batch, 3 * size)
        upstream, update_t = grad_states.unbind(1), update.unbind(0)
        grad_h = upstream[steps - 1]  # dL/dh_t: from the read-out at t, then through h_t+1
        to_candidate, to_update, to_reset, reset = (
            x.unbind(0) for x in (to_candidate, to_update, to_reset, reset))
        grad_r, grad_z, grad_hn = (grad_gates_h[..., i * size:(i + 1) * size].unbind(0)
                                   for i in range(3))
        grad_gh, grad_xn = grad_gates_h.unbind(0), grad_gates_x[..., 2 * size:].unbind(0)
        for t in reversed(range(steps)):
            grad_n = torch.mul(grad_h, to_candidate[t], out=grad_xn[t])
            torch.mul(grad_h, to_update[t], out=grad_z[t])
            torch.mul(grad_n, to_reset[t], out=grad_r[t])
            torch.mul(grad_n, reset[t], out=grad_hn[t])
            if t:  # dL/dh_t-1: its read-out, through h_t directly and through the gates
                grad_h = torch.addmm(torch.addcmul(upstream[t - 1], grad_h, update_t[t]),
                                     grad_gh[t], w_hh)
        grad_gates_x[..., :2 * size] = grad_gates_h[..., :2 * size]
        flat = grad_gates_h.view(steps * batch, 3 * size)
        # sum over t >= 1 of grad_gh_t^T h_t-1 (h_0 = 0 adds nothing)
        grad_w_hh = flat[batch:].t() @ states[1:-1].reshape((steps - 1) * batch, size)
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
