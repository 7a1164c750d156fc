"""The report stage of `mirror-aggregate`: the claims report and the paper's figures.

`write_report(sweep, out_dir)` writes claims.csv / claims.md into `out_dir` (SWEEP_DIR/aggregate)
and Figures 1-6 into `out_dir/figures` (with the factor and mechanism figures of
report/factor_figures.py when they apply), then prints the claims table and where the files are.
The claims and Figures 1-6 read one table of across-seed statistics (report.stats.report_stats),
computed once.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mirror_sweep.report.claims_report import compact_table, write_claims
from mirror_sweep.report.signature import signature_markdown, signature_table
from mirror_sweep.report.stats import report_contrasts, report_stats
from mirror_sweep.sweep import results
from mirror_sweep.sweep.aggregate import Sweep
from mirror_sweep.sweep.summaries import DEFAULT_CI

FIGURES_DIR = "figures"


def write_report(sweep: Sweep, out_dir: Path | str, figures: bool = True, n_boot: int = 10_000,
                 seed: int = 0, example_run: str | None = None,
                 stats: pd.DataFrame | None = None, paired: pd.DataFrame | None = None,
                 ci: str = DEFAULT_CI) -> list[Path]:
    """Write the claims report and (unless figures=False) the figures; print a summary.

    stats, paired: report_stats / report_contrasts of the sweep when the caller already has
    them (else computed here with n_boot and seed).

    Returns:
        The files written: claims.csv, claims.md (ending with the "which design reproduces the
        paper's pattern" section of report/signature.py), signature.csv, then the figures.
    """
    out = Path(out_dir)
    if stats is None:
        stats = report_stats(sweep.runs, n_boot=n_boot, seed=seed, ci=ci, units=sweep.units)
    if paired is None:
        paired = report_contrasts(sweep.runs, n_boot=n_boot, seed=seed, ci=ci,
                                  units=sweep.units)
    table = write_claims(sweep, out, stats, paired=paired)
    signature = signature_table(sweep.runs, n_boot=n_boot, seed=seed, ci=ci, stats=stats,
                                paired=paired)
    results.write_table(out / "signature.csv", signature)
    text = (out / "claims.md").read_text() + signature_markdown(signature)
    results.write_atomic(out / "claims.md", lambda f: f.write(text))
    paths = [out / "claims.csv", out / "claims.md", out / "signature.csv"]
    print("claims (measured mean [95% CI over seeds], n seeds, verdict, paired effect vs "
          "controls in claims.md):")
    print(compact_table(table))
    print(f"  rules and details: {out / 'claims.md'}")
    if figures:
        from mirror_sweep.report.figures import draw_figures  # matplotlib only when drawing

        paths += draw_figures(sweep, out / FIGURES_DIR, example_run=example_run, stats=stats)
        print(f"  figures 1-6 (png, pdf): {out / FIGURES_DIR}")
        from mirror_sweep.report.factor_figures import draw_factor_figures

        factor_paths = draw_factor_figures(sweep, out / FIGURES_DIR, n_boot=n_boot, seed=seed,
                                           ci=ci)
        paths += factor_paths
        if factor_paths:
            names = sorted({p.stem for p in factor_paths})
            print(f"  factor figures ({', '.join(names)}): {out / FIGURES_DIR}")
    return paths
