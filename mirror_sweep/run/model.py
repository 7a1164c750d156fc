"""The recurrent core with its perform pathway and its observe pathway."""

from __future__ import annotations

import torch
from torch import nn

from mirror_sweep.run.gru import action_gates, gru_states, sensory_gates

# torch modules of each cell type (config.Cell values); each returns (outputs, final state).
CELLS: dict[str, type[nn.Module]] = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}


def make_core(cell: str, hidden_size: int) -> nn.Module:
    """A single-layer batch-first core of `cell` type with input and state width H.

    All cell types have equal state size H, not equal parameter counts: per core, a GRU has
    3 (2 H^2 + 2 H) weights, an LSTM 4 (2 H^2 + 2 H), a tanh RNN 2 H^2 + 2 H (core_parameters).
    """
    if cell not in CELLS:
        raise ValueError(f"unknown cell type {cell!r}; choose one of {sorted(CELLS)}")
    if cell == "rnn":
        return nn.RNN(hidden_size, hidden_size, nonlinearity="tanh", batch_first=True)
    return CELLS[cell](hidden_size, hidden_size, batch_first=True)


def core_parameters(cell: str, hidden_size: int) -> int:
    """Weights of one core of `cell` type and width H (input width H, one layer, two biases)."""
    gates = {"gru": 3, "lstm": 4, "rnn": 1}[cell]
    return gates * (2 * hidden_size * hidden_size + 2 * hidden_size)


class MirrorGRU(nn.Module):
    """A recurrent core driven by actions (perform mode) or by sensory vectors (observe mode).

    Perform: action embedding (K -> H) -> core -> sensory head (H -> S).
    Observe: sensory projection (S -> H) -> core -> action head (H -> K, logits).
    With shared_core the two modes run through one core; otherwise through two cores of the same
    type and size (equal capacity per mode, no shared parameters). `cell` picks the core: "gru"
    (the paper's), "lstm" or "rnn" (tanh); the hidden state returned (and analysed) is the
    core's output, which for an LSTM is h, never the cell state c.
    """

    def __init__(self, n_actions: int, sensory_dim: int, hidden_size: int, shared_core: bool,
                 cell: str = "gru"):
        super().__init__()
        self.shared_core = shared_core
        self.cell = cell
        self.action_embedding = nn.Embedding(n_actions, hidden_size)
        self.sensory_projection = nn.Linear(sensory_dim, hidden_size)
        self.perform_core = make_core(cell, hidden_size)
        self.observe_core = self.perform_core if shared_core else make_core(cell, hidden_size)
        self.sensory_head = nn.Linear(hidden_size, sensory_dim)
        self.action_head = nn.Linear(hidden_size, n_actions)

    def cores(self) -> list[nn.Module]:
        """The distinct recurrent cores: one when shared, two otherwise."""
        return [self.perform_core] if self.shared_core else [self.perform_core, self.observe_core]

    def forward(self, actions: torch.Tensor, sensory: torch.Tensor, fast_gru: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the core in both modes.

        actions: (B, T) int64 for perform mode; sensory: (B', T, S) float32 for observe mode.
        Returns (perform_hidden (B, T, H), observe_hidden (B', T, H)). A shared core runs both
        batches in one call, which is one pass instead of two. fast_gru: a GRU core runs through
        run/gru.py (the training pass: the same function, a faster backward); other cells and
        fast_gru=False through torch's module.
        """
        if fast_gru and self.cell == "gru":
            return self._fast_gru_states(actions, sensory)
        perform_input = self.action_embedding(actions)
        observe_input = self.sensory_projection(sensory)
        if self.shared_core:
            hidden, _ = self.perform_core(torch.cat([perform_input, observe_input]))
            return hidden[: len(actions)], hidden[len(actions):]
        return self.perform_core(perform_input)[0], self.observe_core(observe_input)[0]

    def _fast_gru_states(self, actions: torch.Tensor, sensory: torch.Tensor
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        perform_gates = action_gates(self.perform_core, self.action_embedding, actions)
        observe_gates = sensory_gates(self.observe_core, self.sensory_projection, sensory)
        if self.shared_core:
            hidden = gru_states(self.perform_core, torch.cat([perform_gates, observe_gates], 1))
            return hidden.split([len(actions), len(sensory)])
        return (gru_states(self.perform_core, perform_gates),
                gru_states(self.observe_core, observe_gates))


MirrorRNN = MirrorGRU  # the same class under a cell-neutral name
