"""A fleet of servers: the fleet file (TOML) and parallel snapshot collection.

The fleet file (``perfkit.toml``, or ``--fleet FILE``; docs/README-fleet.md)::

    store = "s3://perf-bucket/perfkit"      # optional: the default --store (a folder: relative to this file)
    connect_timeout = 5                     # optional: seconds per server (default 10)
    statement_timeout = "30s"               # optional: per statement on every server

    [slo.env]                               # optional: an SLO file per tag value
    prod = "slo/prod.toml"                  # relative to the fleet file

    [[server]]
    name = "orders-prod"                    # the server's name in the store (default: the
    service = "orders-prod"                 #   service, or host-port-dbname of the dsn)
    env = "prod"                            # tags: env, team, region (and any under [server.tags])
    team = "payments"
    region = "eu-west-1"

    [[server]]
    dsn = "host=billing.internal dbname=billing user=perfkit"   # passwords: ~/.pgpass or PGPASSFILE
    env = "staging"

A server is named by a libpq ``service`` (pg_service.conf: the usual way to name many servers)
or a ``dsn``. Passwords belong in ``~/.pgpass`` or the environment; a password written in a DSN
in the file works, draws a warning, and is masked in every output perfkit writes.

Every mistake in the file is one line naming the file and the line (:class:`BadInputError`).
"""

from __future__ import annotations

import re
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from perfkit import secrets
from perfkit.db import sanitize_server_id
from perfkit.errors import BadInputError, PerfkitError

DEFAULT_FILE = "perfkit.toml"
DEFAULT_JOBS = 8
DEFAULT_CONNECT_TIMEOUT = 10
TAG_KEYS = ("env", "team", "region")
SERVER_KEYS = frozenset({"name", "dsn", "service", "dbname", "slo", "tags", "connect_timeout", *TAG_KEYS})
TOP_KEYS = frozenset({"store", "connect_timeout", "statement_timeout", "lock_timeout", "jobs", "slo", "server"})
_TOML_LINE = re.compile(r"\(at line (\d+), column \d+\)")


@dataclass(frozen=True)
class Server:
    """One server of the fleet.

    Attributes
    ----------
    name:
        Its name in the store (``server=<name>``) and on the fleet page.
    dsn:
        The libpq connection string perfkit connects with (``service=...`` or the file's dsn).
    tags:
        ``env``, ``team``, ``region`` and any others, as text.
    slo:
        The SLO file for its weekly report (its own, or its tag's), or None.
    line:
        The line of its ``[[server]]`` in the fleet file.
    """

    name: str
    dsn: str
    tags: dict = field(default_factory=dict)
    slo: str | None = None
    line: int = 0
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT

    @property
    def shown(self) -> str:
        """The DSN as it may be shown: without its password."""
        return secrets.redact(self.dsn)

    def tag_text(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.tags.items())


@dataclass
class Fleet:
    """A parsed fleet file: its servers and defaults, and the warnings it deserves."""

    path: Path
    servers: list[Server]
    store: str | None = None
    statement_timeout: str = "30s"
    lock_timeout: str = "5s"
    jobs: int = DEFAULT_JOBS
    warnings: list[str] = field(default_factory=list)

    def tagged(self) -> dict[tuple[str, str], list[Server]]:
        """``(tag, value)`` -> the servers carrying it."""
        groups: dict[tuple[str, str], list[Server]] = {}
        for server in self.servers:
            for key, value in server.tags.items():
                groups.setdefault((key, value), []).append(server)
        return groups


def find_fleet(given: str | Path | None) -> Path:
    """The fleet file: ``given``, else ``perfkit.toml`` in the working folder."""
    path = Path(given) if given else Path(DEFAULT_FILE)
    if not path.is_file():
        if given and str(given) != DEFAULT_FILE:
            raise BadInputError("fleet file not found", path=path)
        raise BadInputError(f"no fleet: give --fleet FILE or write {DEFAULT_FILE} here (docs/README-fleet.md)")
    return path


def _server_lines(text: str) -> list[int]:
    """The 1-based line of each ``[[server]]`` header, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1) if re.match(r"^\s*\[\[\s*server\s*\]\]", line)]


def _key_line(text: str, key: str, start: int = 1, end: int | None = None) -> int | None:
    """The line where ``key = ...`` stands between lines ``start`` and ``end`` (1-based)."""
    lines = text.splitlines()
    for n in range(start, (end or len(lines)) + 1):
        if n - 1 < len(lines) and re.match(rf'^\s*"?{re.escape(key)}"?\s*=', lines[n - 1]):
            return n
    return None


def _timeout(value, what: str, path: Path, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise BadInputError(f"{what} must be a number of seconds above 0, not {value!r}", path=path, line=line)
    return int(max(1, round(value)))


def load_fleet(path: str | Path | None = None) -> Fleet:
    """Read and check a fleet file (``perfkit.toml`` when ``path`` is None)."""
    path = find_fleet(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"cannot read the fleet file ({getattr(err, 'strerror', None) or err})", path=path) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        match = _TOML_LINE.search(str(err))
        reason = _TOML_LINE.sub("", str(err)).strip().rstrip(".")
        raise BadInputError(f"not valid TOML: {reason}", path=path, line=int(match.group(1)) if match else None) from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise BadInputError(f"unknown setting {unknown[0]!r} (known: {', '.join(sorted(TOP_KEYS))})",
                            path=path, line=_key_line(text, unknown[0]))
    servers_raw = data.get("server", [])
    if not isinstance(servers_raw, list) or not servers_raw:
        raise BadInputError("no servers: add a [[server]] table with a dsn or a service", path=path)
    headers = _server_lines(text)
    default_connect = _timeout(data.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT), "connect_timeout", path,
                               _key_line(text, "connect_timeout"))
    store = data.get("store")
    if store is not None and (not isinstance(store, str) or not store):
        raise BadInputError("store must be a folder or a URI in quotes", path=path, line=_key_line(text, "store"))
    for key in ("statement_timeout", "lock_timeout"):
        if key in data and not isinstance(data[key], str | int):
            raise BadInputError(f"{key} must be a duration like \"30s\"", path=path, line=_key_line(text, key))
    if store and "://" not in store and not Path(store).is_absolute():
        store = str((path.parent / store).resolve())  # a folder: relative to the fleet file
    jobs = data.get("jobs", DEFAULT_JOBS)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs <= 0:
        raise BadInputError(f"jobs must be a whole number above 0, not {jobs!r}", path=path, line=_key_line(text, "jobs"))
    slo_by_tag = _slo_table(data.get("slo", {}), path, text)
    fleet = Fleet(path=path, servers=[], store=store, statement_timeout=str(data.get("statement_timeout", "30s")),
                  lock_timeout=str(data.get("lock_timeout", "5s")), jobs=jobs)
    names: dict[str, int] = {}
    for index, raw in enumerate(servers_raw):
        start = headers[index] if index < len(headers) else None
        end = headers[index + 1] - 1 if index + 1 < len(headers) else None
        server = _server(raw, path, text, start, end, slo_by_tag, default_connect, fleet.warnings)
        if server.name in names:
            raise BadInputError(f"server name {server.name!r} is used twice (first at line {names[server.name]}): "
                                "give each server its own name =", path=path, line=start)
        names[server.name] = start or 0
        fleet.servers.append(server)
    return fleet


def _slo_table(raw, path: Path, text: str) -> dict[tuple[str, str], str]:
    line = _key_line(text, "slo") or next((n for n, s in enumerate(text.splitlines(), 1) if s.strip().startswith("[slo")), None)
    if not isinstance(raw, dict):
        raise BadInputError("slo must be a table: [slo.env] then prod = \"slo-prod.toml\"", path=path, line=line)
    found = {}
    for tag, values in raw.items():
        if not isinstance(values, dict):
            raise BadInputError(f"slo.{tag} must be a table of tag value = SLO file", path=path, line=line)
        for value, file in values.items():
            where = _key_line(text, value) or line
            if not isinstance(file, str) or not file:
                raise BadInputError(f"slo.{tag}.{value} must be a file name in quotes", path=path, line=where)
            resolved = (path.parent / file).resolve()
            if not resolved.is_file():
                raise BadInputError(f"SLO file {file} (for {tag}={value}) not found", path=path, line=where)
            found[(str(tag), str(value))] = str(resolved)
    return found


def _server(raw, path: Path, text: str, start: int | None, end: int | None, slo_by_tag: dict,
            default_connect: int, warnings: list[str]) -> Server:
    def line_of(key: str) -> int | None:
        return _key_line(text, key, start or 1, end) if start else None

    if not isinstance(raw, dict):
        raise BadInputError("each server must be a [[server]] table", path=path, line=start)
    unknown = sorted(set(raw) - SERVER_KEYS)
    if unknown:
        raise BadInputError(f"unknown server setting {unknown[0]!r} (known: {', '.join(sorted(SERVER_KEYS))})",
                            path=path, line=line_of(unknown[0]) or start)
    dsn, service = raw.get("dsn"), raw.get("service")
    if (dsn is None) == (service is None):
        raise BadInputError("a server needs exactly one of dsn = \"...\" or service = \"...\" (pg_service.conf)",
                            path=path, line=start)
    for key in ("dsn", "service", "name", "dbname", "slo"):
        if key in raw and (not isinstance(raw[key], str) or not raw[key].strip()):
            raise BadInputError(f"{key} must be text in quotes", path=path, line=line_of(key) or start)
    if service is not None:
        parts = {"service": service}
        if raw.get("dbname"):
            parts["dbname"] = raw["dbname"]
        conninfo = psycopg.conninfo.make_conninfo("", **parts)
    else:
        if raw.get("dbname"):
            raise BadInputError("dbname goes with service =; put it in the dsn instead", path=path, line=line_of("dbname"))
        reason = secrets.malformed(dsn)
        if reason:  # never quote the DSN: it may hold a password
            raise BadInputError(f"dsn is not a valid connection string ({reason}); it is not shown, as it may hold a password",
                                path=path, line=line_of("dsn") or start)
        conninfo = dsn
    if secrets.password_of(conninfo):
        secrets.remember(conninfo)  # masked in every later output of this process
        warnings.append(f"{path}, line {line_of('dsn') or start}: a password is written in this dsn; "
                        "keep it in ~/.pgpass (or PGPASSFILE) or name the server by a service in pg_service.conf")
    name = raw.get("name") or service or _name_from_dsn(conninfo)
    try:
        name = sanitize_server_id(name)
    except BadInputError:
        raise BadInputError(f"server name {name!r} has no usable characters", path=path, line=line_of("name") or start) from None
    tags = {}
    extra = raw.get("tags", {})
    if not isinstance(extra, dict):
        raise BadInputError("tags must be a table: tags = { tier = \"gold\" }", path=path, line=line_of("tags") or start)
    for key, value in [*((k, raw[k]) for k in TAG_KEYS if k in raw), *extra.items()]:
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise BadInputError(f"tag {key} must be text", path=path, line=line_of(key) or start)
        tags[str(key)] = str(value)
    slo = None
    if raw.get("slo"):
        resolved = (path.parent / raw["slo"]).resolve()
        if not resolved.is_file():
            raise BadInputError(f"SLO file {raw['slo']} not found", path=path, line=line_of("slo"))
        slo = str(resolved)
    else:
        slo = next((slo_by_tag[(k, v)] for k, v in tags.items() if (k, v) in slo_by_tag), None)
    connect = _timeout(raw["connect_timeout"], "connect_timeout", path, line_of("connect_timeout")) \
        if "connect_timeout" in raw else default_connect
    return Server(name=name, dsn=conninfo, tags=tags, slo=slo, line=start or 0, connect_timeout=connect)


def _name_from_dsn(dsn: str) -> str:
    try:
        params = secrets.parse_dsn(dsn)
    except psycopg.ProgrammingError:
        params = {}
    host = (params.get("host") or params.get("hostaddr") or "local").split(",")[0]
    return f"{host}-{params.get('port') or '5432'}-{params.get('dbname') or params.get('user') or 'postgres'}"


# -- collection -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What collecting one server gave: ``ok`` and the stored ``path``, or the ``error`` (redacted)."""

    server: str
    ok: bool
    path: str | None = None
    seconds: float = 0.0
    error: str | None = None
    statements: int = 0
    exit_code: int = 0

    def to_dict(self) -> dict:
        return {"server": self.server, "ok": self.ok, "path": self.path, "seconds": round(self.seconds, 3),
                "error": self.error, "statements": self.statements}


def snapshot_server(server: Server, store, *, statement_timeout: str = "30s", lock_timeout: str = "5s") -> Outcome:
    """Snapshot one server into ``store`` (a SnapshotStore); never raises: the outcome says."""
    from perfkit import db, statements

    started = time.monotonic()
    engine = None
    try:
        engine = db.connect(server.dsn, statement_timeout=statement_timeout, lock_timeout=lock_timeout,
                            connect_timeout=server.connect_timeout)
        snap = statements.snapshot(engine, server=server.name, dsn=server.dsn)
        path = store.save(snap, server=server.name)
        return Outcome(server.name, True, str(path), time.monotonic() - started, statements=len(snap))
    except PerfkitError as err:
        return Outcome(server.name, False, None, time.monotonic() - started,
                       error=secrets.redact_text(str(err), secrets.passwords_in(server.dsn)),
                       exit_code=err.exit_code)
    except Exception as err:  # noqa: BLE001 - one server's surprise must not stop the others
        text = " ".join(str(err).split())[:300]
        return Outcome(server.name, False, None, time.monotonic() - started,
                       error=secrets.redact_text(f"{type(err).__name__}: {text}", secrets.passwords_in(server.dsn)),
                       exit_code=70)
    finally:
        if engine is not None:
            engine.dispose()


def collect(fleet: Fleet, store, *, jobs: int | None = None, statement_timeout: str | None = None,
            lock_timeout: str | None = None, report=None) -> list[Outcome]:
    """Snapshot every server of ``fleet`` into ``store``, ``jobs`` at a time (threads).

    ``report(outcome, done, total)`` is called as each server finishes (progress). The outcomes
    come back in the fleet file's order.
    """
    jobs = max(1, int(jobs or fleet.jobs))
    lock = threading.Lock()
    done = [0]

    def one(server: Server) -> Outcome:
        outcome = snapshot_server(server, store, statement_timeout=statement_timeout or fleet.statement_timeout,
                                  lock_timeout=lock_timeout or fleet.lock_timeout)
        if report is not None:
            with lock:
                done[0] += 1
                report(outcome, done[0], len(fleet.servers))
        return outcome

    with ThreadPoolExecutor(max_workers=min(jobs, len(fleet.servers)), thread_name_prefix="perfkit-fleet") as pool:
        return list(pool.map(one, fleet.servers))
