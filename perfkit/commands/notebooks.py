"""``perfkit notebooks DIR``: copy the shipped notebooks into DIR to open them in JupyterLab.

For a pip or pipx install, where the notebooks live inside the package. Their ``sample`` parameter
and the ``sample:`` files in their parameters read the sample data shipped with perfkit, so the
copies run as they are; set ``dsn`` (or ``PERFKIT_DSN``) for a live database. ``--lab`` then opens
JupyterLab on DIR (from perfkit's own environment: pipx users get no ``jupyter`` command).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from perfkit.errors import BadInputError, EnvironmentFailure


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "notebooks", help="copy the notebooks into a folder (and open JupyterLab on it)", description=__doc__)
    parser.add_argument("folder", nargs="?", default="perfkit-notebooks", metavar="DIR",
                        help="where to copy them (default: ./perfkit-notebooks); created when missing")
    parser.add_argument("--force", action="store_true", help="overwrite notebooks already in DIR")
    parser.add_argument("--lab", action="store_true", help="then start JupyterLab on DIR")
    parser.set_defaults(func=run)


def copy_notebooks(folder: Path, *, force: bool = False) -> tuple[list[Path], list[Path]]:
    """Copy every shipped notebook into ``folder``: (copied, kept because they exist and not ``force``)."""
    from perfkit.paths import notebooks_dir

    if folder.exists() and not folder.is_dir():
        raise BadInputError("is not a folder", path=folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BadInputError(f"cannot create it ({err.strerror or err})", path=folder) from None
    copied, kept = [], []
    for source in sorted(notebooks_dir().glob("*.ipynb")):
        target = folder / source.name
        if target.exists() and not force:
            kept.append(target)
            continue
        try:
            shutil.copyfile(source, target)
        except OSError as err:
            raise BadInputError(f"cannot write {source.name} ({err.strerror or err})", path=folder) from None
        copied.append(target)
    return copied, kept


def say(message: str) -> None:  # perfkit.output's, without importing pandas for a file copy
    print(message, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    copied, kept = copy_notebooks(folder, force=args.force)
    for path in copied:
        print(path)
    if kept:
        say(f"perfkit notebooks: kept {len(kept)} notebook(s) already in {folder} (--force overwrites them)")
    if not args.lab:
        say(f"perfkit notebooks: open them with `perfkit notebooks {folder} --lab` (or JupyterLab)")
        return 0
    try:
        import jupyterlab  # noqa: F401 - perfkit's dependency; missing only in a broken install
    except ImportError:
        raise EnvironmentFailure("JupyterLab is not installed in perfkit's environment: "
                                 "pip install jupyterlab") from None
    say(f"perfkit notebooks: starting JupyterLab on {folder} (Ctrl-C stops it)")
    return subprocess.call([sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder.resolve()}"])
