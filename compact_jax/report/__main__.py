"""Command line of :mod:`compact_jax.report`: ``python -m compact_jax.report MODEL --policy PRESET``."""

import sys

from compact_jax.report import main

if __name__ == "__main__":
    sys.exit(main())
