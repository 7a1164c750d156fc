"""The synthetic environment and the paired / independent datasets built from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mirror_sweep.config import Dynamics, EnvConfig, Pairing


@dataclass(frozen=True)
class SequenceSet:
    """Sequences for both pathways.

    perform_actions: (N, T) int64, the actions fed in perform mode;
    perform_sensory: (N, T, S) float32, the sensory sequence those actions generated (the
    forward target);
    observe_sensory: (N, T, S) float32, the sensory sequence fed in observe mode;
    observe_actions: (N, T) int64, the actions that generated observe_sensory (inverse target).
    Paired data have observe_* equal to perform_*.
    """

    perform_actions: np.ndarray
    perform_sensory: np.ndarray
    observe_sensory: np.ndarray
    observe_actions: np.ndarray

    def __len__(self) -> int:
        return len(self.perform_actions)


def make_effects(env: EnvConfig, rng: np.random.Generator) -> np.ndarray:
    """Fixed additive effect vector per action: (K, S) float, N(0, effect_scale^2)."""
    return env.effect_scale * rng.standard_normal((env.n_actions, env.sensory_dim))


def simulate(actions: np.ndarray, effects: np.ndarray, env: EnvConfig,
             rng: np.random.Generator) -> np.ndarray:
    """Roll out s_t = decay * s_{t-1} + effect_t + noise from s_0 = 0.

    Linear dynamics take effect_t = effects[a_t]; randomized dynamics draw effect_t afresh,
    independent of a_t. actions: (N, T) int; returns (N, T, S) float32, s_1..s_T.
    """
    n, t_len = actions.shape
    if env.dynamics is Dynamics.linear:
        step_effects = effects[actions]
    else:
        step_effects = env.effect_scale * rng.standard_normal((n, t_len, env.sensory_dim))
    noise = env.noise_std * rng.standard_normal((n, t_len, env.sensory_dim))
    sensory = np.empty((n, t_len, env.sensory_dim))
    state = np.zeros((n, env.sensory_dim))
    for t in range(t_len):
        state = env.decay * state + step_effects[:, t] + noise[:, t]
        sensory[:, t] = state
    return sensory.astype(np.float32)


def draw_actions(n: int, env: EnvConfig, rng: np.random.Generator) -> np.ndarray:
    """Actions drawn uniformly and independently at every step: (n, T) int64."""
    return rng.integers(0, env.n_actions, size=(n, env.seq_len), dtype=np.int64)


def make_sequences(n: int, pairing: Pairing, effects: np.ndarray, env: EnvConfig,
                   rng: np.random.Generator) -> SequenceSet:
    """Draw n sequences; `independent` pairing draws the observe side from other actions."""
    actions = draw_actions(n, env, rng)
    sensory = simulate(actions, effects, env, rng)
    if pairing is Pairing.paired:
        return SequenceSet(actions, sensory, sensory, actions)
    other_actions = draw_actions(n, env, rng)
    other_sensory = simulate(other_actions, effects, env, rng)
    return SequenceSet(actions, sensory, other_sensory, other_actions)
