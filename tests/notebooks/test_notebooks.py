"""The colab/ notebooks: committed without outputs, and each runs top to bottom in its tiny setting.

The run tests execute every notebook with ``nbclient`` in a fresh kernel with
``COMPACT_JAX_SMOKE=1`` (tiny sizes on CPU); any failing cell fails the test.
Select them with ``-m notebook`` or skip them with ``-m "not notebook"``.
"""

import json
import os
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((REPO / "colab").glob("*.ipynb"))
CELL_TIMEOUT_S = 180  # no cell may take longer; whole notebooks take well under a minute


def test_there_are_notebooks():
    names = {path.name for path in NOTEBOOKS}
    assert {"train_on_tpu.ipynb", "approximation_experiments.ipynb", "fdc3d_frequency.ipynb"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    notebook = json.loads(path.read_text(encoding="utf-8"))
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        assert cell.get("outputs") == [], f"{path.name} cell {index} has outputs: strip them before committing"
        assert cell.get("execution_count") is None, f"{path.name} cell {index} has an execution count"


@pytest.mark.slow
@pytest.mark.notebook
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Jupyter client machinery's own deprecations
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_in_smoke_mode(path, tmp_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    # The kernel inherits this environment: tiny sizes, the checkout importable, no GUI backend.
    monkeypatch.setenv("COMPACT_JAX_SMOKE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},  # runs/ and other outputs go to tmp_path
    )
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
