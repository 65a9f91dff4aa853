"""Registers the ``notebook`` marker of the notebook tests (``pytest -m notebook`` / ``-m "not notebook"``)."""


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "notebook: executes a colab/ notebook headless in its tiny setting (slow; needs nbclient)"
    )
