"""Acceptance: the walkthrough notebook runs top to bottom with the shipped generators."""

from pathlib import Path

import nbformat
from nbclient import NotebookClient

from lstmgan.shipped import pretrained_index, resolve_path

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "gan_walkthrough.ipynb"


def test_shipped_generators_are_registered_and_small():
    names = pretrained_index()
    for name in ("mnist@1", "mnist@100", "mnist", "mnist-cgan", "mnist-conv-cgan"):
        assert name in names, name
        path = resolve_path(f"pretrained:{name}")
        assert path.is_file() and path.stat().st_size < 5_000_000       # fp16 generator only (fp32: 7-8 MB)


def test_notebook_executes_without_errors(tmp_path, monkeypatch, mnist_dir):   # it scores against real MNIST
    monkeypatch.setenv("OMP_NUM_THREADS", "1")       # the kernel inherits this process's environment
    nb = nbformat.read(NOTEBOOK, as_version=4)
    assert any(cell.get("outputs") for cell in nb.cells if cell.cell_type == "code"), "saved without outputs"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs if o.output_type == "error"]
    assert not errors
