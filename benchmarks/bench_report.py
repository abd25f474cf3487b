"""Benchmark: `perfkit report weekly --sample` against a bare kernel start plus `import perfkit`.

Times, as commands (each includes Python start-up):
  baseline  papermill of a one-cell notebook that runs `import perfkit` (kernel start + import)
  perfkit   `perfkit report weekly --sample` (every section on data/sample, HTML, summary.json, index)
and prints the medians and their ratio. Goal: the report within 3x the baseline.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BASELINE = """
import sys, papermill
papermill.execute_notebook(sys.argv[1], sys.argv[2], progress_bar=False)
"""


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} failed:\n{done.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of each (default 3)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perfkit-bench-report-") as tmp:
        tmp = Path(tmp)
        empty = tmp / "empty.ipynb"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import perfkit")])
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, empty)
        baseline, report = [], []
        for run in range(args.runs):
            baseline.append(timed([sys.executable, "-c", BASELINE, str(empty), str(tmp / f"out-{run}.ipynb")]))
            report.append(timed([sys.executable, "-m", "perfkit.cli", "report", "weekly", "--sample",
                                 "--out", str(tmp / "reports")]))
    b, r = statistics.median(baseline), statistics.median(report)
    print(f"baseline (papermill: kernel start + import perfkit): median {b:.2f} s of {args.runs} "
          f"({', '.join(f'{x:.2f}' for x in baseline)})")
    print(f"perfkit report weekly --sample:                     median {r:.2f} s of {args.runs} "
          f"({', '.join(f'{x:.2f}' for x in report)})")
    print(f"ratio: {r / b:.2f}x (goal: within 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
