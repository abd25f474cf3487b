"""The wheel carries the repository's notebooks/ and data/sample/ inside the package.

The repository keeps them at the top level (the project's layout); the build step copies them
to ``perfkit/bundled/`` in the build tree, where ``perfkit.paths`` finds them with
importlib.resources. Everything else is declared in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SHIPPED = {"notebooks": "notebooks", "data/sample": "data/sample"}
SKIPPED = shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__", "*.pyc", ".*")


class BuildWithBundle(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "perfkit" / "bundled"
        for source, inside in SHIPPED.items():
            origin = HERE / source
            if not origin.is_dir():
                raise SystemExit(f"setup.py: {origin} is missing: build from a checkout or an sdist")
            destination = target / inside
            shutil.rmtree(destination, ignore_errors=True)
            shutil.copytree(origin, destination, ignore=SKIPPED)


setup(cmdclass={"build_py": BuildWithBundle})
