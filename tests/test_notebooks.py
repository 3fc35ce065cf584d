"""The notebooks: committed without outputs, and every cell runs in smoke mode (``DEEPUL_SMOKE=1``:
a few steps of each part), executed by a Jupyter kernel as a user would.

    python -m pytest tests/test_notebooks.py
"""

from __future__ import annotations

from pathlib import Path

import nbclient
import nbformat
import pytest

from tests.conftest import REPO_ROOT

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))


def test_both_homework_notebooks_exist():
    assert {p.name for p in NOTEBOOKS} >= {"hw1.ipynb", "hw3.ipynb"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_notebook_is_committed_without_outputs(path: Path):
    notebook = nbformat.read(path, as_version=4)
    with_outputs = [
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)
    ]
    assert not with_outputs, f"{path.name}: cells {with_outputs} hold outputs; clear them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_cell_runs_in_smoke_mode(path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DEEPUL_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError naming the cell that failed
    printed = "".join(
        output.get("text", "")
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    assert "bits/dim" in printed
    assert list(tmp_path.glob("runs/*/*/figures/*.png")), "no figure was drawn"
