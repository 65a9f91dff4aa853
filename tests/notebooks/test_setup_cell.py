"""The notebooks' shared first cell (colab/setup_cell.py), executed headless branch by branch.

On Colab the first cell cannot import compact_jax before installing it, so its logic lives in the
cell's own source; these tests execute that source in a namespace and call its functions with the
environment (installed or not, Colab or not, Drive mounted or not, backend) supplied as arguments.
"""

import json
import pathlib
import subprocess
import sys
import types

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SETUP_CELL = REPO / "colab" / "setup_cell.py"
NOTEBOOKS = sorted((REPO / "colab").glob("*.ipynb"))
PLACEHOLDER = "git+https://github.com/<org>/compact_jax"


@pytest.fixture()
def cell():
    """The cell's namespace after running it here (compact_jax is importable: nothing is installed)."""
    namespace = {}
    exec(compile(SETUP_CELL.read_text(encoding="utf-8"), str(SETUP_CELL), "exec"), namespace)
    return types.SimpleNamespace(**{k: v for k, v in namespace.items() if not k.startswith("__")})


def _not_installed(name):
    return None


def _no_run(*args, **kwargs):
    raise AssertionError("pip must not run")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_notebook_starts_with_the_setup_cell(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first_code = next(c for c in cells if c["cell_type"] == "code")
    assert "".join(first_code["source"]).rstrip() == SETUP_CELL.read_text(encoding="utf-8").rstrip(), (
        f"{path.name}: its first code cell must be colab/setup_cell.py verbatim (copy it in)")
    later = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"][1:]
    assert not any("pip" in s and "install" in s for s in later), f"{path.name}: only the first cell installs"


def test_the_cell_ships_with_the_placeholder_and_skips_an_installed_package(cell):
    assert cell.INSTALL_SOURCE == PLACEHOLDER
    assert cell.ensure_installed(cell.INSTALL_SOURCE, run=_no_run) is False  # importable here: no pip


@pytest.mark.parametrize("source", [PLACEHOLDER, "", "  "])
def test_placeholder_left_in_stops_with_one_line_naming_the_setting(cell, source):
    with pytest.raises(cell.SetupError) as caught:
        cell.ensure_installed(source, run=_no_run, find_spec=_not_installed)
    rendered = caught.value._render_traceback_()
    assert len(rendered) == 1 and "\n" not in rendered[0]
    assert "set INSTALL_SOURCE in the first cell" in rendered[0]


def test_install_commands_for_each_kind_of_source(cell, tmp_path):
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    assert cell.install_command("git+https://github.com/me/compact_jax@v1") == [
        *pip, "compact_jax @ git+https://github.com/me/compact_jax@v1"]
    assert cell.install_command("https://github.com/me/compact_jax") == [
        *pip, "compact_jax @ git+https://github.com/me/compact_jax"]
    assert cell.install_command(str(REPO)) == [*pip, str(REPO)]  # a folder holding the repository
    wheel = tmp_path / "compact_jax-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    assert cell.install_command(str(wheel)) == [*pip, str(wheel)]


@pytest.mark.parametrize("kind", ["folder_without_pyproject", "missing_path", "missing_wheel"])
def test_unusable_sources_stop_with_one_line(cell, tmp_path, kind):
    source = {"folder_without_pyproject": str(tmp_path), "missing_path": str(tmp_path / "nope"),
              "missing_wheel": str(tmp_path / "x.whl")}[kind]
    with pytest.raises(cell.SetupError, match="INSTALL_SOURCE") as caught:
        cell.ensure_installed(source, run=_no_run, find_spec=_not_installed)
    assert source in str(caught.value) and "\n" not in str(caught.value)


def test_folder_install_runs_pip_on_the_repository_and_checks_the_import(cell):
    calls, found = [], iter([None, object()])  # missing before pip, importable after

    def run(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    assert cell.ensure_installed(str(REPO), run=run, find_spec=lambda name: next(found)) is True
    assert calls == [[sys.executable, "-m", "pip", "install", "-q", str(REPO)]]
    assert (REPO / "pyproject.toml").is_file()


def test_failed_pip_stops_with_its_error_line(cell):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "Collecting x\nERROR: No matching distribution\nnote: y\n")

    with pytest.raises(cell.SetupError) as caught:
        cell.ensure_installed("git+https://github.com/me/compact_jax", run=run, find_spec=_not_installed)
    assert str(caught.value).endswith("ERROR: No matching distribution")


def test_installed_but_not_importable_asks_for_a_restart(cell):
    def run(command, **kwargs):
        return subprocess.CompletedProcess(command, 0, "", "")

    with pytest.raises(cell.SetupError, match="restart the runtime"):
        cell.ensure_installed(str(REPO), run=run, find_spec=_not_installed)


def test_workdir_on_colab_without_drive_warns_that_it_is_not_persistent(cell, tmp_path, capsys):
    assert cell.workdir_root("", drive=str(tmp_path / "unmounted"), on_colab=True) == "runs"
    err = capsys.readouterr().err
    assert err.startswith("WARNING: runs go to") and "deleted when the runtime disconnects" in err
    assert "drive.mount" in err and "WORKDIR_ROOT" in err


def test_workdir_defaults_to_mounted_drive_and_takes_a_bucket(cell, tmp_path, capsys):
    assert cell.workdir_root("", drive=str(tmp_path), on_colab=True) == str(tmp_path / "compact_jax_runs")
    assert cell.workdir_root("gs://bucket/runs/", drive=str(tmp_path / "x"), on_colab=True) == "gs://bucket/runs"
    assert cell.workdir_root("", drive=str(tmp_path / "x"), on_colab=False) == "runs"  # a local machine's disk
    assert capsys.readouterr().err == ""


def test_long_cpu_run_stops_unless_allowed(cell, capsys):
    with pytest.raises(cell.SetupError) as caught:
        cell.check_cpu_run(backend="cpu", seconds=7.5 * 3600, allowed=False)
    message = caught.value._render_traceback_()
    assert len(message) == 1 and "about 7.5 hours" in message[0] and "RUN_ON_CPU = True" in message[0]
    cell.check_cpu_run(backend="cpu", seconds=7.5 * 3600, allowed=True)
    assert "about 7.5 hours" in capsys.readouterr().out
    cell.check_cpu_run(backend="tpu", seconds=7.5 * 3600, allowed=False)  # accelerators: no question
    cell.check_cpu_run(backend="cpu", seconds=60, allowed=False)  # short runs just start


@pytest.mark.notebook
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the Jupyter client machinery's own deprecations
def test_run_all_stops_in_the_first_cell_with_one_line(tmp_path, monkeypatch):
    """In a real kernel where compact_jax is missing, "run all" with the placeholder stops at the first cell."""
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    hide = ("import importlib.util\n_find = importlib.util.find_spec\n"
            "importlib.util.find_spec = lambda name, *a: None if name == 'compact_jax' else _find(name, *a)")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(hide),
                                               nbformat.v4.new_code_cell(SETUP_CELL.read_text(encoding="utf-8")),
                                               nbformat.v4.new_code_cell("print('the second cell ran')")])
    client = nbclient.NotebookClient(notebook, timeout=60, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    with pytest.raises(nbclient.exceptions.CellExecutionError):
        client.execute()
    (error,) = [o for o in notebook.cells[1].outputs if o.output_type == "error"]
    assert error.ename == "SetupError"
    assert len(error.traceback) == 1 and "set INSTALL_SOURCE in the first cell" in error.traceback[0]
    assert notebook.cells[2].outputs == []
