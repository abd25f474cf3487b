"""What the command line prints: terminal tables for people, one JSON object for machines.

Progress bars go to stderr; nothing here is used by library code that returns DataFrames.

A table is a DataFrame or a list of row dicts (:class:`Rows` carries its column order): the plan
command renders rows, so that it never imports pandas; numpy and pandas are looked at only when
they are loaded already (a DataFrame, a numpy number or a Timestamp cannot exist otherwise).
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Sequence

_NAN = float("nan")


def _pandas():
    """pandas when something has imported it (only then can a value be a pandas object), else None."""
    return sys.modules.get("pandas")


def _numpy():
    return sys.modules.get("numpy")


def is_frame(value) -> bool:
    """Whether ``value`` is a pandas DataFrame (False without importing pandas)."""
    pd = _pandas()
    return pd is not None and isinstance(value, pd.DataFrame)


def is_missing(value) -> bool:
    """None, NaN, ``pd.NA`` or ``pd.NaT``."""
    if value is None:
        return True
    if isinstance(value, float):
        return value != value
    pd = _pandas()
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    np = _numpy()
    return np is not None and isinstance(value, np.floating) and bool(np.isnan(value))


def _is_int(value) -> bool:
    if isinstance(value, int):
        return not isinstance(value, bool)
    np = _numpy()
    return np is not None and isinstance(value, np.integer)


def _is_float(value) -> bool:
    if isinstance(value, float):
        return True
    np = _numpy()
    return np is not None and isinstance(value, np.floating)


def _is_bool(value) -> bool:
    if isinstance(value, bool):
        return True
    np = _numpy()
    return np is not None and isinstance(value, np.bool_)


def column_kind(values: Iterable) -> str:
    """``int``, ``float``, ``bool`` or ``object``: the dtype pandas gives a column of these values
    (``pd.DataFrame(list_of_dicts)``: whole numbers with a missing one are floats, a missing key is NaN)."""
    ints = floats = bools = missing = nan = False
    for value in values:
        if value is None:
            missing = True
        elif _is_bool(value):
            bools = True
        elif _is_int(value):
            ints = True
        elif _is_float(value):
            if value != value:
                nan = True
            else:
                floats = True
        else:
            return "object"
    if bools:
        return "bool" if not (ints or floats or missing or nan) else "object"
    if ints or floats or nan:
        return "float" if floats or missing or nan else "int"
    return "object"


class Rows(list):
    """A table as a list of row dicts, in the column order a DataFrame of them would have.

    ``infer``: the rows are what ``pd.DataFrame(rows)`` would be built from, so :meth:`records`
    gives what that frame's ``to_dict("records")`` would (a missing key NaN, whole numbers in a
    column with a missing one as floats); without it the rows are already typed and kept as they
    are. ``dtypes``: columns whose frame has a declared dtype instead: ``"Int64"`` (whole numbers
    with missing ones, as a plan finding's ``node_id``) keeps the numbers and makes a missing one
    None. ``frame``: a callable making the DataFrame the rows stand for (default: built from
    them), for whoever reads the table as a frame (:meth:`to_frame`).
    """

    def __init__(self, rows: Iterable[dict] = (), columns: Sequence[str] | None = None, *, infer: bool = True,
                 frame=None, attrs: dict | None = None, dtypes: dict | None = None):
        super().__init__(rows)
        if columns is None:
            seen: dict = {}
            for row in self:
                for key in row:
                    seen.setdefault(key, None)
            columns = list(seen)
        self.columns = list(columns)
        self.infer = infer
        self.make_frame = frame
        self.attrs = dict(attrs or {})
        self.dtypes = dict(dtypes or {})
        self._records: list[dict] | None = None
        self._kinds: dict | None = None

    @property
    def empty(self) -> bool:
        return not len(self) or not self.columns

    def kinds(self) -> dict[str, str]:
        """``{column: int/float/bool/object}`` (:func:`column_kind`)."""
        if self._kinds is None:
            self._kinds = {c: "Int64" if self.dtypes.get(c) == "Int64" else column_kind(row.get(c, _NAN) for row in self)
                           for c in self.columns}
        return self._kinds

    def records(self) -> list[dict]:
        """The rows with every column, typed as a DataFrame of them would hold them."""
        if self._records is None:
            nullable = [c for c in self.columns if self.dtypes.get(c) == "Int64"]
            floats = [c for c, kind in self.kinds().items() if kind == "float"] if self.infer else []
            out = []
            for row in self:
                record = {c: row.get(c, _NAN) for c in self.columns}
                for c in floats:
                    value = record[c]
                    record[c] = _NAN if value is None else float(value)
                for c in nullable:
                    if is_missing(record[c]):
                        record[c] = None
                out.append(record)
            self._records = out
        return self._records

    def numeric(self, column: str) -> bool:
        """Whether ``column`` is numbers (``pd.api.types.is_numeric_dtype`` of its frame column)."""
        if self.infer or column in self.dtypes:
            kind = self.kinds().get(column)
        else:
            kind = column_kind(row.get(column, _NAN) for row in self)
        return kind in ("int", "float", "bool", "Int64")

    def to_frame(self):
        """The DataFrame these rows stand for."""
        if self.make_frame is not None:
            return self.make_frame()
        import pandas as pd

        frame = pd.DataFrame(list(self), columns=self.columns) if len(self) else pd.DataFrame(columns=self.columns)
        frame.attrs.update(self.attrs)
        return frame


def as_rows(table, columns: Sequence[str] | None = None) -> Rows:
    """``table`` (a DataFrame, :class:`Rows` or a list of dicts) as :class:`Rows`."""
    if isinstance(table, Rows):
        return table
    if is_frame(table):
        return Rows(table.to_dict(orient="records"), list(table.columns), infer=False,
                    frame=lambda: table, attrs=table.attrs)
    return Rows(list(table or []), columns)


def to_jsonable(value):
    """Turn DataFrames, row tables, numpy scalars, timestamps and NaN into plain JSON values."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, Rows):
        return [to_jsonable(row) for row in value.records()]
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        value = float(value)
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, int):
        return value
    pd = _pandas()
    if pd is not None:
        if isinstance(value, pd.DataFrame):
            return [to_jsonable(row) for row in value.to_dict(orient="records")]
        if isinstance(value, pd.Series):
            return to_jsonable(value.to_dict())
    dt = sys.modules.get("datetime")  # a datetime value exists only once datetime is imported
    if dt is not None and isinstance(value, dt.datetime):
        if pd is not None:
            if pd.isna(value):
                return None
            return pd.Timestamp(value).isoformat()
        return value.isoformat()
    if dt is not None and isinstance(value, dt.timedelta):
        return pd.Timedelta(value).total_seconds() if pd is not None else value.total_seconds()
    if pd is not None and isinstance(value, pd.Timedelta):
        return pd.Timedelta(value).total_seconds()
    np = _numpy()
    if np is not None:
        if isinstance(value, np.integer):
            return int(value)
        if isinstance(value, np.floating):
            value = float(value)
            return None if math.isnan(value) or math.isinf(value) else value
        if isinstance(value, np.bool_):
            return bool(value)
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "to_dict") and hasattr(value, "action"):  # a perfkit.sql.Fix
        return to_jsonable(value.to_dict())
    return value


# The version of the JSON perfkit writes (``--json`` and summary.json); raised when a field is
# renamed or removed or changes meaning (adding one does not). Schemas: perfkit/schemas/.
SCHEMA_VERSION = 1


def versioned(payload: dict) -> dict:
    """``payload`` led by ``schema_version`` and ``perfkit_version`` (what every JSON output carries)."""
    from perfkit import __version__

    rest = {k: v for k, v in payload.items() if k not in ("schema_version", "perfkit_version")}
    return {"schema_version": SCHEMA_VERSION, "perfkit_version": __version__, **rest}


def emit_json(payload: dict, stream=None) -> None:
    """Print one JSON object on stdout (tables as lists of row objects), led by its
    ``schema_version`` and ``perfkit_version``.

    The text is built first and written and flushed at once, so that a full disk or
    ``/dev/full`` is an OutputError (exit code 3) here, not a traceback at exit.
    """
    stream = stream or sys.stdout
    text = json.dumps(to_jsonable(versioned(payload)), indent=2, sort_keys=False) + "\n"
    try:
        stream.write(text)
        stream.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        raise write_failed(err, stream) from None


def write_failed(err: OSError, stream=None):
    """The OutputError for ``err`` raised writing ``stream`` (stdout by default); stdout is
    pointed at /dev/null so that what is still buffered does not fail again at exit."""
    from perfkit.errors import OutputError

    stream = stream or sys.stdout
    name = "standard output" if stream in (sys.stdout, sys.__stdout__) else getattr(stream, "name", "the output")
    if stream in (sys.stdout, sys.__stdout__):
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError):
            pass
    return OutputError(f"cannot write to {name} ({err.strerror or err})")


def _cell(value, width: int, column: str = "", units: dict | None = None) -> str:
    from perfkit.display import ratio_text

    is_float, is_int = _is_float(value), _is_int(value) or isinstance(value, bool)
    ratio = ratio_text(value, column, units) if is_float or is_int else None
    if ratio is not None:
        text = ratio
    elif value is None or (isinstance(value, float) and math.isnan(value)) or _is_pd_na(value):
        text = ""
    elif is_float:
        if abs(value) >= 1e15:
            text = f"{value:.3g}"
        elif float(value).is_integer():
            text = f"{int(value):,}"
        else:
            text = f"{value:,.2f}"
    elif is_int and not isinstance(value, bool):
        text = f"{value:,}"
    elif _is_timestamp(value):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
    else:
        text = " ".join(str(value).split())
    if len(text) > width:
        text = text[: max(width - 1, 1)] + "…"
    return text


def _is_pd_na(value) -> bool:
    pd = _pandas()
    return pd is not None and value is pd.NA


def _is_timestamp(value) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(value, pd.Timestamp)


def _table(table, columns: Sequence[str] | None):
    """``(columns, rows as tuples, numeric flags, units)`` of a DataFrame or a list of row dicts."""
    if is_frame(table):
        import pandas as pd

        columns = list(columns or table.columns)
        records = list(table[columns].itertuples(index=False))
        numeric = [pd.api.types.is_numeric_dtype(table[c]) for c in columns]
        return columns, records, numeric, table.attrs.get("units")
    rows = as_rows(table)
    columns = list(columns or rows.columns)
    records = [tuple(record[c] if c in record else _NAN for c in columns) for record in rows.records()]
    numeric = [rows.numeric(c) for c in columns]
    return columns, records, numeric, rows.attrs.get("units")


def _records(table) -> list[dict]:
    """The rows of a DataFrame or a list of row dicts, as dicts."""
    return table.to_dict(orient="records") if is_frame(table) else as_rows(table).records()


def _columns(table) -> list:
    return list(table.columns) if is_frame(table) else as_rows(table).columns


def _empty(table) -> bool:
    return bool(table.empty) if is_frame(table) else as_rows(table).empty


# -- colour: severities and verdicts, on a terminal only ------------------------------------------
ANSI = {"critical": "1;31", "fail": "1;31", "failed": "1;31", "error": "1;31", "warning": "33", "warn": "33",
        "ok": "32", "pass": "32", "info": "36", "not run": "2"}
COLOURED_COLUMNS = frozenset({"severity", "status", "verdict", "slo", "slo_verdict"})


def use_colour(stream=None) -> bool:
    """Whether to colour what goes to ``stream`` (stdout by default): never with ``NO_COLOR`` set
    (no-color.org), always with ``FORCE_COLOR`` set (not ``0``), else only on a terminal that is
    not ``TERM=dumb`` (never when piped or redirected)."""
    if os.environ.get("NO_COLOR", ""):
        return False
    force = os.environ.get("FORCE_COLOR", "")
    if force and force != "0":
        return True
    stream = stream or sys.stdout
    try:
        return bool(stream.isatty()) and os.environ.get("TERM", "") != "dumb"
    except (AttributeError, ValueError):
        return False


def paint(text: str, word: str | None = None, *, colour: bool | None = None) -> str:
    """``text`` in the colour of ``word`` (default the text itself: a severity or verdict), when
    colour is on (:func:`use_colour` unless ``colour`` says)."""
    key = str(word if word is not None else text).strip().lower()
    code = ANSI.get(key) or ANSI.get(key.split(":")[0].split(" ")[0])  # "warning: p95, p99" is a warning
    if not code or not (use_colour() if colour is None else colour):
        return text
    return f"\033[{code}m{text}\033[0m"


def terminal_columns(fallback: int = 100) -> int:
    """The terminal's width: ``shutil.get_terminal_size((fallback, 24)).columns`` (``$COLUMNS``,
    else the terminal of stdout, else ``fallback``), without importing shutil."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    try:
        lines = int(os.environ["LINES"])
    except (KeyError, ValueError):
        lines = 0
    if columns <= 0 or lines <= 0:
        try:
            size = os.get_terminal_size(sys.__stdout__.fileno())
        except (AttributeError, ValueError, OSError):
            size = os.terminal_size((fallback, 24))
        if columns <= 0:
            columns = size.columns or fallback
    return columns


def _width(width: int | None) -> int:
    return width or terminal_columns()


def format_table(
    frame,
    columns: Sequence[str] | None = None,
    *,
    max_width: int = 60,
    headers: dict[str, str] | None = None,
    fit: str | None = None,
    width: int | None = None,
    colour: bool | None = None,
) -> str:
    """A plain fixed-width table of ``frame`` (a DataFrame or a list of row dicts: numbers
    right-aligned, long text cut, ratios as percentages: :func:`perfkit.display.percent_scale`).

    ``fit``: a text column cut so that the table fits ``width`` (default: the terminal's, at
    least 100 columns when it cannot be told), keeping at least 24 characters of it.
    ``colour``: severities and verdicts coloured (default :func:`use_colour`).
    """
    colour = use_colour() if colour is None else colour
    headers = headers or {}
    if markdown_mode():  # --format markdown: the same table, GitHub-flavoured
        return markdown_table(frame, columns, headers=headers)
    if _empty(frame):
        return "(none)"
    columns, records, numeric, units = _table(frame, columns)
    limits = dict.fromkeys(columns, max_width)
    if fit in limits:
        width = width or terminal_columns()
        at = {c: i for i, c in enumerate(columns)}
        used = sum(max([len(headers.get(c, c))] + [len(_cell(r[at[c]], max_width, c, units)) for r in records]) + 2
                   for c in columns if c != fit)
        limits[fit] = max(24, width - used)
    rows = [[_cell(v, limits[c], c, units) for c, v in zip(columns, record, strict=True)] for record in records]
    titles = [headers.get(c, c) for c in columns]
    widths = [max([len(t)] + [len(r[i]) for r in rows]) for i, t in enumerate(titles)]

    painted = [colour and c in COLOURED_COLUMNS for c in columns]

    def line(cells: Iterable[str], body: bool = False) -> str:
        parts = []
        for text, width, is_num, paints in zip(cells, widths, numeric, painted, strict=True):
            padded = text.rjust(width) if is_num else text.ljust(width)
            if body and paints and text:
                padded = paint(text, colour=True) + padded[len(text):]
            parts.append(padded)
        return "  ".join(parts).rstrip()

    out = [line(titles), line("-" * w for w in widths)]
    out.extend(line(r, body=True) for r in rows)
    return "\n".join(out)


def _cards(frame, columns: Sequence[str], width: int, colour: bool) -> str:
    lines = []
    for row in _records(frame):
        severity = str(row.get("severity", "") or "")
        head = [c for c in columns if c not in ("severity", "evidence", "recommendation", "sql")]
        title = " · ".join(" ".join(str(row.get(c, "") or "").split()) for c in head if str(row.get(c, "") or "").strip())
        label = severity.upper()
        first = wrapped(f"{label}  {title}", width=width, indent="    ")
        if label and colour:
            first = paint(label, severity, colour=True) + first[len(label):]
        lines.append(first)
        for column, prefix in (("evidence", ""), ("recommendation", "fix: ")):
            text = row.get(column)
            if column in columns and isinstance(text, str) and text.strip():
                lines.append(wrapped(text, "    " + prefix, width=width, indent="    " + " " * len(prefix)))
        sql = row.get("sql")
        if "sql" in columns and isinstance(sql, str) and sql.strip():
            lines.extend("    " + part for part in wrapped_sql(sql, width=width - 4).splitlines())
    return "\n".join(lines)


def format_findings(
    frame,
    columns: Sequence[str] = ("severity", "kind", "subject", "evidence"),
    *,
    max_width: int = 40,
    width: int | None = None,
    colour: bool | None = None,
) -> str:
    """Findings as a table when it fits ``width`` with nothing cut, else as cards: severity and
    subject on one line, then the evidence (and the fix, when ``columns`` has ``recommendation``
    or ``sql``) indented and wrapped. Severities coloured on a terminal (:func:`use_colour`)."""
    if _empty(frame):
        return "(none)"
    present = set(_columns(frame))
    columns = [c for c in columns if c in present]
    if markdown_mode():  # --format markdown: a table, never cards
        return markdown_table(frame, columns)
    width = _width(width)
    colour = use_colour() if colour is None else colour
    table = format_table(frame, columns, max_width=10_000, colour=False)
    if all(len(line) <= width for line in table.splitlines()):
        return format_table(frame, columns, max_width=10_000, colour=colour)
    return _cards(frame, columns, width, colour)


def print_findings(frame, columns: Sequence[str] = ("severity", "kind", "subject", "evidence"), *,
                   title: str | None = None, **kwargs) -> None:
    """Print findings (:func:`format_findings`) under ``title``."""
    if title:
        print(title)
    print(format_findings(frame, columns, **kwargs))


def print_table(frame, columns: Sequence[str] | None = None, *, title: str | None = None, **kwargs) -> None:
    """Print a titled table on stdout."""
    if title:
        print(title)
    print(format_table(frame, columns, **kwargs))


def progress(iterable=None, *, desc: str = "", total: int | None = None, unit: str = "it"):
    """A tqdm progress bar on stderr; shown on a terminal, or always with PERFKIT_PROGRESS=1."""
    from tqdm.auto import tqdm

    force = os.environ.get("PERFKIT_PROGRESS", "") == "1"
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        file=sys.stderr,
        disable=False if force else None,
        leave=False,
    )


def wrapped(text: str, prefix: str = "", width: int | None = None, *, indent: str | None = None) -> str:
    """``text`` wrapped to the terminal (at least 100 columns when it cannot be told), later lines
    starting with ``indent`` (default: spaces under the first one's text)."""
    import textwrap

    width = width or terminal_columns()
    return textwrap.fill(" ".join(str(text).split()), width=max(width, 40), initial_indent=prefix,
                         subsequent_indent=" " * len(prefix) if indent is None else indent, break_on_hyphens=False)


def wrapped_sql(sql: str, width: int | None = None) -> str:
    """SQL for a terminal: a statement longer than the width is broken at spaces outside quotes and
    indented (still the same SQL), a trailing ``-- comment`` goes on the line before it."""
    import textwrap

    width = max(width or terminal_columns(), 40)
    out = []
    for line in sql.splitlines():
        code, sep, comment = line.partition("  -- ")
        if sep:
            out.append(f"-- {comment}")
            line = code
        if len(line) <= width or "'" in line or '"' in line:
            out.append(line)
            continue
        out.extend(textwrap.wrap(line, width=width, subsequent_indent="    ", break_long_words=False,
                                 break_on_hyphens=False))
    return "\n".join(out)


def say(message: str) -> None:
    """A progress line on stderr (never on stdout, which may be JSON)."""
    print(message, file=sys.stderr, flush=True)


# -- Markdown (--format markdown) -----------------------------------------------------------------
# A command prints as it always does; under markdown_output() its tables come out as GitHub tables
# (format_table), code as fenced blocks (print_code), and every other line keeps its line break.
# The whole output is also appended to $GITHUB_STEP_SUMMARY when that is set (a GitHub Actions job).
_MARKDOWN = {"on": False}
_MARKDOWN_CELL = 300  # longest cell text in a Markdown table (a terminal cuts at its width)
_MARKDOWN_SPECIAL = "\\`*_[]<>|"


def markdown_mode() -> bool:
    """True while a command prints Markdown (``--format markdown``)."""
    return _MARKDOWN["on"]


def markdown_escape(text: str) -> str:
    """``text`` with Markdown's inline syntax characters backslash-escaped: it renders as itself
    (an underscore inside a word, as in ``p95_ms``, cannot start emphasis and stays as it is)."""
    import re

    escaped = "".join("\\" + ch if ch in _MARKDOWN_SPECIAL else ch for ch in text)
    return re.sub(r"(?<=[A-Za-z0-9])\\_(?=[A-Za-z0-9])", "_", escaped)


def markdown_table(frame, columns: Sequence[str] | None = None, *,
                   headers: dict[str, str] | None = None) -> str:
    """``frame`` (a DataFrame or a list of row dicts) as a GitHub-flavoured Markdown table (numbers
    right-aligned), with a blank line before and after it so that it never joins the text around
    it; ``(none)`` when empty."""
    headers = headers or {}
    if _empty(frame):
        return "\n(none)\n"
    columns, records, numeric, _ = _table(frame, columns)
    head = "| " + " | ".join(markdown_escape(str(headers.get(c, c))) for c in columns) + " |"
    rule = "|" + "|".join("---:" if is_num else ":---" for is_num in numeric) + "|"
    rows = ["| " + " | ".join(markdown_escape(_cell(v, _MARKDOWN_CELL)) for v in record) + " |"
            for record in records]
    return "\n".join(["", head, rule, *rows, ""])


def print_code(text: str, language: str = "") -> None:
    """Print a block as it is (SQL, a plan tree): fenced in Markdown mode."""
    if markdown_mode():
        fence = "~~~~" if "```" in text else "```"
        print(f"\n{fence}{language}\n{text}\n{fence}\n")
    else:
        print(text)


class _MarkdownLines:
    """stdout under markdown_output(): plain lines get a hard line break (two trailing spaces), so
    a terminal's lines stay lines; tables, fences and blank lines pass as they are. Everything
    written is also kept for $GITHUB_STEP_SUMMARY."""

    def __init__(self, stream):
        self.stream = stream
        self.kept: list[str] = []
        self._partial = ""
        self._fenced = False

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            self._line(line)
        return len(text)

    def _line(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~~")):
            self._fenced = not self._fenced
        elif not self._fenced and stripped and not stripped.startswith("|"):
            # printed text is meant literally: escaped, so `*`, `_`, `<` and a leading `#` or `-` show as they are
            text = markdown_escape(line.rstrip())
            if text.lstrip()[:1] in ("#", "-", "+", "=", ">"):
                cut = len(text) - len(text.lstrip())
                text = text[:cut] + "\\" + text[cut:]
            line = text + "  "
        self.kept.append(line)
        self.stream.write(line + "\n")

    def flush(self) -> None:
        if self._partial:
            self._line(self._partial)
            self._partial = ""
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def __getattr__(self, name):
        return getattr(self.stream, name)


class markdown_output:
    """While it is active, printed tables and lines come out as Markdown; at the end the output
    is appended to ``$GITHUB_STEP_SUMMARY`` when that names a file (a job's summary page)."""

    def __init__(self, active: bool = True):
        self.active = active
        self.lines: _MarkdownLines | None = None

    def __enter__(self):
        if self.active:
            _MARKDOWN["on"] = True
            self.saved = sys.stdout
            self.lines = _MarkdownLines(sys.stdout)
            sys.stdout = self.lines
        return self

    def __exit__(self, *exc) -> None:
        if not self.active:
            return
        try:
            self.lines.flush()
        finally:
            sys.stdout = self.saved
            _MARKDOWN["on"] = False
        append_step_summary("\n".join(self.lines.kept))


def append_step_summary(text: str) -> None:
    """Append ``text`` to ``$GITHUB_STEP_SUMMARY`` when it is set; a file that cannot be written is an
    OutputError (exit 3)."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target or not text.strip():
        return
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(text.rstrip("\n") + "\n\n")
    except OSError as err:
        from perfkit.errors import OutputError

        raise OutputError(f"cannot append to $GITHUB_STEP_SUMMARY {target} ({err.strerror or err})") from None
