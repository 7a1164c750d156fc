"""Synthetic sweeps for tests and benchmarks: job folders as a real sweep writes them, no training.

`write_sweep(root, n_runs)` writes job folders `root/0 .. root/N-1`, each with the files of a
finished run: `.hydra/config.yaml`, `overrides.yaml` and `hydra.yaml` (composed once per condition
from the package's own Hydra configs, so config keys, group choices and Hydra's layout are the
real ones), summary.json (the keys a real run records), units.csv, decoding.csv and history.csv
(the real columns, random values drawn from the job's seed), optionally activations.npz, and
status.json with valid checksums and config hash. Job j runs condition CONDITIONS[j % 9] at
hidden size HIDDEN_SIZES[(j // 9) % len] and seed j // (9 * len(HIDDEN_SIZES)), so configs are
distinct; `start` continues a sweep (more seeds), `duplicates` adds copies of the first runs
under new folder numbers (as in a merged sweep). Files are written plainly (no fsync): ~1 ms/run.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import time
from pathlib import Path

import numpy as np
import yaml

from mirror_sweep.sweep import results

CONDITIONS = ["shared_bidirectional", "forward_only", "separate_cores", "shared_readout",
              "shuffled_observe", "randomized_dynamics", "independent_pairing",
              "independent_train_pairing", "untrained"]
HIDDEN_SIZES = (8,)
N_EPOCHS = 2
# The keys of a real run's summary.json besides seed and n_units (as written on main).
SUMMARY_KEYS = [
    "n_parameters", "analysis_seed", "final_train_forward_loss", "final_train_inverse_loss",
    "final_train_total_loss", "final_test_forward_loss", "final_test_inverse_loss",
    "final_test_observe_accuracy", "n_sequences", "n_timesteps", "n_actions",
    "n_constant_units", "frac_abs_r_gt", "frac_r_gt", "max_r", "min_r", "n_anti_mirror",
    "mean_abs_r", "time_centred_frac_abs_r_gt", "time_centred_frac_r_gt", "time_centred_max_r",
    "time_centred_min_r", "time_centred_n_anti_mirror", "time_centred_mean_abs_r",
    "maxstat_threshold", "n_sig_mirror_bh", "n_sig_anti_bh", "n_sig_mirror_by",
    "n_sig_anti_by", "n_sig_mirror_bonferroni", "n_sig_anti_bonferroni",
    "n_sig_mirror_maxstat", "n_sig_anti_maxstat", "null_mean_frac_abs_r_gt",
    "excess_frac_abs_r_gt", "null_mean_frac_r_gt", "excess_frac_r_gt",
    "frac_selective_perform", "frac_selective_observe", "frac_selective_both", "frac_congruent",
    "frac_congruent_chance", "median_abs_peak_lag", "frac_peak_lag_zero",
    *[f"decode_{a}_to_{b}_{stat}" for a in ("perform", "observe") for b in ("perform", "observe")
      for stat in ("accuracy", "chance", "null_sd", "p")],
    "untrained_frac_abs_r_gt", "untrained_frac_r_gt", "untrained_max_r", "untrained_min_r",
    "untrained_n_anti_mirror", "untrained_mean_abs_r", "time_data_s", "time_train_s",
    "time_analysis_s", "torch_threads"]
_LAGS = ["neg3", "neg2", "neg1", "0", "pos1", "pos2", "pos3"]
UNIT_COLUMNS = [
    "unit", "r", "r_untrained", "r_time_centred", "p_value", "q_bh", "q_by", "p_bonferroni",
    "p_maxstat", "sig_maxstat", "null_mean_abs_r", "null_sd_r",
    *[f"mean_perform_a{a}" for a in range(4)], "anova_f_perform", "anova_p_perform",
    "anova_q_perform", *[f"mean_observe_a{a}" for a in range(4)], "anova_f_observe",
    "anova_p_observe", "anova_q_observe", "tuning_r", "preferred_action_perform",
    "preferred_action_observe", "selective_perform", "selective_observe", "selective_both",
    "congruent", *[f"xcorr_lag_{lag}" for lag in _LAGS], "peak_lag", "peak_xcorr"]
_INT_UNIT_COLUMNS = {"unit", "preferred_action_perform", "preferred_action_observe"}
_BOOL_UNIT_COLUMNS = {"sig_maxstat", "selective_perform", "selective_observe", "selective_both",
                      "congruent"}
HISTORY_COLUMNS = ["epoch", "train_forward_loss", "train_inverse_loss", "train_total_loss",
                   "test_forward_loss", "test_inverse_loss", "test_observe_accuracy"]
_MODES = [("perform", "perform"), ("perform", "observe"), ("observe", "perform"),
          ("observe", "observe")]
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


@functools.lru_cache(maxsize=4)
def compose_templates(conditions: tuple[str, ...]) -> dict[str, tuple[dict, str]]:
    """Per condition: the composed task config and hydra.yaml text with @@H@@/@@S@@/@@N@@/@@OUT@@
    placeholders (hidden size, seed, job number, output folder)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from mirror_sweep.config import CONFIG_DIR, register_configs

    register_configs()
    templates = {}
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        for condition in conditions:
            cfg = compose("config", overrides=[f"condition={condition}"],
                          return_hydra_config=True)
            task = OmegaConf.to_container(cfg, resolve=False, enum_to_str=True)
            hydra = task.pop("hydra")
            hydra["mode"] = "MULTIRUN"
            hydra["overrides"]["task"] = [f"condition={condition}", "model.hidden_size=@@H@@",
                                          "seed=@@S@@"]
            hydra["job"]["num"] = "@@N@@"
            hydra["job"]["override_dirname"] = (f"condition={condition},model.hidden_size=@@H@@,"
                                                "seed=@@S@@")
            hydra["runtime"]["output_dir"] = "@@OUT@@"
            templates[condition] = (task, OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra})))
    GlobalHydra.instance().clear()
    return templates


def _csv(columns: list[str], rows: list[list]) -> bytes:
    lines = [",".join(columns)] + [",".join(map(str, row)) for row in rows]
    return ("\n".join(lines) + "\n").encode()


def run_files(task: dict, seed: int, hidden_size: int, n_epochs: int,
              activations: bool) -> dict[str, bytes]:
    """The result files of one synthetic run (random values drawn from seed and hidden size)."""
    rng = np.random.default_rng([seed, hidden_size])
    r = rng.uniform(-1, 1, hidden_size)
    units = []
    for unit in range(hidden_size):
        values = rng.uniform(-1, 1, len(UNIT_COLUMNS))
        row = []
        for column, value in zip(UNIT_COLUMNS, values):
            if column == "unit":
                row.append(unit)
            elif column == "r":
                row.append(repr(float(r[unit])))
            elif column in _INT_UNIT_COLUMNS:
                row.append(int(abs(value) * 4) % 4)
            elif column in _BOOL_UNIT_COLUMNS:
                row.append(bool(value > 0))
            else:
                row.append(repr(float(value)))
        units.append(row)
    decoding = [[a, b, repr(float(rng.uniform())), 0.25, 0.05, repr(float(rng.uniform())), 14, 6]
                for a, b in _MODES]
    history = [[epoch, *map(repr, rng.uniform(0, 10, len(HISTORY_COLUMNS) - 1).tolist())]
               for epoch in range(1, n_epochs + 1)]
    summary = {"seed": seed, "n_units": hidden_size}
    for key, value in zip(SUMMARY_KEYS, rng.uniform(0, 1, len(SUMMARY_KEYS)).tolist()):
        summary[key] = int(value * 10) if key.startswith("n_") else value
    summary.update(frac_abs_r_gt=float(np.mean(abs(r) > 0.6)), max_r=float(r.max()),
                   min_r=float(r.min()))
    files = {
        results.UNITS_FILE: _csv(UNIT_COLUMNS, units),
        results.DECODING_FILE: _csv(["train_mode", "test_mode", "accuracy", "chance", "null_sd",
                                     "p_value", "n_train_sequences", "n_test_sequences"],
                                    decoding),
        results.HISTORY_FILE: _csv(HISTORY_COLUMNS, history),
        results.SUMMARY_FILE: json.dumps(summary, indent=2).encode(),
    }
    if activations:
        buffer = io.BytesIO()
        shape = (task["data"]["n_test"], task["env"]["seq_len"])
        np.savez_compressed(
            buffer, perform_hidden=rng.standard_normal((*shape, hidden_size), dtype=np.float32),
            observe_hidden=rng.standard_normal((*shape, hidden_size), dtype=np.float32),
            perform_actions=rng.integers(0, 4, shape), observe_actions=rng.integers(0, 4, shape))
        files[results.ACTIVATIONS_FILE] = buffer.getvalue()
    return files


def write_sweep(root: Path | str, n_runs: int, start: int = 0, duplicates: int = 0,
                activation_seeds: int = 0, hidden_sizes: tuple[int, ...] = HIDDEN_SIZES,
                n_epochs: int = N_EPOCHS, conditions: list[str] | None = None) -> list[Path]:
    """Write jobs start .. start+n_runs-1 (distinct configs) into `root`; return their folders.

    activation_seeds: runs with seed < this also write activations.npz (0: none).
    duplicates: then copy the first `duplicates` of these jobs to new folders numbered after them.
    """
    root = Path(root)
    conditions = list(conditions or CONDITIONS)
    templates = compose_templates(tuple(conditions))
    per_seed = len(conditions) * len(hidden_sizes)
    folders = []
    for job in range(start, start + n_runs):
        condition = conditions[job % len(conditions)]
        hidden_size = hidden_sizes[(job // len(conditions)) % len(hidden_sizes)]
        seed = job // per_seed
        task, hydra_text = templates[condition]
        config = {**task, "seed": seed, "model": {**task["model"], "hidden_size": hidden_size}}
        folder = root / str(job)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "config.yaml").write_text(
            yaml.dump(config, Dumper=_DUMPER, sort_keys=False))
        (folder / ".hydra" / "overrides.yaml").write_text(yaml.dump(
            [f"condition={condition}", f"model.hidden_size={hidden_size}", f"seed={seed}"],
            Dumper=_DUMPER))
        (folder / ".hydra" / "hydra.yaml").write_text(
            hydra_text.replace("@@H@@", str(hidden_size)).replace("@@S@@", str(seed))
            .replace("@@N@@", str(job)).replace("@@OUT@@", str(folder)))
        files = run_files(config, seed, hidden_size, n_epochs, seed < activation_seeds)
        for name, data in files.items():
            (folder / name).write_bytes(data)
        status = {"status": "complete", "time": time.time(), "config_hash": results.task_hash(config),
                  "files": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}}
        (folder / results.STATUS_FILE).write_text(json.dumps(status, indent=2))
        folders.append(folder)
    for k in range(min(duplicates, len(folders))):
        copy = root / str(start + n_runs + k)
        shutil.copytree(folders[k], copy)
        folders.append(copy)
    return folders
