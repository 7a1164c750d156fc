"""Causal ablation: silence units of the recurrent core and measure what each objective loses.

The paper calls mirror units "causally necessary". Here a set of units is silenced at every step
of the core on the held-out test sequences, and the change in what the network does is measured:
the forward loss (MSE of the sensory prediction) in perform mode, the inverse loss (cross-entropy)
and the action accuracy in observe mode.

- Silencing: after each GRU step the silenced units' states are clamped, to zero or to the unit's
  mean over the unablated test states of that mode ("zero" / "mean" clamp), and the clamped state
  feeds both the readout and the next step. The initial state stays zero.
- Which units: the top-k by r (mirror), the k lowest r (anti-mirror) and k random units, many
  draws (the null; the same draws for both clamps and both modes), for k at fractions of H. r is
  the run's per-unit r on the test set (``units.csv``). With separate cores, unit u is unit u of
  each core (the paper's pairing).
- Modes: at test time the two modes run as separate passes, so silencing units in both modes
  changes the forward loss exactly as silencing them in perform mode only, and the observe
  metrics exactly as silencing them in observe mode only. The table has one set of rows per mode
  (``mode``: where the units were silenced and what was measured); "both modes" is their union.
- The unablated path is unchanged: training and ``collect_hidden`` call the core module once;
  the step-wise core here (GRU, LSTM or tanh RNN) is used only for ablation, and matches the
  module's output to float rounding (tested).

Table columns (``ablation.csv``): mode, metric, clamp, selection, k, frac_units, baseline (no
unit silenced), value (mean over draws for random), delta (value - baseline), delta_sd (sd over
random draws), n_draws, random_mean, random_sd (of the random draws' delta), z_vs_random and
percentile_vs_random (of this delta among the random deltas), the last four on mirror and anti
rows. A harmful ablation raises a loss (delta > 0) and lowers the accuracy (delta < 0).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from mirror_sweep.analysis.unit_subsets import (
    compare_to_random,
    random_subsets,
    select_units,
    subset_sizes,
)
from mirror_sweep.run.env import SequenceSet
from mirror_sweep.run.model import MirrorGRU

CLAMPS = ("zero", "mean")
ABLATION_COLUMNS = ["mode", "metric", "clamp", "selection", "k", "frac_units", "baseline",
                    "value", "delta", "delta_sd", "n_draws", "random_mean", "random_sd",
                    "z_vs_random", "percentile_vs_random"]
MODE_METRICS = {"perform": ("forward_loss",), "observe": ("inverse_loss", "observe_accuracy")}
_MASKS_PER_CHUNK = 16  # silencing patterns run together: chunk x N sequences per GRU step


def core_steps(core: nn.Module, inputs: torch.Tensor, keep: torch.Tensor, fill: torch.Tensor
               ) -> torch.Tensor:
    """A one-layer core (nn.GRU, nn.LSTM or tanh nn.RNN) run step by step, with units clamped
    after every step.

    Args:
        core: a one-layer, unidirectional, batch-first core with biases.
        inputs: (B, T, I) inputs, the same for every silencing pattern.
        keep: (M, H) 1.0 for units left alone, 0.0 for silenced units, one row per pattern.
        fill: (M, H) the value a silenced unit is clamped to.

    Returns:
        (M, B, T, H) states (an LSTM's h; its cell state c is internal and only reaches the rest
        of the network through h, so clamping h silences the unit); with keep all ones, the
        core's own output for every pattern.
    """
    step = _STEPS.get(type(core))
    if step is None or getattr(core, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"ablation: no step-wise path for core {core!r}")
    gates_in = inputs @ core.weight_ih_l0.T + core.bias_ih_l0  # (B, T, G*H), pattern-free
    keep, fill = keep[:, None, :], (1.0 - keep[:, None, :]) * fill[:, None, :]
    h = inputs.new_zeros(keep.shape[0], inputs.shape[0], core.hidden_size)
    c = torch.zeros_like(h)
    states = []
    for t in range(inputs.shape[1]):
        h, c = step(gates_in[:, t], h @ core.weight_hh_l0.T + core.bias_hh_l0, h, c)
        h = h * keep + fill
        states.append(h)
    return torch.stack(states, dim=2)


def _gru_step(gi, gh, h, c):
    """torch's GRU update (gates r, z, n in that order in the weight rows)."""
    gi, gh = gi.chunk(3, dim=-1), gh.chunk(3, dim=-1)
    reset = torch.sigmoid(gi[0] + gh[0])
    update = torch.sigmoid(gi[1] + gh[1])
    candidate = torch.tanh(gi[2] + reset * gh[2])
    return (1.0 - update) * candidate + update * h, c


def _lstm_step(gi, gh, h, c):
    """torch's LSTM update (gates i, f, g, o in that order in the weight rows)."""
    i, f, g, o = (gi + gh).chunk(4, dim=-1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def _rnn_step(gi, gh, h, c):
    """torch's Elman RNN update with tanh."""
    return torch.tanh(gi + gh), c


_STEPS = {nn.GRU: _gru_step, nn.LSTM: _lstm_step, nn.RNN: _rnn_step}


def mode_metrics(model: MirrorGRU, mode: str, hidden: torch.Tensor,
                 tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The measures of one mode for each pattern: hidden (M, B, T, H) -> {metric: (M,)}."""
    if mode == "perform":
        predicted = model.sensory_head(hidden)
        target = tensors["perform_sensory"].expand_as(predicted)
        return {"forward_loss": F.mse_loss(predicted, target, reduction="none").mean((1, 2, 3))}
    logits = model.action_head(hidden)  # (M, B, T, K)
    labels = tensors["observe_actions"].expand(logits.shape[:-1])
    loss = F.cross_entropy(logits.permute(0, 3, 1, 2), labels, reduction="none").mean((1, 2))
    accuracy = (logits.argmax(-1) == labels).float().mean((1, 2))
    return {"inverse_loss": loss, "observe_accuracy": accuracy}


def first_sequences(data: SequenceSet, n: int | None) -> SequenceSet:
    """The first n sequences of a set (all when n is None or exceeds its size)."""
    if n is None or n >= len(data):
        return data
    return SequenceSet(*(array[:n] for array in (data.perform_actions, data.perform_sensory,
                                                 data.observe_sensory, data.observe_actions)))


@torch.no_grad()
def silenced_metrics(model: MirrorGRU, data: SequenceSet, mode: str, keep: torch.Tensor,
                     fill: torch.Tensor) -> dict[str, np.ndarray]:
    """Each silencing pattern's metrics of one mode on a whole set: {metric: (M,) float64}."""
    model.eval()
    tensors = {"perform_sensory": torch.from_numpy(data.perform_sensory),
               "observe_actions": torch.from_numpy(data.observe_actions)}
    if mode == "perform":
        core, inputs = model.perform_core, model.action_embedding(
            torch.from_numpy(data.perform_actions))
    else:
        core, inputs = model.observe_core, model.sensory_projection(
            torch.from_numpy(data.observe_sensory))
    parts: dict[str, list[torch.Tensor]] = {metric: [] for metric in MODE_METRICS[mode]}
    for start in range(0, len(keep), _MASKS_PER_CHUNK):
        chunk = slice(start, start + _MASKS_PER_CHUNK)
        hidden = core_steps(core, inputs, keep[chunk], fill[chunk])
        for metric, values in mode_metrics(model, mode, hidden, tensors).items():
            parts[metric].append(values)
    return {metric: torch.cat(values).double().numpy() for metric, values in parts.items()}


def silencing_sets(r: np.ndarray, fractions, n_random: int, rng: np.random.Generator
                   ) -> list[tuple[str, int, np.ndarray]]:
    """(selection, k, units (D, k)) for mirror, anti and random units at each k of `fractions`."""
    sets = []
    for k in subset_sizes(fractions, len(r)):
        sets += [("mirror", k, select_units(r, k, "mirror")[None]),
                 ("anti", k, select_units(r, k, "anti")[None]),
                 ("random", k, random_subsets(len(r), k, n_random, rng))]
    return sets


def ablation_table(model: MirrorGRU, data: SequenceSet, r: np.ndarray,
                   unit_means: dict[str, np.ndarray], *, fractions, n_random: int,
                   rng: np.random.Generator, n_threads: int = 1) -> pd.DataFrame:
    """Silence mirror, anti and random units (both clamps, each mode) and tabulate the changes.

    Args:
        model: the trained model; data: the test set; r: (H,) per-unit r (nan ranks last).
        unit_means: {"perform", "observe"}: (H,) mean unablated state per unit (the mean clamp).
        fractions: k as fractions of H; n_random: random draws per k; rng: their generator.
        n_threads: the (mode, clamp) passes run in this many threads (torch ops release the
            GIL; each op keeps torch's own thread count, so the table does not depend on it).

    Returns:
        The table of the module docstring.
    """
    n_units = len(r)
    sets = silencing_sets(r, fractions, n_random, rng)
    keep = np.ones((sum(len(units) for _, _, units in sets), n_units), dtype=np.float32)
    row = 0
    for _, _, units in sets:
        for subset in units:
            keep[row, subset] = 0.0
            row += 1
    keep_t = torch.from_numpy(np.vstack([np.ones((1, n_units), np.float32), keep]))
    passes = [(mode, clamp) for mode in MODE_METRICS for clamp in CLAMPS]

    def measure(mode_clamp: tuple[str, str]) -> dict[str, np.ndarray]:
        mode, clamp = mode_clamp
        value = 0.0 if clamp == "zero" else unit_means[mode].astype(np.float32)
        fill = torch.from_numpy(np.broadcast_to(np.float32(value), keep_t.shape).copy())
        return silenced_metrics(model, data, mode, keep_t, fill)

    model.eval()  # once, before any thread runs the model
    if n_threads > 1:
        with ThreadPoolExecutor(n_threads) as pool:
            measured = list(pool.map(measure, passes))
    else:
        measured = [measure(mode_clamp) for mode_clamp in passes]
    rows = []
    for (mode, clamp), values in zip(passes, measured):
        for metric in MODE_METRICS[mode]:
            rows += ablation_rows(mode, metric, clamp, sets, values[metric], n_units)
    return pd.DataFrame(rows, columns=ABLATION_COLUMNS)


def ablation_rows(mode: str, metric: str, clamp: str, sets, values: np.ndarray,
                  n_units: int) -> list[dict]:
    """Rows of one (mode, metric, clamp); values[0] is the baseline, then the sets in order."""
    baseline, start = float(values[0]), 1
    deltas = {}
    for selection, k, units in sets:
        deltas[selection, k] = values[start: start + len(units)] - baseline
        start += len(units)
    rows = []
    for selection, k, units in sets:
        delta = deltas[selection, k]
        row = {"mode": mode, "metric": metric, "clamp": clamp, "selection": selection, "k": k,
               "frac_units": k / n_units, "baseline": baseline,
               "value": baseline + float(delta.mean()), "delta": float(delta.mean()),
               "delta_sd": float(delta.std(ddof=1)) if len(delta) > 1 else math.nan,
               "n_draws": len(delta)}
        # random sets are the reference, not compared with themselves: nan columns
        versus = compare_to_random(row["delta"] if selection != "random" else math.nan,
                                   deltas["random", k])
        rows.append({**row, **versus})
    return rows


def ablation_summary(table: pd.DataFrame, k: int) -> dict[str, float]:
    """At one k: ablation_{mirror,anti}_{clamp}_{metric}_{delta,z}, ablation_random_..._delta."""
    out = {}
    for row in table[table["k"] == k].itertuples():
        prefix = f"ablation_{row.selection}_{row.clamp}_{row.metric}"
        out[f"{prefix}_delta"] = row.delta
        if row.selection != "random":
            out[f"{prefix}_z"] = row.z_vs_random
    return out
