"""The units' r mirror-aggregate reads for the claims, kept between passes (sweep/unit_r.py)."""

from __future__ import annotations

import os

import pandas as pd

from mirror_sweep.cli import aggregate_main
from mirror_sweep.sweep import unit_r
from mirror_sweep.sweep.aggregate import aggregate_sweep
from mirror_sweep.sweep.synthetic import write_sweep

ARGS = ["--n-boot", "20", "--no-figures", "--quiet"]


def aggregate(sweep, out) -> None:
    assert aggregate_main([str(sweep), "--out", str(out), *ARGS]) == 0


def kept_table(out) -> pd.DataFrame:
    kept = unit_r._load(out / unit_r.R_FILE)
    assert kept is not None
    return kept.table


def test_passes_that_append_runs_read_the_units_r_of_one_read_of_the_final_file(tmp_path):
    sweep, out, fresh = tmp_path / "s", tmp_path / "out", tmp_path / "fresh"
    write_sweep(sweep, 12, hidden_sizes=(2,))
    aggregate(sweep, out)  # a full pass: the CSV read whole, R_FILE written for it
    pd.testing.assert_frame_equal(kept_table(out), unit_r.read_unit_r(out / "units.csv"))
    before = (out / unit_r.R_FILE).stat().st_mtime_ns
    aggregate(sweep, out)  # nothing changed: R_FILE holds the file already, not rewritten
    assert (out / unit_r.R_FILE).stat().st_mtime_ns == before
    earlier = unit_r.read_before(out)
    write_sweep(sweep, 4, start=12, hidden_sizes=(2,))
    result = aggregate_sweep(sweep, out, n_boot=20, progress_every=0)
    assert result.kept_files["units"] == earlier.stamp  # the new runs' rows were appended
    after = unit_r.read_after(out, earlier, result.kept_files["units"])
    whole = unit_r.read_unit_r(out / "units.csv")
    assert len(whole) > len(earlier.table)
    pd.testing.assert_frame_equal(after.table, whole, check_exact=True)
    write_sweep(sweep, 3, start=16, hidden_sizes=(2,))
    aggregate(sweep, out)  # the command: R_FILE read, the appended rows added, R_FILE again
    pd.testing.assert_frame_equal(kept_table(out), unit_r.read_unit_r(out / "units.csv"),
                                  check_exact=True)
    aggregate(sweep, fresh)  # the claims are those of a full pass
    assert (out / "claims.md").read_text() == (fresh / "claims.md").read_text()


def test_a_units_file_written_anew_or_changed_behind_its_back_is_read_whole(tmp_path):
    sweep, out = tmp_path / "s", tmp_path / "out"
    write_sweep(sweep, 8, hidden_sizes=(2,))
    aggregate(sweep, out)
    earlier = unit_r.read_before(out)
    # kept is another file's stamp (the pass wrote units.csv anew): read whole
    assert unit_r.read_after(out, earlier, b"\0" * 16).table is not earlier.table
    units = out / "units.csv"
    table = pd.read_csv(units, dtype={"run_id": str})
    table.iloc[::2].to_csv(units, index=False)  # changed by something else
    assert unit_r.read_before(out).table.equals(unit_r.read_unit_r(units))
    assert len(unit_r.read_before(out).table) < len(earlier.table)


def test_a_damaged_or_foreign_units_r_file_reads_as_absent(tmp_path):
    sweep, out = tmp_path / "s", tmp_path / "out"
    write_sweep(sweep, 6, hidden_sizes=(2,))
    aggregate(sweep, out)
    path = out / unit_r.R_FILE
    data = path.read_bytes()
    for broken in [data[:-5], data[:-1] + bytes([data[-1] ^ 1]), b"something else", b""]:
        path.write_bytes(broken)
        assert unit_r._load(path) is None
        earlier = unit_r.read_before(out)  # then the CSV is read
        pd.testing.assert_frame_equal(earlier.table, unit_r.read_unit_r(out / "units.csv"))
    aggregate(sweep, out)  # and the file written again
    assert unit_r._load(path) is not None


def test_rows_appended_with_other_types_are_read_whole(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    units = out / "units.csv"
    pd.DataFrame({"run_id": ["0", "0"], "unit": [0, 1], "r": [0.5, -0.25]}).to_csv(
        units, index=False)
    earlier = unit_r.read_before(out)
    kept = earlier.stamp
    with open(units, "a") as handle:
        handle.write("1,0,not a number\n")
    os.utime(units)
    after = unit_r.read_after(out, earlier, kept)
    pd.testing.assert_frame_equal(after.table, unit_r.read_unit_r(units))
    assert after.table["r"].dtype != earlier.table["r"].dtype  # not float64: read as one file


def test_a_changing_file_is_not_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    units = out / "units.csv"
    pd.DataFrame({"run_id": ["0"], "r": [0.5]}).to_csv(units, index=False)
    read = unit_r.read_before(out)
    unit_r.keep(out, unit_r.UnitR(read.table, None, read.header))  # changed while read
    assert not (out / unit_r.R_FILE).exists()
    unit_r.keep(out, read)
    assert unit_r._load(out / unit_r.R_FILE).stamp == read.stamp
