"""The recurrent core with its perform pathway and its observe pathway."""

from __future__ import annotations

import torch
from torch import nn


class MirrorGRU(nn.Module):
    """A GRU core driven by actions (perform mode) or by sensory vectors (observe mode).

    Perform: action embedding (K -> H) -> core -> sensory head (H -> S).
    Observe: sensory projection (S -> H) -> core -> action head (H -> K, logits).
    With shared_core the two modes run through one GRU; otherwise through two GRUs of the same
    size (equal capacity per mode, no shared parameters).
    """

    def __init__(self, n_actions: int, sensory_dim: int, hidden_size: int, shared_core: bool):
        super().__init__()
        self.shared_core = shared_core
        self.action_embedding = nn.Embedding(n_actions, hidden_size)
        self.sensory_projection = nn.Linear(sensory_dim, hidden_size)
        self.perform_core = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.observe_core = (self.perform_core if shared_core
                             else nn.GRU(hidden_size, hidden_size, batch_first=True))
        self.sensory_head = nn.Linear(hidden_size, sensory_dim)
        self.action_head = nn.Linear(hidden_size, n_actions)

    def cores(self) -> list[nn.GRU]:
        """The distinct recurrent cores: one when shared, two otherwise."""
        return [self.perform_core] if self.shared_core else [self.perform_core, self.observe_core]

    def forward(self, actions: torch.Tensor, sensory: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden states of the core in both modes.

        actions: (B, T) int64 for perform mode; sensory: (B', T, S) float32 for observe mode.
        Returns (perform_hidden (B, T, H), observe_hidden (B', T, H)). A shared core runs both
        batches in one call, which is one GRU pass instead of two.
        """
        perform_input = self.action_embedding(actions)
        observe_input = self.sensory_projection(sensory)
        if self.shared_core:
            hidden, _ = self.perform_core(torch.cat([perform_input, observe_input]))
            return hidden[: len(actions)], hidden[len(actions):]
        return self.perform_core(perform_input)[0], self.observe_core(observe_input)[0]
