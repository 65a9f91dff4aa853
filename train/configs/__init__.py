"""Experiment configs: one module per experiment, each with ``get_config(arg=None)``.

Add an experiment by adding a file ``NAME.py`` here (start from
``digits_dense.py``); ``python -m train --config NAME`` finds it by name.
Its docstring gives the run command and what it reproduces. Shared pieces
live in private ``_*.py`` modules (not listed as configs).
"""
