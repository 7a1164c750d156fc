"""Config schemas for mirror-sweep, registered in Hydra's ConfigStore, and their validation.

The dataclasses give every key a type (OmegaConf rejects a wrong type at composition, naming the
key); `validate` adds the ranges and cross-field rules that types cannot express, so a bad config
fails before any data is drawn.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

# The Hydra config tree ships inside the package, so an installed wheel finds it.
CONFIG_DIR = str(Path(__file__).resolve().parent / "conf")


class ConfigError(ValueError):
    """A config value out of range; the message names the full key."""


class Dynamics(enum.Enum):
    linear = "linear"  # s_t = A s_{t-1} + effect(a_t) + noise
    randomized = "randomized"  # effect drawn afresh at each step, independent of the action


class Pairing(enum.Enum):
    paired = "paired"  # observe input is the sensory sequence the perform actions generated
    independent = "independent"  # observe sequences come from independently drawn actions


@dataclass
class EnvConfig:
    dynamics: Dynamics = Dynamics.linear
    n_actions: int = 4
    sensory_dim: int = 16
    seq_len: int = 12
    decay: float = 0.9
    effect_scale: float = 1.0
    noise_std: float = 0.1


@dataclass
class ModelConfig:
    shared_core: bool = True
    hidden_size: int = 96


@dataclass
class ObjectiveConfig:
    forward_weight: float = 1.0
    inverse_weight: float = 1.0
    shuffle_observe_labels: bool = False
    shared_readout: bool = False
    # Weights of further loss terms registered in run/objectives.py, by name (none by default).
    extra_terms: dict[str, float] = field(default_factory=dict)


@dataclass
class DataPairingConfig:
    train: Pairing = Pairing.paired
    test: Pairing = Pairing.paired


@dataclass
class DataConfig:
    n_train: int = 2000
    n_test: int = 300


@dataclass
class TrainConfig:
    enabled: bool = True
    epochs: int = 20
    batch_size: int = 64
    lr: float = 1e-3
    torch_threads: int | None = None
    progress: bool = True


@dataclass
class AnalysisConfig:
    abs_threshold: float = 0.6
    pos_threshold: float = 0.75
    anti_threshold: float = -0.6
    n_permutations: int = 10_000
    alpha: float = 0.05
    max_lag: int = 3
    decoding_test_fraction: float = 0.3
    decoding_null_permutations: int = 200
    ridge_alpha: float = 1.0


class Resume(enum.Enum):
    code = "code"  # skip a job complete with the same config AND the same code version
    config = "config"  # skip a job complete with the same config, whatever code ran it
    never = "never"  # rerun every job (a complete run is moved aside, never deleted)


@dataclass
class OutputConfig:
    save_activations: bool = True
    resume: Resume = Resume.code


@dataclass
class RunConfig:
    """The whole task config (everything but `hydra`)."""

    seed: int = 42
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data_pairing: DataPairingConfig = field(default_factory=DataPairingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    output: OutputConfig = field(default_factory=OutputConfig)


def register_configs() -> None:
    """Register the schema that conf/config.yaml extends, so every key is type-checked."""
    ConfigStore.instance().store(name="run_schema", node=RunConfig)


_POSITIVE_INTS = [
    "env.n_actions", "env.sensory_dim", "env.seq_len", "model.hidden_size",
    "data.n_train", "data.n_test", "train.batch_size", "analysis.n_permutations",
]
_NON_NEGATIVE = [
    "env.effect_scale", "env.noise_std", "objective.forward_weight", "objective.inverse_weight",
    "train.epochs", "analysis.max_lag", "analysis.decoding_null_permutations",
]
_POSITIVE_FLOATS = ["train.lr", "analysis.ridge_alpha"]
_FRACTIONS = ["analysis.abs_threshold", "analysis.pos_threshold", "analysis.alpha",
              "analysis.decoding_test_fraction"]


def validate(cfg: RunConfig) -> None:
    """Raise ConfigError naming the first key whose value is out of range."""
    def get(key: str) -> Any:
        value = cfg
        for part in key.split("."):
            value = getattr(value, part)
        return value

    def fail(key: str, rule: str) -> None:
        raise ConfigError(f"config key '{key}' = {get(key)!r}: {rule}")

    for key in _POSITIVE_INTS:
        if get(key) <= 0:
            fail(key, "must be a positive integer")
    for key in _NON_NEGATIVE:
        if not get(key) >= 0:
            fail(key, "must be >= 0")
    for key in _POSITIVE_FLOATS:
        if not (get(key) > 0 and math.isfinite(get(key))):
            fail(key, "must be a positive finite number")
    for key in _FRACTIONS:
        if not 0.0 <= get(key) <= 1.0:
            fail(key, "must lie in [0, 1]")
    if not -1.0 <= cfg.analysis.anti_threshold <= 0.0:
        fail("analysis.anti_threshold", "must lie in [-1, 0]")
    if not 0.0 <= cfg.env.decay < 1.0:
        fail("env.decay", "must lie in [0, 1) so the dynamics are stable")
    if cfg.train.torch_threads is not None and cfg.train.torch_threads <= 0:
        fail("train.torch_threads", "must be a positive integer or null (auto)")
    if cfg.env.n_actions < 2:
        fail("env.n_actions", "must be at least 2 (actions must be distinguishable)")
    if cfg.data.n_test < 4:
        fail("data.n_test", "must be at least 4 (decoding splits test sequences)")
    n_held_out = round(cfg.data.n_test * cfg.analysis.decoding_test_fraction)
    if not 1 <= n_held_out < cfg.data.n_test:
        fail("analysis.decoding_test_fraction",
             f"must hold out between 1 and {cfg.data.n_test - 1} of data.n_test sequences")


def to_run_config(cfg: DictConfig) -> RunConfig:
    """Convert a composed DictConfig (hydra node removed) into a validated RunConfig."""
    task = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    run_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(RunConfig), task))
    validate(run_cfg)
    return run_cfg
