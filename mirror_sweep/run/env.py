"""The synthetic environment and the paired / independent datasets built from it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mirror_sweep.config import ActionProcess, Dynamics, EnvConfig, Pairing


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
    """n action sequences of env.action_process: (n, T) int64, each action uniform over K.

    iid: a fresh uniform action at every step (one draw of rng.integers, as always);
    sticky: a uniform first action, then at each step the previous action is kept with
    probability env.stay_prob and otherwise replaced by one of the K - 1 others, uniformly
    (so P(a_t = a_{t-1}) = stay_prob exactly, and stay_prob = 1/K is the i.i.d. process);
    constant: one uniform action repeated over the whole sequence.
    """
    process = env.action_process
    if process is ActionProcess.iid:
        return rng.integers(0, env.n_actions, size=(n, env.seq_len), dtype=np.int64)
    if process is ActionProcess.constant:
        first = rng.integers(0, env.n_actions, size=(n, 1), dtype=np.int64)
        return np.repeat(first, env.seq_len, axis=1)
    actions = np.empty((n, env.seq_len), dtype=np.int64)
    actions[:, 0] = rng.integers(0, env.n_actions, size=n)
    switch = rng.random((n, env.seq_len - 1)) >= env.stay_prob
    # a switch adds 1..K-1 (mod K): a uniform choice among the other K - 1 actions
    shift = rng.integers(1, env.n_actions, size=(n, env.seq_len - 1)) * switch
    for t in range(1, env.seq_len):
        actions[:, t] = (actions[:, t - 1] + shift[:, t - 1]) % env.n_actions
    return actions


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
