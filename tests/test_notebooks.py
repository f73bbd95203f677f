"""The notebooks run from top to bottom (executed with nbclient), so they cannot rot."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))
#: What each notebook prints once its point is made.
MARKERS = {
    "quickstart": "reloaded model gives the same logits",
    "explain": "the planted colour fact is first by leave-one-out for every question",
}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, seed):
    notebook = nbformat.read(path, as_version=4)
    # A notebook that trains to a point takes the test's seed as papermill would: a cell after its
    # "parameters" cell sets it, so benchmarks/seed_robustness.py can run it under seeds 0..9.
    params = [i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", [])]
    for i in reversed(params):
        notebook.cells.insert(i + 1, nbformat.v4.new_code_cell(f"seed = {seed}"))
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(MARKERS[path.stem] in o.get("text", "") for o in outputs)
    if path.stem == "explain":  # the three pictures
        assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3
