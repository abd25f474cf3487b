"""A notebook as a browser shows it: 01-workload as committed (executed on its sample data; nbval
re-runs it) rendered by ``jupyter nbconvert --to html``, then headless Chromium's DOM says that the executive summary comes
before the first section, query text sits in code/pre (MathJax never typesets it) and text cells are
left-aligned. The first screen is saved as a screenshot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_report import chromium_binary
from test_report_dom import chromium_dom

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def notebook_dom(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is missing although scripts/setup.sh installs it")
    out = tmp_path_factory.mktemp("notebook")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERFKIT_DSN": "", "PERFKIT_PROGRESS": "0"}
    # the notebook as committed: executed on its sample data (nbconvert --execute --inplace; nbval re-runs it)
    done = subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", "--output-dir", str(out),
                           "01-workload.ipynb"], capture_output=True, text=True, timeout=300, cwd=ROOT / "notebooks",
                          env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    parser, _ = chromium_dom(binary, out / "01-workload.html", "notebook-01-workload-first-screen.png")
    return parser


def test_the_summary_comes_before_the_first_section(notebook_dom):
    pieces = notebook_dom.pieces
    first_section = next(i for i, (text, stack) in enumerate(pieces)
                         if text.strip() == "Top statements" and stack and stack[-1][0] == "h2")
    badge = next(i for i, (text, _) in enumerate(pieces) if text.strip() in ("CRITICAL", "WARNING", "OK"))
    contents = next(i for i, (text, _) in enumerate(pieces) if text.strip().startswith("Contents"))
    assert badge < contents < first_section
    # the summary names what got slower per call, with its numbers
    assert any("per call" in text for text, _ in pieces[badge:first_section])


def test_query_text_outside_code_is_never_left_to_mathjax(notebook_dom):
    with_parameters = [(text, stack) for text, stack in notebook_dom.pieces if "$1" in text]
    assert with_parameters, "the sample's statements have $1 parameters"
    for text, stack in with_parameters:
        assert any(tag in ("code", "pre") for tag, _ in stack), text[:120]


def test_text_cells_are_left_aligned(notebook_dom):
    cells = [(text, stack[-1][1]) for text, stack in notebook_dom.pieces
             if stack and stack[-1][0] == "td" and any("perfkit-table" in a.get("class", "") for _, a in stack)]
    assert len(cells) > 20
    for text, attrs in cells:
        words = text.strip().replace(",", "").replace(".", "").replace("-", "").replace(" %", "").replace("−", "")
        if not words.isdigit():
            assert "text-align:left" in attrs.get("style", ""), (text, attrs)


@pytest.mark.parametrize("name", ["01-workload", "02-plan", "03-loadtest", "04-health", "weekly"])
def test_every_notebook_opens_with_its_summary(name):
    """The executed notebook (nbval re-runs it) shows the summary badge before its first section heading,
    and its contents links point at headings the notebook has."""
    import json
    import re

    cells = json.loads((ROOT / "notebooks" / f"{name}.ipynb").read_text())["cells"]
    first_heading = next(i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                         and "".join(c["source"]).lstrip().startswith("## "))
    summary = next(i for i, c in enumerate(cells) if c["cell_type"] == "code" and any(
        "perfkit-summary" in "".join(o.get("data", {}).get("text/html", "")) for o in c.get("outputs", [])))
    assert summary < first_heading
    outputs = [o for o in cells[summary]["outputs"] if "text/markdown" in o.get("data", {})]
    links = re.findall(r"\]\(#([^)]+)\)", "".join("".join(o["data"]["text/markdown"]) for o in outputs))
    headings = {"".join(c["source"]).strip()[3:].split("\n")[0].replace(" ", "-") for c in cells
                if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith("## ")}
    assert links and set(links) <= headings, (links, headings)
