"""The report stage of `mirror-aggregate`: the claims report and the paper's figures.

`write_report(sweep, out_dir)` writes claims.csv / claims.md into `out_dir` (SWEEP_DIR/aggregate)
and Figures 1-4 into `out_dir/figures`, then prints the claims table and where the files are.
"""

from __future__ import annotations

from pathlib import Path

from mirror_sweep.report.claims import compact_table, write_claims
from mirror_sweep.sweep.aggregate import Sweep

FIGURES_DIR = "figures"


def write_report(sweep: Sweep, out_dir: Path | str, figures: bool = True, n_boot: int = 10_000,
                 seed: int = 0, example_run: str | None = None) -> list[Path]:
    """Write the claims report and (unless figures=False) the figures; print a summary.

    Returns:
        The files written: claims.csv, claims.md, then the figures' PNG and PDF files.
    """
    out = Path(out_dir)
    table = write_claims(sweep, out, n_boot=n_boot, seed=seed)
    paths = [out / "claims.csv", out / "claims.md"]
    print("claims (measured mean [95% CI over seeds], n seeds, verdict):")
    print(compact_table(table))
    print(f"  rules and details: {out / 'claims.md'}")
    if figures:
        from mirror_sweep.report.figures import draw_figures  # matplotlib only when drawing

        drawn = draw_figures(sweep, out / FIGURES_DIR, example_run=example_run, n_boot=n_boot,
                             seed=seed)
        paths += drawn
        print(f"  figures 1-4 (png, pdf): {out / FIGURES_DIR}")
    return paths
