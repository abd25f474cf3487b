"""``python -m perfkit``: the same command line as ``perfkit`` (for pipx users and a venv without scripts)."""

import sys

from perfkit.cli import main

sys.exit(main())
