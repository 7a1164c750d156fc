"""notebooks/aggregate_sweep.ipynb runs top to bottom on a tiny sweep, and is stored clean."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "aggregate_sweep.ipynb"


def parameters_cell(nb) -> nbformat.NotebookNode:
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1 and cells[0].cell_type == "code"
    return cells[0]


def test_notebook_is_stored_valid_and_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert "sweep_dir =" in parameters_cell(nb).source
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_notebook_executes_on_a_tiny_sweep(tiny_sweep, tmp_path):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    # kernel "python3": jupyter_client runs a kernelspec whose argv starts with "python" with the
    # running interpreter (sys.executable), so the venv's ipykernel and mirror_sweep are used.
    parameters_cell(nb).source = f"sweep_dir = {str(tiny_sweep)!r}\nn_boot = 200"
    client = NotebookClient(nb, kernel_name="python3", timeout=300,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/markdown", ""))
                   for o in outputs)
    assert "Claims report" in text and "C1" in text
    # Figures 1-6, then the metric-against-factor section's figure (the condition, here)
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 7
    assert "can be plotted against: ['condition']" in text
    assert (tiny_sweep / "aggregate" / "claims.csv").exists()
