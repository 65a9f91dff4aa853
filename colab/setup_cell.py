# The first code cell of every notebook in this folder (tests/notebooks checks they are identical).
# Edit the two settings; everything else in this cell is shared setup.
INSTALL_SOURCE = "git+https://github.com/<org>/compact_jax"  # a git URL, a folder holding this repository
# (e.g. "/content/drive/MyDrive/compact_jax" after mounting Drive) or a built .whl file
WORKDIR_ROOT = ""  # "": Google Drive when mounted, else ./runs (lost when the runtime goes); or "gs://BUCKET/DIR"

import importlib
import importlib.util
import os
import subprocess
import sys

SMOKE = os.environ.get("COMPACT_JAX_SMOKE", "") == "1"  # tiny CPU run (the tests)
DRIVE = "/content/drive/MyDrive"


class SetupError(Exception):
    """Stops "run all" with this one line (IPython prints only what ``_render_traceback_`` returns)."""

    def _render_traceback_(self):
        return [f"SetupError: {self}"]


def install_command(source):
    """The pip command installing ``source``: a git URL, a folder with pyproject.toml or a .whl file."""
    source = str(source).strip()
    if not source or "<org>" in source:
        raise SetupError("set INSTALL_SOURCE in the first cell: a git URL (git+https://github.com/OWNER/compact_jax),"
                         " a folder holding the repository, or a built .whl file")
    if source.startswith(("git+", "https://", "http://", "ssh://")):
        url = source if source.startswith("git+") or source.endswith(".whl") else f"git+{source}"
        target = url if url.endswith(".whl") else f"compact_jax @ {url}"
    elif os.path.isdir(source):
        if not os.path.isfile(os.path.join(source, "pyproject.toml")):
            raise SetupError(f"INSTALL_SOURCE folder {source!r} has no pyproject.toml: give the repository's top folder")
        target = os.path.abspath(source)
    elif source.endswith(".whl") and os.path.isfile(source):
        target = os.path.abspath(source)
    else:
        raise SetupError(f"INSTALL_SOURCE {source!r} is not a git URL, an existing folder or an existing .whl file"
                         f" (a Drive copy needs Drive mounted first)")
    return [sys.executable, "-m", "pip", "install", "-q", target]


def ensure_installed(source, *, run=subprocess.run, find_spec=importlib.util.find_spec):
    """Installs compact_jax from ``source`` unless it is importable; one-line SetupError on failure."""
    if find_spec("compact_jax") is not None:
        return False
    done = run(install_command(source), capture_output=True, text=True)
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout or "").splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("ERROR")] or lines or ["(no output)"]
        raise SetupError(f"pip could not install INSTALL_SOURCE = {source!r}: {errors[-1].strip()}")
    importlib.invalidate_caches()
    if find_spec("compact_jax") is None:
        raise SetupError(f"INSTALL_SOURCE = {source!r} installed, but compact_jax is not importable: restart the runtime")
    return True


def workdir_root(setting, *, drive=DRIVE, on_colab=None):
    """Where runs go: ``setting`` if given, else Drive when mounted, else ./runs (warned when not persistent)."""
    on_colab = "google.colab" in sys.modules if on_colab is None else on_colab
    if setting:
        root = str(setting).rstrip("/")
    elif os.path.isdir(drive):
        root = os.path.join(drive, "compact_jax_runs")
    else:
        root = "runs"
    persistent = root.startswith("gs://") or root.startswith(drive) or not on_colab
    if not persistent:
        print(f"WARNING: runs go to {os.path.abspath(root)!r}, which is deleted when the runtime disconnects; mount"
              f" Drive (from google.colab import drive; drive.mount('/content/drive')) and rerun this cell, or set"
              f" WORKDIR_ROOT = 'gs://BUCKET/DIR'", file=sys.stderr)
    return root


def check_cpu_run(*, backend, seconds, allowed, limit_s=1800):
    """Stops a long run on a CPU runtime (estimated ``seconds``) unless ``allowed``; prints the estimate."""
    if backend != "cpu" or seconds <= limit_s:
        return
    estimate = f"about {seconds / 3600:.1f} hours" if seconds >= 3600 else f"about {seconds / 60:.0f} minutes"
    if allowed:
        print(f"Training on a CPU runtime: {estimate}.")
        return
    raise SetupError(f"this run takes {estimate} on a CPU runtime: switch the runtime to a TPU or GPU (Runtime >"
                     f" Change runtime type), shorten it with OVERRIDES, or set RUN_ON_CPU = True to start anyway")


ensure_installed(INSTALL_SOURCE)
RUNS = workdir_root(WORKDIR_ROOT)
