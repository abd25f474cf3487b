"""``perfkit plan``'s output, byte for byte, against the files in tests/fixtures/plans/golden/.

The golden files were written by ``python tests/test_plans_golden.py`` (``perfkit plan`` as a
process, from the checkout's root) before the plan command stopped importing pandas: the
pandas-free path must print what the DataFrame path printed. Regenerate them only for a change
of output that is meant.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "fixtures" / "plans" / "golden"
P = "tests/fixtures/plans/"

# name -> (arguments after ``perfkit plan``, terminal columns, exit code)
CASES = {
    "seq_scan": ([P + "seq_scan.json"], 100, 0),
    "seq_scan_80": ([P + "seq_scan.json"], 80, 0),
    "seq_scan_json": ([P + "seq_scan.json", "--json"], 100, 0),
    "seq_scan_markdown": ([P + "seq_scan.json", "--format", "markdown"], 100, 0),
    "seq_scan_fail_on": ([P + "seq_scan.json", "--fail-on", "warning"], 100, 1),
    "unicode_border2": ([P + "text_unicode_border2.txt"], 100, 0),
    "unicode_border2_json": ([P + "text_unicode_border2.txt", "--json"], 100, 0),
    "never_executed_top2": ([P + "text_never_executed.txt", "--top", "2"], 100, 0),
    "plain": ([P + "plain.json"], 100, 0),
    "plain_json": ([P + "plain.json", "--json"], 100, 0),
    "trigger_fk": ([P + "trigger_fk.json"], 100, 0),
    "trigger_fk_json": ([P + "trigger_fk.json", "--json"], 100, 0),
    "jit_json": ([P + "jit.json", "--json"], 100, 0),
    "jit_text": ([P + "text_jit.txt"], 120, 0),
    "io_bound": ([P + "styles/io_bound.txt"], 100, 0),
    "io_bound_json": ([P + "styles/io_bound.json", "--json"], 100, 0),
    "hash_spill_top3_markdown": ([P + "hash_spill.json", "--top", "3", "--format", "markdown"], 100, 0),
    "misestimate": ([P + "text_misestimate.txt"], 100, 0),
    "timing_off": ([P + "text_timing_off.txt"], 100, 0),
    "nested_loop_json": ([P + "nested_loop_memoize.json", "--json", "--fail-on", "critical"], 100, 0),
    "compare": ([P + "seq_scan.json", P + "seq_scan_after_index.json"], 100, 0),
    "compare_json": ([P + "seq_scan.json", P + "seq_scan_after_index.json", "--json"], 100, 0),
    "compare_markdown": ([P + "seq_scan.json", P + "seq_scan_after_index.json", "--format", "markdown"], 100, 0),
}


def _env(columns: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "GITHUB_STEP_SUMMARY")}
    env.update(COLUMNS=str(columns), LINES="24", NO_COLOR="1", PYTHONPATH=str(ROOT))
    return env


@pytest.mark.parametrize("name", sorted(CASES))
def test_plan_output_is_what_it_was(name, monkeypatch, capsys):
    from perfkit import cli

    args, columns, expected_code = CASES[name]
    for key, value in _env(columns).items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(ROOT)
    code = cli.main(["plan", *args])
    out, err = capsys.readouterr()
    assert (code, err) == (expected_code, "")
    assert out == (GOLDEN / f"{name}.txt").read_text(encoding="utf-8")


def test_top_keeps_the_first_of_equal_nodes_so_the_hottest_is_shown(monkeypatch, capsys):
    """The one difference from the DataFrame path: ``--top N`` among nodes of equal self time kept
    whichever numpy's unstable sort left first (on slow_planning.json, not the node marked hottest);
    now the first in the tree, which is the hottest."""
    from perfkit import cli

    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.chdir(ROOT)
    assert cli.main(["plan", P + "slow_planning.json", "--top", "2"]) == 0
    tree = capsys.readouterr().out.split("Findings")[0].splitlines()
    shown = [line for line in tree if "-> Index Only Scan" in line]
    assert len(shown) == 2 and shown[0].startswith(">>")  # the hottest node is one of the two
    assert any(line.startswith(">> hottest: #13 ") for line in tree)


def regenerate() -> None:
    """Write every golden file from ``perfkit plan`` run as a process."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name, (args, columns, expected_code) in sorted(CASES.items()):
        done = subprocess.run([sys.executable, "-m", "perfkit", "plan", *args], cwd=ROOT, env=_env(columns),
                              capture_output=True, text=True)
        assert done.returncode == expected_code and done.stderr == "", (name, done.returncode, done.stderr)
        (GOLDEN / f"{name}.txt").write_text(done.stdout, encoding="utf-8")
        print(f"{name}: {len(done.stdout.splitlines())} lines")


if __name__ == "__main__":
    regenerate()
