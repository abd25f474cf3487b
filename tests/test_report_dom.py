"""The weekly report as a browser shows it: headless Chromium renders the HTML, and the DOM says
that the summary comes first, routes with ``<id>`` are text, query text is code (MathJax never
typesets it) and text cells are left-aligned. The first screen is saved as a screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_report import chromium_binary

ROOT = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("PERFKIT_SCREENSHOTS", tempfile.gettempdir())) / "perfkit-screenshots"


class Dom(HTMLParser):
    """The rendered page's text, in order, with the open elements of each piece."""

    VOID = {"br", "img", "meta", "link", "input", "hr", "col", "source", "area", "base", "wbr"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, dict]] = []
        self.pieces: list[tuple[str, list[tuple[str, dict]]]] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                break

    def handle_data(self, data):
        if data.strip() and not any(tag in ("script", "style") for tag, _ in self.stack):
            self.pieces.append((data, list(self.stack)))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    binary = chromium_binary()
    if binary is None:
        pytest.fail("chromium is missing although scripts/setup.sh installs it")
    out = tmp_path_factory.mktemp("reports")
    # the sample data, and a real Locust run of the demo whose routes hold <id>
    locust = ROOT / "tests" / "fixtures" / "report" / "locust-demo_stats.csv"
    run = subprocess.run([str(ROOT / ".venv" / "bin" / "perfkit"), "report", "weekly", "--sample", "--loadtest",
                          str(ROOT / "data" / "sample" / "loadtests" / "pgbench-before-index.log"), "--loadtest",
                          str(locust), "--out", str(out)],
                         capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-2000:]
    page = Path(run.stdout.strip().splitlines()[-1]) / "weekly.html"
    parser, shot = chromium_dom(binary, page, "weekly-first-screen.png")
    assert shot.returncode == 0 and (SHOTS / "weekly-first-screen.png").exists(), shot.stderr[-2000:]
    return parser


def chromium_dom(binary: str, page: Path, screenshot: str):
    """``page`` rendered by headless Chromium: its DOM parsed (:class:`Dom`) and the first screen
    saved as ``SHOTS/screenshot``; (the parsed DOM, the screenshot's finished process)."""
    profile = tempfile.mkdtemp(prefix="perfkit-chromium-")
    SHOTS.mkdir(parents=True, exist_ok=True)
    flags = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
             "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
             "--hide-scrollbars", "--window-size=1280,900"]
    try:
        dom = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        shot = subprocess.run([*flags, f"--screenshot={SHOTS / screenshot}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    assert dom.returncode == 0 and dom.stdout.strip(), dom.stderr[-2000:]
    parser = Dom()
    parser.feed(dom.stdout)
    return parser, shot


def test_the_summary_comes_before_the_first_section(rendered):
    texts = [text.strip() for text, _ in rendered.pieces]
    first_section = next(i for i, (text, stack) in enumerate(rendered.pieces)
                         if text.strip() == "Statement workload" and stack and stack[-1][0] == "h2")
    badge = next(i for i, text in enumerate(texts) if text in ("CRITICAL", "WARNING", "OK"))
    contents = next(i for i, text in enumerate(texts) if text.startswith("Contents"))
    assert badge < contents < first_section
    assert any("recommendations" in text for text in texts[badge:first_section])


def test_a_route_with_angle_brackets_is_text(rendered):
    assert any("/api/orders/<id>" in text for text, _ in rendered.pieces)


def test_query_text_is_code_so_mathjax_never_typesets_it(rendered):
    with_parameters = [(text, stack) for text, stack in rendered.pieces if "$1" in text]
    assert with_parameters, "the sample's statements have $1 parameters"
    for text, stack in with_parameters:
        assert any(tag in ("code", "pre") for tag, _ in stack), text[:120]


def test_text_cells_are_left_aligned_numbers_right(rendered):
    cells = [(text, dict(stack[-1][1])) for text, stack in rendered.pieces
             if stack and stack[-1][0] == "td" and any("perfkit-table" in a.get("class", "") for _, a in stack)]
    assert cells
    for text, attrs in cells:
        words = text.strip().replace(",", "").replace(".", "").replace("-", "").replace("−", "").replace("+", "")
        words = words.removesuffix(" %")  # a percentage is a number
        expected = "right" if words.isdigit() else "left"
        if expected == "left" or attrs.get("style", "").endswith("right"):
            assert f"text-align:{expected}" in attrs.get("style", ""), (text, attrs)


def test_the_plan_picture_marks_the_hottest_node(rendered):
    """Each plan in the report is pictured (SVG): one node marked hottest, the sample plan's Seq Scan."""
    pictures = {}
    for text, stack in rendered.pieces:
        svg = next((i for i, (tag, _) in enumerate(stack) if tag == "svg"), None)
        if svg is None:
            continue
        assert any("tex2jax_ignore" in attrs.get("class", "") for _, attrs in stack[:svg])  # never typeset
        node = next((attrs for tag, attrs in stack[svg:] if tag == "g" and attrs.get("class") == "plan-node"), None)
        if node is not None and node.get("data-hottest") == "true":
            pictures.setdefault(id(stack[svg][1]), []).append(text)
    hottest = [" ".join(" ".join(texts).split()) for texts in pictures.values()]
    assert hottest and any("hottest: Seq Scan on public.invoices 8.47 ms self" in t for t in hottest), hottest
