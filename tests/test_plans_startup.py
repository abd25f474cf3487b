"""``perfkit plan FILE`` as a process never imports pandas, numpy, pyarrow, SQLAlchemy or psycopg (nor pglast, for these plans):
its start-up is the interpreter's and the plan's own work (issue 15's speed goal)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
P = "tests/fixtures/plans/"
# pglast too: the simple conditions and sort keys of these plans are read without it
HEAVY = ("pandas", "numpy", "pyarrow", "sqlalchemy", "psycopg", "psycopg2", "matplotlib", "pglast")

# ``python -m perfkit ARGS``, then the heavy modules loaded by the end, on stderr's last line
RUN_AND_LIST = f"""
import runpy, sys
sys.argv = ["perfkit"] + sys.argv[1:]
code = 0
try:
    runpy.run_module("perfkit", run_name="__main__")
except SystemExit as stop:
    code = stop.code
sys.stdout.flush()
sys.stderr.write("loaded: " + ",".join(m for m in {HEAVY!r} if m in sys.modules) + "\\n")
sys.exit(code)
"""


def perfkit_plan(*args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "GITHUB_STEP_SUMMARY")}
    env.update(PYTHONPATH=str(ROOT), COLUMNS="100", NO_COLOR="1")
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST, "plan", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    last = done.stderr.splitlines()[-1]
    assert last.startswith("loaded: "), done.stderr
    return done, [m for m in last.removeprefix("loaded: ").split(",") if m]


@pytest.mark.parametrize("args, code", [
    ([P + "seq_scan.json"], 0),  # findings with an index fix: advice, the fix's SQL
    ([P + "text_unicode_border2.txt", "--json"], 0),  # a framed text plan, as JSON
    ([P + "hash_spill.json", "--top", "3", "--format", "markdown"], 0),
    ([P + "trigger_fk.json", "--json", "--fail-on", "warning"], 1),  # triggers; the gate fails
    ([P + "plain.json"], 0),  # estimates only
])
def test_perfkit_plan_imports_no_heavy_module(args, code):
    done, loaded = perfkit_plan(*args)
    assert done.returncode == code, done.stderr
    assert loaded == [], f"perfkit plan {' '.join(args)} imported {', '.join(loaded)}"
    assert done.stderr.count("\n") == 1  # nothing but the probe's line
    if "--json" in args:
        assert json.loads(done.stdout)["nodes"]
    else:
        assert "Findings (" in done.stdout
