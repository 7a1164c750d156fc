"""torch.compile of the training step, measured honestly: compilation included, on-disk cache.

Each measurement is a fresh process (as every run and every sweep worker is), on 1 thread (the
default policy), training the default model for a few epochs with mirror_sweep.run.train.train:
- eager: the code as it is;
- compiled, cold: `torch.compile(model)` (forward and, through AOTAutograd, backward, with
  Inductor's C++ kernels), Inductor's caches in an empty folder (TORCHINDUCTOR_CACHE_DIR);
- compiled, warm: the same in a second process reusing that folder (compile once per machine).
Reported: wall of the whole training call (first-call compilation included), the per-epoch time
once compiled, the import cost of torch._dynamo/_inductor, and the largest parameter difference
from eager (float tolerance). benchmarks/run.py projects the ablation sweep's speed-up from them.

Usage: python -m benchmarks.compile_check [--epochs 3]   (prints JSON; ~3-6 min on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def train_once(mode: str, epochs: int, params_out: str) -> dict:
    """In this process: train the default model `epochs` epochs on 1 thread, eager or compiled."""
    import torch
    from hydra import compose, initialize_config_dir

    from mirror_sweep.config import CONFIG_DIR, register_configs, to_run_config
    from mirror_sweep.run.experiment import RunSeeds, build_model, make_data
    from mirror_sweep.run.train import train

    register_configs()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = to_run_config(compose(config_name="config", overrides=[
            "train.progress=false", f"train.epochs={epochs}"]))
    torch.set_num_threads(1)
    seeds = RunSeeds.from_seed(cfg.seed)
    train_set, test_set = make_data(cfg, seeds)
    model = build_model(cfg, seeds.init)
    generator = torch.Generator().manual_seed(seeds.batches)
    result = {"mode": mode}
    start = time.perf_counter()
    if mode != "eager":
        import torch._dynamo  # its import is part of the price: timed
        import torch._inductor.config
        result["import_s"] = time.perf_counter() - start
        model = torch.compile(model)
    epoch_ends = []
    train(model, train_set, test_set, cfg.train, cfg.objective, generator,
          on_epoch=lambda row: epoch_ends.append(time.perf_counter()))
    result["train_s"] = time.perf_counter() - start
    result["epoch_s"] = [b - a for a, b in zip([start, *epoch_ends], epoch_ends)]
    torch.save([p.detach().clone() for p in model.parameters()], params_out)
    return result


def run_mode(mode: str, epochs: int, cache: str, params_out: str) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "benchmarks.compile_check", "--child", mode,
                           "--epochs", str(epochs), "--params", params_out], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    if done.returncode != 0:
        return {"mode": mode, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(epochs: int = 3, warm_rounds: int = 2) -> dict:
    """eager, compiled with a cold cache, then (eager, compiled warm) x warm_rounds: each a fresh
    process, alternating, so a busy spell on a shared machine hits both sides alike.

    Returns {"eager": [runs], "cold": run, "warm": [runs]}; each compiled run carries
    max_abs_param_diff against the eager parameters.
    """
    import torch

    with tempfile.TemporaryDirectory(prefix="bench-inductor-") as folder:
        cache, eager_params = str(Path(folder) / "cache"), str(Path(folder) / "eager.pt")
        out = {"eager": [run_mode("eager", epochs, cache, eager_params)], "warm": []}
        out["cold"] = run_mode("cold", epochs, cache, str(Path(folder) / "cold.pt"))
        for i in range(warm_rounds):
            out["eager"].append(run_mode("eager", epochs, cache, eager_params))
            out["warm"].append(run_mode("warm", epochs, cache, str(Path(folder) / f"w{i}.pt")))
        eager = torch.load(eager_params)
        for i, run in enumerate([out["cold"], *out["warm"]]):
            path = Path(folder) / ("cold.pt" if i == 0 else f"w{i - 1}.pt")
            if "error" not in run:
                run["max_abs_param_diff"] = max(float((a - b).abs().max())
                                                for a, b in zip(eager, torch.load(path)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", choices=["eager", "cold", "warm"], default=None)
    parser.add_argument("--params", default=None)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(train_once(args.child, args.epochs, args.params)))
    else:
        print(json.dumps(measure(args.epochs), indent=2))


if __name__ == "__main__":
    main()
