"""The notebooks in notebooks/: committed without outputs, and each runs top to bottom without an
error (nbclient, a per-cell timeout, the venv's python as kernel)."""
from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest

from _notebooks import CELL_TIMEOUT, NOTEBOOKS, executed, kernel_env, widget_errors

IDS = [p.name for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:5] == ["01_quickstart.ipynb", "02_decomposition_textspan_ccs.ipynb",
                                              "03_head_pursuit.ipynb", "04_aat.ipynb", "05_interactive.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_is_stripped(path):
    """No outputs, execution counts, execution timings or saved widget state in git."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or execution counts; strip them before committing"
    assert "widgets" not in nb.metadata, f"{path.name} carries saved widget state; strip it"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_has_colab_setup_and_model_variable(path):
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert 'if "google.colab" in sys.modules:' in code[0], "the first code cell installs clipinterp on Colab only"
    assert sum('MODEL = "shapes-clip"' in c for c in code) == 1, "one MODEL variable to change"


def test_kernel_is_this_interpreter():
    import json
    import os
    import sys

    root = Path(kernel_env())
    spec = json.loads((root / "kernels" / "python3" / "kernel.json").read_text())
    assert Path(spec["argv"][0]).resolve() == Path(sys.executable).resolve()
    assert os.environ["JUPYTER_PATH"].split(os.pathsep)[0] == str(root)  # found before any other spec


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs(path):
    start = time.perf_counter()
    nb = executed(path.name)  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - start
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert not widget_errors(nb), f"errors inside widgets: {widget_errors(nb)}"
    print(f"{path.name}: {seconds:.1f} s (cell timeout {CELL_TIMEOUT} s)")
