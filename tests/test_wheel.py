"""Done when: the wheel, installed outside the checkout, runs from an empty folder.

The wheel is built from a copy of only what the sdist carries (pyproject.toml, setup.py,
MANIFEST.in, README.md, LICENSE, perfkit/, notebooks/, data/sample/), so nothing else of the
checkout can leak in. It is installed into a fresh venv in a temporary folder:

- ``python -m venv --without-pip``: a new interpreter prefix, nothing of the checkout on its path;
- the wheel installed with ``--no-deps`` (``pip --python VENV``), so perfkit, its console script
  and its package data are the wheel's own;
- the dependencies (pandas, papermill, ipykernel, ...) come from this test run's own environment
  through one ``.pth`` line naming its site-packages. That keeps the test within seconds and
  offline; a path line in a ``.pth`` only appends the folder to ``sys.path``, after the venv's own
  site-packages, and never runs the ``.pth`` files inside it, so the editable checkout install that
  folder may hold is not activated (the test asserts ``perfkit`` imports from the venv). The
  dependencies' data files (nbconvert's HTML templates, the ipykernel kernel spec, whose
  ``python`` is the venv's first on PATH) are reached the same way: the venv's ``share/jupyter``
  is a link to this environment's.

Then, from an empty folder, with no PYTHONPATH and no PERFKIT_* variable: ``perfkit report weekly
--sample`` (its HTML and summary.json, the summary valid against the shipped schema),
``perfkit notebooks DIR``, ``python -m perfkit --help``, ``perfkit plan`` and ``perfkit loadtest
--ci`` on the packaged sample data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from perfkit import schemas

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE", "perfkit", "notebooks", "data/sample")


def sh(*args, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    for name in SHIPPED:
        origin = ROOT / name
        target = source / name
        if origin.is_dir():
            shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("PERFKIT_")}
    env["PERFKIT_PROGRESS"] = "0"
    dist = base / "dist"
    sh(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", dist,
       source, cwd=base, env=env)
    wheel = next(dist.glob("perfkit-*.whl"))
    venv = base / "venv"
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=base, env=env)
    python = venv / "bin" / "python"
    site = Path(sh(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))", cwd=base, env=env).stdout.strip())
    (site / "perfkit-test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    # the dependencies' data files (nbconvert's templates, ipykernel's kernel spec) live beside
    # their prefix, not in site-packages: the venv's share/jupyter is the test environment's
    (venv / "share").mkdir(exist_ok=True)
    (venv / "share" / "jupyter").symlink_to(Path(sys.prefix) / "share" / "jupyter")
    sh(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
       cwd=base, env=env)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    empty = base / "empty"
    empty.mkdir()
    return {"wheel": wheel, "venv": venv, "python": python, "site": site, "env": env, "cwd": empty}


def test_the_wheel_carries_notebooks_sample_data_license_and_schemas(installed):
    names = set(zipfile.ZipFile(installed["wheel"]).namelist())
    assert "perfkit/bundled/notebooks/weekly.ipynb" in names
    assert "perfkit/bundled/data/sample/logs/postgresql.json" in names
    assert "perfkit/schemas/summary.schema.json" in names and "perfkit/__main__.py" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(installed["wheel"]).read(next(n for n in names if n.endswith(".dist-info/METADATA")))
    text = metadata.decode()
    assert "Requires-Dist: seaborn" not in text and "Requires-Dist: nbval" not in text.split("Provides-Extra: dev")[0]
    assert "Classifier: Topic :: Database" in text


def test_commands_from_an_empty_folder(installed):
    env, cwd, python = installed["env"], installed["cwd"], installed["python"]
    where = sh(python, "-c", "import perfkit, perfkit.paths as p; print(perfkit.__file__); print(p.sample_dir())",
               cwd=cwd, env=env).stdout.split()
    assert all(Path(w).is_relative_to(installed["venv"]) for w in where), where  # the wheel's, not the checkout's
    sample = Path(where[1])

    helped = sh(python, "-m", "perfkit", "--help", cwd=cwd, env=env)
    assert "exit codes:" in helped.stdout and "notebooks" in helped.stdout
    planned = sh("perfkit", "plan", sample / "plans" / "invoices-by-tenant.json", cwd=cwd, env=env)
    assert "Seq Scan on public.invoices" in planned.stdout
    loads = sorted((sample / "loadtests").glob("pgbench-*-index.log"))
    judged = sh("perfkit", "loadtest", "--ci", *loads, cwd=cwd, env=env)
    assert "pass" in judged.stdout

    copied = sh("perfkit", "notebooks", "mine", cwd=cwd, env=env)
    assert sorted(p.name for p in (cwd / "mine").iterdir()) == sorted(
        p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert copied.stdout.count(".ipynb") == len(list((ROOT / "notebooks").glob("*.ipynb")))

    bundled = installed["site"] / "perfkit" / "bundled"
    before = sorted(str(p.relative_to(bundled)) for p in bundled.rglob("*"))
    report = sh("perfkit", "report", "weekly", "--sample", cwd=cwd, env=env, timeout=600)
    # the kernel runs in the installed notebooks' folder: it writes nothing there (it may be read-only)
    assert sorted(str(p.relative_to(bundled)) for p in bundled.rglob("*")) == before
    folder = Path(report.stdout.strip().splitlines()[-1])
    assert folder.parent == cwd / "reports"  # the documented default: reports/ here
    assert (folder / "weekly.html").stat().st_size > 10_000
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "ok", summary["error"]
    schemas.validator("summary").validate(summary)
    assert summary["findings"] and summary["sections"] and all(v == "ok" for v in summary["sections"].values())
    assert sorted(p.name for p in cwd.iterdir()) == ["mine", "reports"]  # nothing else written here
