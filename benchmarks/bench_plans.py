#!/usr/bin/env python3
"""Benchmark: parse a generated 10,000-node plan (JSON and text) and run every finding rule.

Prints the CPU time of each (goal: at most 0.35 s CPU each; the node and finding rows, as
``perfkit plan FILE`` uses them, then the DataFrames of them on their own), then the whole ``perfkit plan FILE``
process on a 20-node plan against ``python -c "import json"`` (goal: at most 4x; the ratio is
printed, never asserted). Usage: .venv/bin/python benchmarks/bench_plans.py
"""

from __future__ import annotations

import copy
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from perfkit.plans import parse  # noqa: E402
from perfkit.plans.unwrap import unwrap  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "plans"
TARGET_NODES = 10_000


def generated_json() -> str:
    """An Append over copies of real captured subtrees (hash join with spill, nested loop, seq scan)."""
    pieces = []
    for name in ("hash_spill.json", "nested_loop.json", "sort_spill.json", "misestimate.json"):
        plan = json.loads((FIXTURES / name).read_text())[0]["Plan"]
        pieces.append(plan)

    def size(node):
        return 1 + sum(size(child) for child in node.get("Plans", []))

    children, count, copy_number = [], 1, 0
    while count < TARGET_NODES:
        piece = copy.deepcopy(pieces[copy_number % len(pieces)])
        piece["Parent Relationship"] = "Member"
        stack = [piece]
        while stack:  # vary the filters so nothing is cached between copies
            node = stack.pop()
            if "Filter" in node:
                node["Filter"] = node["Filter"].replace("7", str(copy_number % 997))
            stack.extend(node.get("Plans", []))
        if count + size(piece) > TARGET_NODES:
            break
        children.append(piece)
        count += size(piece)
        copy_number += 1
    while count < TARGET_NODES:  # fill up with single scans
        children.append({"Node Type": "Result", "Parent Relationship": "Member", "Plan Rows": 1,
                         "Actual Rows": 1, "Actual Loops": 1, "Actual Total Time": 0.001})
        count += 1
    total = sum(c.get("Actual Total Time", 0) * c.get("Actual Loops", 1) for c in children)
    root = {"Node Type": "Append", "Plan Rows": 1, "Actual Rows": 1, "Actual Loops": 1,
            "Actual Total Time": total, "Plans": children}
    return json.dumps([{"Plan": root, "Planning Time": 1.0, "Execution Time": total}])


def generated_text() -> str:
    """A text plan: an Append over copies of the psql capture of the hash-spill plan."""
    lines, _ = unwrap((FIXTURES / "text_pgadmin_quoted.txt").read_text())
    body = [text for _, text in lines]
    tree = body[: body.index("Planning:")]
    nodes_per_copy = sum(1 for line in tree if "(cost=" in line)
    out = ["Append  (cost=0.00..1.00 rows=1 width=4) (actual time=0.010..100.000 rows=1 loops=1)"]
    for _ in range((TARGET_NODES - 1) // nodes_per_copy):
        out.append("  ->  " + tree[0])
        out.extend("      " + line for line in tree[1:])
    out.append("Planning Time: 1.000 ms")
    out.append("Execution Time: 100.000 ms")
    return "\n".join(out) + "\n"


def _clear_caches() -> None:
    """No help from an earlier run: every memo of perfkit's modules (parsed conditions, advice,
    fixes, decoded titles and buffer lines, ...)."""
    for name, module in list(sys.modules.items()):
        if name == "perfkit" or name.startswith("perfkit."):
            for value in list(vars(module).values()):
                if callable(getattr(value, "cache_clear", None)) and hasattr(value, "cache_info"):
                    value.cache_clear()


def measure(label: str, text: str) -> float:
    """Parse and find the problems as ``perfkit plan FILE`` does (node rows and finding rows, no
    DataFrame); the DataFrames built after that are timed on their own."""
    best = cpu = frames_cpu = float("inf")
    plan = findings = None
    for _ in range(3):
        _clear_caches()
        plan = findings = None  # the previous run's plan is freed before the clock starts
        start, start_cpu = time.perf_counter(), time.process_time()
        plan = parse(text)
        findings = plan.finding_rows
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
        start_cpu = time.process_time()
        plan.nodes, plan.findings  # noqa: B018 - built on first use
        frames_cpu = min(frames_cpu, time.process_time() - start_cpu)
    print(
        f"{label}: {len(plan.rows):,} nodes, {len(findings):,} findings, parsed with findings in "
        f"{best:.3f} s wall, {cpu:.3f} s CPU (best of 3); the nodes and findings DataFrames after "
        f"that: {frames_cpu:.3f} s CPU"
    )
    return cpu


def process_cpu(argv: list[str], runs: int = 11) -> float:
    """The best CPU time (user + system) of running ``argv``: each run's own resource usage
    (``os.wait4``, in microseconds; ``os.times`` counts children in 10 ms ticks, a third of the
    baseline's whole time)."""
    import os
    import subprocess

    best = float("inf")
    # as installed: byte-compiled modules (pip writes them), so let the first run write them
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)  # warm-up: writes __pycache__
    for _ in range(runs):
        child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            raise subprocess.CalledProcessError(child.returncode, argv)
        best = min(best, usage.ru_utime + usage.ru_stime)
    return best


def twenty_node_plan() -> Path:
    """A 20-node text plan: the psql capture of the hash-spill plan, four times under an Append."""
    lines, _ = unwrap((FIXTURES / "text_pgadmin_quoted.txt").read_text())
    body = [text for _, text in lines]
    tree = body[: body.index("Planning:")]
    out = ["Append  (cost=0.00..1.00 rows=1 width=4) (actual time=0.010..100.000 rows=1 loops=1)"]
    copies = 0
    while 1 + (copies + 1) * sum(1 for line in tree if "(cost=" in line) <= 20:
        out.append("  ->  " + tree[0])
        out.extend("      " + line for line in tree[1:])
        copies += 1
    out += ["Planning Time: 1.000 ms", "Execution Time: 100.000 ms"]
    import tempfile

    path = Path(tempfile.mkdtemp()) / "plan20.txt"
    path.write_text("\n".join(out) + "\n")
    return path


def main() -> int:
    json_cpu = measure("JSON plan", generated_json())
    text_cpu = measure("text plan", generated_text())
    worst = max(json_cpu, text_cpu)
    print(f"goal <= 0.35 s CPU each: {'met' if worst <= 0.35 else 'NOT met'} ({worst:.3f} s)")
    plan20 = twenty_node_plan()
    nodes = len(parse(plan20.read_text()).rows)
    baseline = process_cpu([sys.executable, "-c", "import json"])
    whole = process_cpu([sys.executable, "-m", "perfkit", "plan", str(plan20)])
    ratio = whole / baseline if baseline > 0 else float("inf")
    print(f"perfkit plan FILE ({nodes} nodes): {whole:.3f} s CPU; python -c 'import json': {baseline:.3f} s CPU; "
          f"ratio {ratio:.1f}x (goal <= 4x: {'met' if ratio <= 4 else 'NOT met'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
