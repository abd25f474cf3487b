"""Where perfkit finds what it ships (notebooks, sample data) and where it writes by default."""

from __future__ import annotations

from pathlib import Path

from perfkit import cli, paths, report, store

ROOT = Path(__file__).resolve().parent.parent


def test_default_places_follow_perfkit_home(tmp_path, monkeypatch):
    monkeypatch.delenv("PERFKIT_HOME", raising=False)
    monkeypatch.delenv("PERFKIT_STORE", raising=False)
    assert paths.reports_dir() == Path("reports") and store.default_root() == Path("data/snapshots")
    monkeypatch.setenv("PERFKIT_HOME", str(tmp_path))
    assert paths.reports_dir() == tmp_path / "reports"
    assert store.default_root() == tmp_path / "data" / "snapshots"
    monkeypatch.setenv("PERFKIT_STORE", str(tmp_path / "elsewhere"))
    assert store.default_root() == tmp_path / "elsewhere"  # the store's own variable wins


def test_shipped_files_and_sample_parameters():
    assert paths.notebooks_dir() == ROOT / "notebooks"  # a checkout: the repository's own folders
    assert paths.sample_dir() == ROOT / "data" / "sample"
    assert paths.sample_path("sample:logs/postgresql.json") == ROOT / "data" / "sample" / "logs" / "postgresql.json"
    assert paths.sample_path("mine.log") == Path("mine.log")
    assert paths.shown(ROOT / "data" / "sample" / "store") == "sample:store"
    assert paths.shown("/var/tmp/x") == "/var/tmp/x"
    assert report.resolve_notebook("weekly") == ROOT / "notebooks" / "weekly.ipynb"


def test_notebooks_command_keeps_what_is_there(tmp_path, capsys):
    assert cli.main(["notebooks", str(tmp_path / "nb")]) == 0
    first = capsys.readouterr()
    assert first.out.count(".ipynb") == len(list(paths.notebooks_dir().glob("*.ipynb")))
    (tmp_path / "nb" / "weekly.ipynb").write_text("mine")
    assert cli.main(["notebooks", str(tmp_path / "nb")]) == 0
    kept = len(list(paths.notebooks_dir().glob("*.ipynb")))  # every one is there already
    assert f"kept {kept} notebook(s)" in capsys.readouterr().err and (tmp_path / "nb" / "weekly.ipynb").read_text() == "mine"
    assert cli.main(["notebooks", str(tmp_path / "nb"), "--force"]) == 0
    assert (tmp_path / "nb" / "weekly.ipynb").read_bytes() == (paths.notebooks_dir() / "weekly.ipynb").read_bytes()
    (tmp_path / "file").write_text("x")
    assert cli.main(["notebooks", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
