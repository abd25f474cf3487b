"""Reports: a notebook run with papermill into ``reports/YYYY-MM-DD/`` with HTML and summary.json.

``run_report(notebook, ...)`` executes, redacts, exports and indexes; it returns a ReportResult.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import html
import json
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from perfkit import db
from perfkit.errors import BadInputError, ReportError
from perfkit.fileio import write_atomic
from perfkit.findings import SEVERITIES
from perfkit.output import to_jsonable, versioned
from perfkit.paths import notebooks_dir, reports_dir
from perfkit.secrets import passwords_in, redact_all
from perfkit.store import default_root, remove_stale_temporaries

WEEKLY = "weekly"
SUMMARY_NAME = "summary.json"
INDEX_NAME = "index.html"
# Parameters the runner fills itself (they must exist in the notebook to be set).
DSN_PARAMETER = "dsn"
FACTS_PARAMETER = "facts"

# The lab template without anything fetched from the network (require.js, MathJax, widgets,
# mermaid): the page reads offline, images are embedded as data: URIs.
REPORT_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


@dataclass
class ReportResult:
    """What a report run produced.

    Attributes
    ----------
    folder:
        The report folder (``reports/YYYY-MM-DD`` or with a ``-2`` suffix).
    status:
        ``ok`` or ``failed``.
    error:
        The one-line error of a failed run (redacted), else None.
    notebook, html, summary:
        Paths of the executed notebook, the HTML page and ``summary.json``.
    summary_data:
        The content of ``summary.json``.
    """

    folder: Path
    status: str
    error: str | None
    notebook: Path
    html: Path
    summary: Path
    summary_data: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# -- notebooks and parameters ---------------------------------------------------------------------
def resolve_notebook(name: str | Path) -> Path:
    """``weekly`` (or another notebook's name in ``notebooks/``) or a path to an ``.ipynb`` file."""
    text = str(name)
    shipped = notebooks_dir()
    candidates = [Path(text)]
    if not text.endswith(".ipynb"):
        candidates += [Path("notebooks") / f"{text}.ipynb", shipped / f"{text}.ipynb"]
    else:
        candidates.append(shipped / text)
    for path in candidates:
        if path.is_file() and path.suffix == ".ipynb":
            return path.resolve()
    known = ", ".join(sorted(p.stem for p in shipped.glob("*.ipynb"))) or "none"
    raise BadInputError(f"no notebook {text!r}: give a path to an .ipynb file or one of: {known}")


def notebook_parameters(path: Path) -> dict:
    """The parameters of ``path``'s cell tagged ``parameters``: name -> default (as written)."""
    import papermill

    try:
        found = papermill.inspect_notebook(str(path))
    except Exception as err:  # noqa: BLE001 - any unreadable notebook is bad input
        raise BadInputError(f"cannot read the notebook ({str(err).splitlines()[0]})", path=path) from None
    return {name: info.get("default") for name, info in found.items()}


def split_secrets(parameters: Mapping, dsn: str | None) -> tuple[dict, str]:
    """Parameters safe to store in the notebook, and the DSN to hand over through ``PERFKIT_DSN``.

    A ``dsn`` parameter moves out of the parameters (the notebook reads ``PERFKIT_DSN``); any other
    parameter holding a password is refused.
    """
    safe = dict(parameters)
    given = safe.pop(DSN_PARAMETER, None)
    if given and dsn and given != dsn:
        raise BadInputError("give the database once: --dsn or -p dsn, not both")
    chosen = str(given or dsn or "")
    if chosen:
        db.resolve_dsn(chosen)  # a malformed DSN is bad input (message redacted)
    for name, value in safe.items():
        if isinstance(value, str) and db.redact(value) != value:
            raise BadInputError(f"parameter {name!r} holds a password: pass the database as --dsn or PERFKIT_DSN")
    return safe, chosen


@contextmanager
def environment(**values: str | None):
    """Set (or, with None, remove) environment variables for the kernel papermill starts."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        _set_environment(values)
        yield
    finally:
        _set_environment(saved)


def _set_environment(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _store_for_kernel() -> str:
    """The store as this process sees it: a folder made absolute (the kernel runs elsewhere), a URI as it is."""
    root = default_root()
    return str(root.resolve()) if isinstance(root, Path) else str(root)


# -- report folders ---------------------------------------------------------------------------------
def folder_name(notebook: Path, day: dt.date) -> str:
    """``YYYY-MM-DD`` for the weekly report, ``YYYY-MM-DD-<notebook>`` for any other."""
    return f"{day:%Y-%m-%d}" if notebook.stem == WEEKLY else f"{day:%Y-%m-%d}-{notebook.stem}"


def make_folder(out: Path, base: str, *, force: bool) -> Path:
    """A new report folder under ``out``: ``base``, else ``base-2``, ``base-3``... (``force``: ``base`` itself)."""
    out.mkdir(parents=True, exist_ok=True)
    if force:
        folder = out / base
        folder.mkdir(exist_ok=True)
        return folder
    for n in range(1, 1000):
        folder = out / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()  # atomic: two runs never get the same folder
            return folder
        except FileExistsError:
            continue
    raise ReportError(f"{out} already holds 999 reports named {base}: clean it up or use --force")


def read_summaries(out: Path) -> list[dict]:
    """Every report's summary.json under ``out`` (unreadable ones skipped), oldest first."""
    found = []
    for path in sorted(Path(out).glob(f"*/{SUMMARY_NAME}")):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        data.setdefault("folder", path.parent.name)
        data["_folder"] = path.parent.name
        found.append(data)
    return sorted(found, key=lambda d: (str(d.get("started_at") or ""), d["_folder"]))


def previous_report(out: Path, notebook: str, *, exclude: str) -> dict | None:
    """The newest earlier report of the same notebook under ``out``: folder, status and start time."""
    earlier = [s for s in read_summaries(out) if s.get("notebook") == notebook and s["_folder"] != exclude]
    if not earlier:
        return None
    last = earlier[-1]
    return {"folder": last["_folder"], "status": last.get("status"), "started_at": last.get("started_at")}


# -- HTML -------------------------------------------------------------------------------------------
def failed_cell(nb) -> tuple[int | None, str]:
    """Index of the cell that failed and the heading of the section it is in."""
    heading = ""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown" and not cell.get("metadata", {}).get("tags"):
            match = re.search(r"^#+\s+(.+)$", cell.source, re.M)
            if match:
                heading = match.group(1).strip()
        if cell.cell_type == "code" and any(o.get("output_type") == "error" for o in cell.get("outputs", [])):
            return index, heading
    return None, heading


_EXPORTER: dict = {}
_EXPORTER_LOCK = threading.Lock()


def html_exporter():
    """The nbconvert exporter for report pages, built once (its template compiled on first use)."""
    with _EXPORTER_LOCK:
        if "html" not in _EXPORTER:
            from jinja2 import DictLoader
            from nbconvert import HTMLExporter

            exporter = HTMLExporter(
                extra_loaders=[DictLoader({"perfkit_report.html.j2": REPORT_TEMPLATE})],
                template_file="perfkit_report.html.j2",
                exclude_input=True,
                exclude_input_prompt=True,
                exclude_output_prompt=True,
                embed_images=True,
            )
            # compile the template now: a report run does this while the kernel works
            exporter.from_notebook_node(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# warm")]))
            _EXPORTER["html"] = exporter
        return _EXPORTER["html"]


def to_html(nb, *, title: str, failure: str | None = None) -> str:
    """The notebook as one self-contained HTML page: no code, images embedded, failure marked."""
    nb = nbformat.reads(nbformat.writes(nb), as_version=4)
    if failure:
        index, heading = failed_cell(nb)
        where = f" in section “{heading}”" if heading else ""
        banner = (f"<div style='border:2px solid #c00;padding:8px;background:#fee'><b>This report failed"
                  f"{html.escape(where)}</b>: {html.escape(failure)}. Everything after that point is missing; "
                  "the error is shown where it happened.</div>")
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(banner))
        if index is not None:
            nb.cells.insert(index + 1, nbformat.v4.new_markdown_cell(
                f"<div style='color:#c00'><b>The report stopped here</b>{html.escape(where)}: {html.escape(failure)}</div>"))
    body, _ = html_exporter().from_notebook_node(nb, resources={"metadata": {"name": title}})
    return body


def index_html(out: Path) -> str:
    """``reports/index.html``: every report under ``out`` with its status, newest first."""
    rows = []
    for data in reversed(read_summaries(out)):
        folder = data["_folder"]
        page = Path(str((data.get("paths") or {}).get("html") or "")).name
        link = f"{folder}/{page}" if page else f"{folder}/"
        counts = data.get("findings_by_severity") or {}
        status = data.get("status", "?")
        color = "#080" if status == "ok" else "#c00"
        rows.append(
            "<tr>"
            f"<td><a href='{html.escape(link)}'>{html.escape(folder)}</a></td>"
            f"<td>{html.escape(str(data.get('notebook', '')))}</td>"
            f"<td style='color:{color};font-weight:bold'>{html.escape(status)}</td>"
            f"<td>{html.escape(str(data.get('started_at') or '')[:19].replace('T', ' '))}</td>"
            f"<td>{html.escape(str(data.get('source') or ''))}</td>"
            + "".join(f"<td>{int(counts.get(s, 0))}</td>" for s in SEVERITIES)
            + f"<td>{html.escape(str(data.get('slo_verdict') or ''))}</td>"
            f"<td>{html.escape(str(data.get('error') or ''))}</td>"
            "</tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("report", "notebook", "status", "started (UTC)", "evidence",
                                             *SEVERITIES, "SLO", "error"))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>perfkit reports</title>"
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
        f"<h1>perfkit reports</h1><p>{len(rows)} reports, newest first.</p>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></body></html>\n"
    )


# -- summary.json -----------------------------------------------------------------------------------
def _records(facts: dict) -> list[dict]:
    """The assessments a notebook's sections recorded (``Sources.record``), in their order."""
    return [value for value in facts.values() if isinstance(value, dict) and "key" in value]


def _first(records: list[dict], source: str, wanted=None) -> dict:
    mine = [r for r in records if r.get("source") == source and not r.get("skipped")]
    if wanted:
        mine = sorted(mine, key=lambda r: not wanted(r))
    return mine[0] if mine else {}


def build_summary(facts: dict, *, status: str, error: str | None, notebook: Path, started: dt.datetime,
                  finished: dt.datetime, parameters: dict, source: str, previous: dict | None,
                  paths: dict) -> dict:
    """The content of summary.json from the assessments the notebook's sections recorded.

    Everything comes from the typed records (their ``source``: statements, plans, loadtests,
    health, logs, advice), never from a notebook's variable names or a section's title; every
    finding is counted once, in the section whose assessment made it.
    """
    records = _records(facts)
    counts = dict.fromkeys(SEVERITIES, 0)
    findings = []
    for record in records:
        for found in record.get("findings") or []:
            counts[found.get("severity", "info")] = counts.get(found.get("severity", "info"), 0) + 1
            findings.append({**found, "section": record["key"]})
    findings.sort(key=lambda f: SEVERITIES.index(f["severity"]) if f.get("severity") in SEVERITIES else 9)
    loadtests = _first(records, "loadtests")
    load = {"slo": (loadtests.get("tables") or {}).get("slo"), **loadtests.get("facts", {})}
    compared = _first(records, "statements", lambda r: r["facts"].get("baseline") is not None).get("facts", {})
    top = compared.get("top_statements") or []
    advice = _first(records, "advice").get("facts", {})
    return versioned({
        "status": status,
        "error": error,
        "notebook": notebook.stem,
        "started_at": started.isoformat(),
        "finished_at": finished.isoformat(),
        "duration_s": round((finished - started).total_seconds(), 2),
        "source": source,
        "parameters": parameters,
        "slo_verdict": load.get("slo_verdict"),
        "slo_env": load.get("slo_env"),
        "slo": load.get("slo") or [],
        "findings_by_severity": counts,
        "findings": findings,
        "top_statements_basis": compared.get("top_statements_basis") if top else None,
        "top_statements": top,
        "per_call": {"improved": compared.get("improved") or [], "slower": compared.get("slower") or []},
        "recommendations": advice.get("recommendations") or [],
        "compared_with": {"report": previous, "snapshot": compared.get("baseline")},
        "sections": {r["key"]: (r.get("skipped") or "ok") for r in records},
        "paths": paths,
    })


def export(source_nb: Path, partial: Path, nb_path: Path, html_path: Path, *, status: str, error: str | None,
           source: str, secrets: set[str], title: str, executed=None) -> dict[Path, str]:
    """The redacted executed notebook and its HTML page, as texts to publish (nothing is written here).

    The notebook is papermill's saved ``partial`` when there is one, else the notebook as far as
    the kernel got (``executed``), else the input itself (the kernel never ran).
    """
    if partial.exists():
        nb = nbformat.read(partial, as_version=4)
    elif executed is not None:
        nb = executed
    else:
        nb = nbformat.read(source_nb, as_version=4)
    nb = nbformat.reads(json.dumps(redact_all(json.loads(nbformat.writes(nb)), secrets)), as_version=4)
    nb.metadata["perfkit"] = {"status": status, "error": error, "source": source}
    if "papermill" in nb.metadata:
        nb.metadata["papermill"]["output_path"] = str(nb_path)
    return {nb_path: nbformat.writes(nb), html_path: redact_all(to_html(nb, title=title, failure=error), secrets)}


@contextmanager
def _locked(folder: Path):
    """An exclusive ``flock`` on ``folder`` itself (no lock file is left behind)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def publish(folder: Path, files: Mapping[Path, str]) -> None:
    """Replace the report's files in ``folder`` together.

    Each is written to a temporary sibling first (fsynced), then all are renamed over the old
    ones while holding a lock on the folder: two runs into one folder (``--force``) leave the
    notebook, HTML and summary.json of one of them, never a mix. Temporary files of runs that
    were killed (older than an hour) are removed.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            staged.append((tmp, path))
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
        with _locked(folder):
            for tmp, path in staged:
                os.replace(tmp, path)
        remove_stale_temporaries(folder)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def write_index(out: Path) -> None:
    """``out/index.html`` from every summary.json, rebuilt under a lock so the last writer sees every report."""
    with _locked(out):
        write_atomic(out / INDEX_NAME, index_html(out))


# -- signals and the kernel -------------------------------------------------------------------------
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# after a stop signal the cell in progress gets a KeyboardInterrupt; a kernel that does not
# stop within this many seconds is killed
KERNEL_GRACE_S = 10.0
ENGINE = "perfkit"


class ReportInterrupted(KeyboardInterrupt):
    """A report stopped by SIGINT, SIGTERM or SIGHUP; raised after its folder was written.

    Attributes
    ----------
    result:
        The ReportResult of the partial report (status ``failed``).
    signal_name:
        ``SIGINT``, ``SIGTERM`` or ``SIGHUP``.
    """

    def __init__(self, result: ReportResult, signal_name: str):
        super().__init__(f"report interrupted by {signal_name}")
        self.result = result
        self.signal_name = signal_name


class StopSignals:
    """While a report runs, SIGINT, SIGTERM and SIGHUP are remembered instead of raised.

    The run then stops its kernel and still writes its folder. Outside the main thread (where
    Python cannot set handlers) nothing changes.
    """

    def __init__(self):
        self.received: list[str] = []
        self._saved: dict = {}

    def _handle(self, signum, _frame) -> None:
        self.received.append(signal.Signals(signum).name)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for number in STOP_SIGNALS:
                self._saved[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)


def _register_engine() -> None:
    """papermill's nbclient engine, keeping the notebook client where the runner can see its kernel."""
    from papermill.clientwrap import PapermillNotebookClient
    from papermill.engines import NBClientEngine, papermill_engines
    from papermill.log import logger
    from papermill.utils import merge_kwargs, remove_args

    if ENGINE in papermill_engines._engines:
        return

    class KeptClientEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, log_output=False, stdout_file=None,
                                     stderr_file=None, start_timeout=60, execution_timeout=None, **kwargs):
            holder = kwargs.pop("perfkit_holder", {})
            kwargs = remove_args(["input_path"], **kwargs)
            safe_kwargs = remove_args(["timeout", "startup_timeout"], **kwargs)
            final_kwargs = merge_kwargs(
                safe_kwargs, timeout=execution_timeout if execution_timeout else kwargs.get("timeout"),
                startup_timeout=start_timeout, kernel_name=kernel_name, log=logger, log_output=log_output,
                stdout_file=stdout_file, stderr_file=stderr_file)
            client = PapermillNotebookClient(nb_man, **final_kwargs)
            holder["nb_man"], holder["client"] = nb_man, client
            return client.execute()

    papermill_engines.register(ENGINE, KeptClientEngine)


def kernel_pid(holder: Mapping) -> int | None:
    """The pid of the kernel the run started, once it has started."""
    client = holder.get("client")
    provisioner = getattr(getattr(client, "km", None), "provisioner", None)
    pid = getattr(provisioner, "pid", None)
    return int(pid) if pid else None


def _signal_kernel(pid: int | None, number: int) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, number)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def wait_for(worker: threading.Thread, holder: Mapping, stops: StopSignals) -> None:
    """Wait for the notebook to finish; on a stop signal interrupt the kernel, then kill it if it lingers.

    The interrupted cell fails with KeyboardInterrupt, and papermill shuts the kernel down as
    after any failing cell; a second signal, or a kernel still running after KERNEL_GRACE_S, gets
    SIGKILL.
    """
    first, interrupted, killed = 0.0, False, False
    while worker.is_alive():
        worker.join(0.1)
        if not stops.received:
            continue
        now = time.monotonic()
        first = first or now
        pid = kernel_pid(holder)
        if not interrupted:
            interrupted = _signal_kernel(pid, signal.SIGINT)
        if not killed and (len(stops.received) > 1 or now - first > KERNEL_GRACE_S):
            killed = _signal_kernel(pid, signal.SIGKILL)
        if now - first > KERNEL_GRACE_S + 30:  # the client never noticed: write what there is
            _signal_kernel(kernel_pid(holder), signal.SIGKILL)
            return


# -- the run ----------------------------------------------------------------------------------------
def run_report(notebook: str | Path, *, out: str | Path | None = None, parameters: Mapping | None = None,
               dsn: str | None = None, force: bool = False, progress: bool = True,
               timeout: float | None = 1800, today: dt.date | None = None,
               slo_env: str | None = None) -> ReportResult:
    """Run a notebook with papermill into a dated report folder.

    Parameters
    ----------
    notebook:
        ``weekly``, another notebook's name in ``notebooks/``, or a path to an ``.ipynb``.
    out:
        The reports folder (default ``reports/`` under ``$PERFKIT_HOME`` or the working folder); the run writes ``out/YYYY-MM-DD[-N]/`` and ``out/index.html``.
    parameters:
        Notebook parameters (papermill); a ``dsn`` among them is handled like ``dsn``.
    dsn:
        The live database. It reaches the kernel through ``PERFKIT_DSN``; the notebook, its
        metadata, the HTML and summary.json only ever hold it redacted.
    force:
        Reuse today's folder instead of adding a ``-2`` suffix.
    progress:
        papermill's progress bar on stderr.
    timeout:
        Seconds a single cell may run.
    today:
        The folder's date (default: today, local time).
    slo_env:
        The SLO file's ``[env.NAME]`` to judge load tests by (default ``$PERFKIT_SLO_ENV``); it
        reaches the kernel as ``PERFKIT_SLO_ENV``.

    Returns
    -------
    ReportResult
        Also for a failed run (status ``failed``): the partial notebook, an HTML page showing
        where it failed and summary.json are written all the same.

    Raises
    ------
    BadInputError
        Unknown notebook or parameter, or a password in a parameter.
    ReportInterrupted
        SIGINT, SIGTERM or SIGHUP arrived (a KeyboardInterrupt): the kernel was stopped and the
        partial report written first; its ``result`` is the failed run.

    Notes
    -----
    Only redacted files reach the report folder. The kernel's facts file and papermill's
    notebook live in a private temporary folder (mode 0700, outside the report folder), removed
    when the run ends, whatever happens.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    path = resolve_notebook(notebook)
    known = notebook_parameters(path)
    safe, live_dsn = split_secrets(parameters or {}, dsn)
    unknown = sorted(set(safe) - set(known))
    if unknown:
        raise BadInputError(f"{path.name} has no parameter {', '.join(map(repr, unknown))}; "
                            f"it has: {', '.join(known) or 'none'}")
    secrets = passwords_in(live_dsn)
    out = Path(out if out is not None else reports_dir()).resolve()
    with StopSignals() as stops, environment(PERFKIT_SLO_ENV=slo_env or os.environ.get("PERFKIT_SLO_ENV") or None):
        base = folder_name(path, today or dt.date.today())
        folder = make_folder(out, base, force=force)
        work = Path(tempfile.mkdtemp(prefix="perfkit-report-"))  # mode 0700: this run's alone
        try:
            result = _run_in(path, folder, work, out=out, known=known, safe=safe, live_dsn=live_dsn,
                             secrets=secrets, progress=progress, timeout=timeout, stops=stops,
                             papermill=papermill, execution_error=PapermillExecutionError)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if stops.received:
        raise ReportInterrupted(result, stops.received[0])
    return result


def _run_in(path: Path, folder: Path, work: Path, *, out: Path, known: dict, safe: dict, live_dsn: str,
            secrets: set[str], progress: bool, timeout: float | None, stops: StopSignals, papermill,
            execution_error) -> ReportResult:
    previous = previous_report(out, path.stem, exclude=folder.name)
    nb_path, html_path, summary_path = folder / path.name, folder / f"{path.stem}.html", folder / SUMMARY_NAME
    facts_path = work / "facts.json"
    if live_dsn and DSN_PARAMETER in known:
        safe[DSN_PARAMETER] = ""  # the kernel reads PERFKIT_DSN
    if FACTS_PARAMETER in known:
        safe[FACTS_PARAMETER] = str(facts_path)
    partial = work / f"{path.stem}.partial.ipynb"
    source = db.describe(live_dsn) if live_dsn else "sample data"
    started = dt.datetime.now(dt.UTC)
    status, error = "ok", None
    t0 = time.perf_counter()
    # the HTML exporter gets ready on the other core while the kernel runs the notebook
    warm = threading.Thread(target=html_exporter, name="perfkit-html-exporter", daemon=True)
    warm.start()
    _register_engine()
    holder: dict = {}

    def execute() -> None:
        try:
            papermill.execute_notebook(
                str(path), str(partial), parameters=safe, progress_bar=progress, cwd=str(path.parent),
                execution_timeout=timeout, report_mode=False, log_output=False, engine_name=ENGINE,
                request_save_on_cell_execute=False,  # saved once at the end, and on a failure
                perfkit_holder=holder,
                # a quiet kernel: no "Kernel is running over TCP without encryption" in every cron log
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
        except BaseException as err:  # noqa: BLE001 - judged by the runner below
            holder["error"] = err

    # the kernel runs in the notebook's folder: give it the store as this process sees it
    # every section records its assessment in PERFKIT_FACTS, whatever the notebook
    with environment(PERFKIT_DSN=live_dsn or None, PERFKIT_PROGRESS="0", PERFKIT_FACTS=str(facts_path),
                     PERFKIT_STORE=_store_for_kernel()):
        # papermill runs in a thread: the signals stay with this one (nbclient would take SIGTERM)
        worker = threading.Thread(target=execute, name="perfkit-papermill", daemon=True)
        if not stops.received:
            worker.start()
            wait_for(worker, holder, stops)
    err = holder.get("error")
    if stops.received:
        status, error = "failed", f"interrupted by {stops.received[0]}"
    elif isinstance(err, execution_error):
        status = "failed"
        error = f"{err.ename}: {' '.join(str(err.evalue).split())}"[:500]
    elif err is not None:  # the kernel died, timed out, or never started
        status = "failed"
        error = f"{type(err).__name__}: {' '.join(str(err).split()) or type(err).__name__}"[:500]
    duration = time.perf_counter() - t0
    finished = dt.datetime.now(dt.UTC)
    error = redact_all(error, secrets) if error else None

    # the executed (or partial) notebook, redacted; the input itself when the kernel never ran
    nb_man = holder.get("nb_man")
    files: dict[Path, str] = {}
    try:
        files = export(path, partial, nb_path, html_path, status=status, error=error, source=source,
                       secrets=secrets, title=f"perfkit {path.stem} report {folder.name}",
                       executed=getattr(nb_man, "nb", None))
    except Exception as err:  # noqa: BLE001 - a report that cannot be exported has failed
        status = "failed"
        error = redact_all(f"exporting the report failed: {type(err).__name__}: {' '.join(str(err).split())}"[:500], secrets)

    try:
        facts = json.loads(facts_path.read_text()) if facts_path.exists() else {}
    except ValueError:
        facts = {}
    shown_parameters = {k: v for k, v in safe.items() if k != FACTS_PARAMETER}
    if live_dsn:
        shown_parameters[DSN_PARAMETER] = db.redact(live_dsn)
    paths = {"folder": str(folder), "notebook": str(nb_path), "html": str(html_path), "summary": str(summary_path),
             "index": str(out / INDEX_NAME)}
    summary = build_summary(facts, status=status, error=error, notebook=path, started=started, finished=finished,
                            parameters=shown_parameters, source=source, previous=previous, paths=paths)
    summary["duration_s"] = round(duration, 2)
    summary = redact_all(to_jsonable(summary), secrets)
    files[summary_path] = json.dumps(summary, indent=2) + "\n"
    publish(folder, files)
    write_index(out)
    return ReportResult(folder, status, error, nb_path, html_path, summary_path, summary)
