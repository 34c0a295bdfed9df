"""Shared helpers for the notebook tests: a kernel spec bound to this interpreter, and each notebook
executed at most once per test session (the browser test reuses the executed 05 notebook)."""
from __future__ import annotations

import json
import os
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("CLIPINTERP_NB_CELL_TIMEOUT", "300"))  # seconds per cell
KERNEL = "python3"


@lru_cache(maxsize=None)
def kernel_env() -> str:
    """Point JUPYTER_PATH at a temporary kernel spec "python3" that runs *this* interpreter (the venv's
    python, with ipykernel), so that no user- or system-wide kernel spec is assumed. Returns the dir."""
    import ipykernel  # noqa: F401  (fails clearly if the venv lacks it)

    root = Path(tempfile.mkdtemp(prefix="clipinterp-jupyter-"))
    spec_dir = root / "kernels" / KERNEL
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (clipinterp tests)", "language": "python",
    }))
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(root), os.environ.get("JUPYTER_PATH")]))
    # the machine is small and shared: one BLAS/OpenMP thread per kernel unless told otherwise
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    from jupyter_client.kernelspec import KernelSpecManager

    argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
    if Path(argv[0]).resolve() != Path(sys.executable).resolve():
        raise RuntimeError(f"kernel {KERNEL!r} resolves to {argv[0]}, not this interpreter {sys.executable}")
    return str(root)


def widget_errors(nb) -> list[str]:
    """Errors shown inside Output widgets (where the explorers report failing callbacks), from the
    saved widget state."""
    state = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    errors = []
    for model_id, model in state.items():
        for output in model.get("state", {}).get("outputs", []) or []:
            if output.get("output_type") == "error":
                errors.append(f"{model_id}: {output.get('ename')}: {output.get('evalue')}")
    return errors


@lru_cache(maxsize=None)
def executed(name: str):
    """The notebook ``name`` executed with nbclient (widget state stored), once per session; the
    executed copy is also written to tests/artifacts/executed/ for inspection."""
    from nbclient import NotebookClient

    kernel_env()
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name=KERNEL, store_widget_state=True,
                            resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    try:
        client.execute()
    finally:
        out = ARTIFACTS / "executed"
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / name)
    return nb
