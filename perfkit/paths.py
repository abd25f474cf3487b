"""Where perfkit finds what it ships and where it writes by default.

What it ships: the notebooks and the sample data. In a checkout they are the repository's
top-level ``notebooks/`` and ``data/sample/``; an installed wheel carries the same files inside
the package (``perfkit/bundled/notebooks``, ``perfkit/bundled/data/sample``, put there by
``setup.py``'s build step), found with :mod:`importlib.resources`.

Where it writes: reports go to ``reports/`` and snapshots to ``data/snapshots/``, under
``$PERFKIT_HOME`` when it is set, else under the working folder. ``$PERFKIT_STORE`` names the
snapshot store itself and wins over both.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

BUNDLED = "bundled"  # the folder inside the package that an installed wheel carries
SAMPLE_PREFIX = "sample:"  # a notebook parameter naming a file of the packaged sample data
SHIPPED_SAMPLE = "the sample data shipped with perfkit"  # how shown() names that folder itself
_CHECKOUT = Path(__file__).resolve().parent.parent


def _shipped(*parts: str) -> Path:
    """The shipped folder ``parts`` (under ``bundled/`` in a wheel, the repository's in a checkout)."""
    inside = Path(str(resources.files("perfkit").joinpath(BUNDLED, *parts)))
    if inside.is_dir():
        return inside
    return _CHECKOUT.joinpath(*parts)


def notebooks_dir() -> Path:
    """The notebooks perfkit ships (weekly, 01-workload, ...)."""
    return _shipped("notebooks")


def sample_dir() -> Path:
    """The sample data perfkit ships: real outputs captured from the sandbox."""
    return _shipped("data", "sample")


def sample_path(value: str | Path) -> Path:
    """``sample:loadtests/x.log`` as the file of the packaged sample data; any other path unchanged."""
    text = str(value)
    if text.startswith(SAMPLE_PREFIX):
        return sample_dir() / text[len(SAMPLE_PREFIX):].lstrip("/")
    return Path(text)


def home() -> Path:
    """``$PERFKIT_HOME``, else the working folder: where reports and snapshots go by default."""
    return Path(os.environ.get("PERFKIT_HOME") or ".")


def reports_dir() -> Path:
    """The default reports folder: ``reports/`` under :func:`home`."""
    return home() / "reports"


def snapshots_dir() -> Path:
    """The default snapshot store: ``$PERFKIT_STORE``, else ``data/snapshots/`` under :func:`home`."""
    return Path(os.environ.get("PERFKIT_STORE") or home() / "data" / "snapshots")


def shown(path: str | Path) -> str:
    """``path`` as a reader should see it: ``sample:…`` inside the shipped sample data (the same
    on every machine, and what a notebook parameter may say), else the path as given."""
    try:
        inside = Path(path).resolve().relative_to(sample_dir().resolve())
    except (ValueError, OSError):
        return str(path)
    return f"{SAMPLE_PREFIX}{inside.as_posix()}" if str(inside) != "." else SHIPPED_SAMPLE
