"""The demo: the whole investigation loop on a throwaway database, from slow endpoint to verified fix.

``run_demo()`` builds the shop, load-tests its API, reports, applies the report's fixes, load-tests again and compares.
"""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import psycopg

from perfkit import db, statements
from perfkit.demo import shop
from perfkit.errors import BadInputError, ExtensionMissing, PerfkitError
from perfkit.output import progress, say, to_jsonable
from perfkit.sandbox import DEFAULT_STATE_DIR, Sandbox
from perfkit.sql import Fix
from perfkit.store import SnapshotStore

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
APP_ROLE = "shop_app"
# What the sandbox logs for the app's role only (perfkit's own reads stay out of the log): every
# statement with its duration, and the plan of each one above 50 ms (row counts and buffers;
# per-node timing off, so the instrumentation costs little).
APP_ROLE_SETTINGS = {
    "log_min_duration_statement": "0",
    "auto_explain.log_min_duration": "50ms",
    "auto_explain.log_analyze": "on",
    "auto_explain.log_buffers": "on",
    "auto_explain.log_timing": "off",
    "auto_explain.log_format": "json",
}
STEPS = (
    "start database",
    "build shop",
    "load test before",
    "report before",
    "apply fixes",
    "load test after",
    "report after",
    "stop database",
)


@dataclass
class DemoOptions:
    """What ``perfkit demo`` does; the defaults are the README's demo.

    Parameters
    ----------
    scale:
        Multiplies the shop's row counts (1.0: 300,000 orders, about 250,000 invoices).
    users, duration_s:
        Locust users (spawned at once) and seconds of load per load test.
    top:
        How many of the report's index recommendations to apply.
    dsn:
        A scratch database to use instead of a sandbox (refused when it holds tables, unless
        ``force``).
    keep:
        Leave the sandbox running afterwards (its DSN is in the result).
    out:
        Where the dated report folders go (``reports/``).
    sample_dest:
        When set, copy the run's real outputs there (``data/sample/``), see :func:`write_sample_data`.
    """

    scale: float = 1.0
    users: int = 10
    duration_s: int = 30
    top: int = 3
    dsn: str | None = None
    force: bool = False
    keep: bool = False
    out: Path = Path("reports")
    sample_dest: Path | None = None
    seed: int = 13
    state_path: Path | None = None


@dataclass
class LoadTestRound:
    """One load test of the demo API and the evidence around it."""

    label: str
    folder: Path
    stats_csv: Path
    statements_before: pd.DataFrame
    statements_after: pd.DataFrame
    statements: pd.DataFrame
    log_files: list[Path]
    seconds: float
    locust_output: str = ""


@dataclass
class DemoResult:
    """What the demo did: where its outputs are, per-step wall times, what was skipped and why."""

    run_dir: Path
    reports: dict[str, Path] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    rounds: dict[str, LoadTestRound] = field(default_factory=dict)
    fixes: pd.DataFrame = field(default_factory=pd.DataFrame)
    findings: pd.DataFrame = field(default_factory=pd.DataFrame)
    p95: pd.DataFrame = field(default_factory=pd.DataFrame)
    routes: pd.DataFrame = field(default_factory=pd.DataFrame)
    statement_changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    plan_changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    chart: Path | None = None
    before_plans: dict = field(default_factory=dict)
    after_plans: dict = field(default_factory=dict)
    sample_files: list[Path] = field(default_factory=list)
    dsn: str | None = None
    size: shop.ShopSize | None = None

    def as_json(self) -> dict:
        """The result as plain values for ``--json`` (tables as lists of rows)."""
        return {
            "run_dir": str(self.run_dir),
            "reports": {name: str(path) for name, path in self.reports.items()},
            "timings_s": self.timings,
            "skipped": self.skipped,
            "p95": self.p95,
            "routes": self.routes,
            "fixes": self.fixes,
            "statements": self.statement_changes,
            "plans": self.plan_changes,
            "findings": self.findings,
            "chart": str(self.chart) if self.chart else None,
            "sample_files": [str(p) for p in self.sample_files],
            "dsn": self.dsn,
            "size": self.size.__dict__ if self.size else None,
        }


def optional_module(name: str):
    """The module ``name``, or None when it is not installed in this perfkit (yet)."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name and (name == err.name or name.startswith(err.name + ".")):
            return None
        raise


# -- the database -------------------------------------------------------------------------------

def _require_statements_view(conn, conninfo: str) -> None:
    """Create pg_stat_statements in the scratch database, or say why the demo cannot run there."""
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1").fetchall()
    except psycopg.Error as err:
        first = db.redact_text(str(err).strip().splitlines()[0])
        raise ExtensionMissing(
            f"the demo needs pg_stat_statements in {db.describe(conninfo)} (in shared_preload_libraries, "
            f"and CREATE EXTENSION pg_stat_statements): {first}"
        ) from None


class DemoDatabase:
    """Where the shop lives: a sandbox the demo starts, or a scratch database the user gives.

    ``admin_dsn`` builds and fixes (read-write); ``app_dsn`` is the API's role; ``dsn`` is what
    perfkit's read-only analysis connects to.
    """

    def __init__(self, sandbox: Sandbox | None, dsn: str):
        self.sandbox = sandbox
        self.dsn = dsn
        self.admin_dsn = dsn
        self.app_dsn = dsn
        self.logs_collected = sandbox is not None

    @classmethod
    def start_sandbox(cls) -> DemoDatabase:
        sandbox = Sandbox().start()
        return cls(sandbox, sandbox.dsn)

    @classmethod
    def scratch(cls, dsn: str, *, force: bool = False) -> DemoDatabase:
        """Use the user's scratch database; refuse one holding tables unless ``force``."""
        conninfo = db.resolve_dsn(dsn)
        try:
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                tables = shop.existing_tables(conn)
                if tables and not force:
                    listed = ", ".join(tables[:5]) + (" ..." if len(tables) > 5 else "")
                    raise BadInputError(
                        f"{db.describe(conninfo)} is not empty ({len(tables)} tables: {listed}); "
                        "the demo builds its shop there, so give an empty scratch database or add --force"
                    )
                dropped = shop.drop_shop(conn) if tables else []
                if dropped:
                    say(f"  dropped the previous demo's tables: {', '.join(dropped)}")
                clash = [t for t in shop.existing_tables(conn) if t.split(".", 1)[1] in shop.SHOP_TABLES
                         and t.startswith("public.")]
                if clash:
                    raise BadInputError(
                        f"{db.describe(conninfo)} already has tables the demo would create ({', '.join(clash)}) "
                        "that it did not make: use another scratch database"
                    )
                _require_statements_view(conn, conninfo)
        except psycopg.Error as err:
            raise db.translate_error(err, target=db.describe(conninfo)) from None
        return cls(None, conninfo)

    def plant_settings(self, conn) -> None:
        """The database's small work_mem; on a database the user owns only (else said and skipped)."""
        try:
            shop.plant_settings(conn)
        except psycopg.errors.InsufficientPrivilege:
            say("  could not set the database's work_mem (only its owner can): the sales report's sort "
                "will spill only if the server's work_mem is small")

    def admin_connect(self) -> psycopg.Connection:
        return psycopg.connect(self.admin_dsn, autocommit=True, connect_timeout=10)

    def create_app_role(self, conn) -> None:
        """The API's own role (sandbox only): it may read the shop, and the server logs what it runs."""
        if self.sandbox is None:
            return
        password = secrets.token_urlsafe(18)
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_ROLE,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(f"{verb} ROLE {APP_ROLE} LOGIN PASSWORD '{password}'")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {APP_ROLE}")
        for name, value in APP_ROLE_SETTINGS.items():
            conn.execute(f"ALTER ROLE {APP_ROLE} SET {name} = '{value}'")
        self.app_dsn = self.sandbox.dsn_for(self.sandbox.database, user=APP_ROLE, password=password)
        db.resolve_dsn(self.app_dsn)  # remembered, so the password is masked in any message

    def log_offsets(self) -> dict[Path, int]:
        """The current size of each server log file (what a load test adds comes after it)."""
        if self.sandbox is None:
            return {}
        return {path: path.stat().st_size for path in self.sandbox.log_files()}

    def copy_logs(self, offsets: dict[Path, int], dest: Path) -> list[Path]:
        """Copy what the server logged since ``offsets`` into ``dest`` (same file names)."""
        if self.sandbox is None:
            return []
        dest.mkdir(parents=True, exist_ok=True)
        copied = []
        for path in self.sandbox.log_files():
            start = offsets.get(path, 0)
            size = path.stat().st_size
            if size <= start:
                continue
            target = dest / path.name
            with path.open("rb") as src, target.open("wb") as out:
                src.seek(start)
                shutil.copyfileobj(src, out)
            copied.append(target)
        return copied

    def stop(self, *, keep: bool = False, state_path: Path | None = None) -> None:
        if self.sandbox is None:
            return
        if keep:
            self.sandbox.state().save(state_path or DEFAULT_STATE_DIR / "state.json")
        else:
            self.sandbox.stop()


# -- the load test ------------------------------------------------------------------------------

def locust_command(url: str, csv_prefix: Path, *, users: int, duration_s: int) -> list[str]:
    """The Locust command line of one headless, time-bounded run against ``url`` (127.0.0.1 only)."""
    if not url.startswith("http://127.0.0.1:"):
        raise BadInputError(f"the demo load-tests only 127.0.0.1, not {url}")
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "-u", str(users), "-r", str(users),
        "-t", f"{int(duration_s)}s",
        "--host", url,
        "--csv", str(csv_prefix), "--csv-full-history",
        "--html", str(csv_prefix) + ".html",
        "--only-summary",
        "--loglevel", "WARNING",
        "--stop-timeout", "5",
        "--exit-code-on-error", "0",
    ]


def run_locust(url: str, folder: Path, facts: shop.ShopFacts, *, users: int = 10, duration_s: int = 30,
               seed: int = 13, prefix: str = "locust") -> tuple[Path, str]:
    """Run Locust headless against the demo API; returns its ``_stats.csv`` and its printed summary.

    Raises
    ------
    PerfkitError
        When Locust is not installed (the ``demo`` extra), fails, or writes no statistics.
    """
    if importlib.util.find_spec("locust") is None:  # never imported here: it monkey-patches
        raise PerfkitError("Locust is missing: install the demo extra (pip install -e '.[demo]', or make demo)")
    folder = Path(folder).resolve()  # Locust runs in the folder: every path it gets is absolute
    folder.mkdir(parents=True, exist_ok=True)
    facts_path = folder / "shop_facts.json"
    facts_path.write_text(json.dumps(facts.__dict__))
    csv_prefix = folder / prefix
    env = {**os.environ, "PERFKIT_DEMO_FACTS": str(facts_path), "PERFKIT_DEMO_SEED": str(seed)}
    command = locust_command(url, csv_prefix, users=users, duration_s=duration_s)
    output_path = folder / f"{prefix}_output.txt"
    limit = duration_s + 90
    with output_path.open("w") as sink:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT)
        started = time.monotonic()
        try:
            with progress(total=duration_s, desc="  seconds of load", unit="s") as bar:
                while process.poll() is None:
                    elapsed = time.monotonic() - started
                    if elapsed > limit:
                        raise PerfkitError(f"Locust did not stop within {limit} s")
                    seconds = min(int(elapsed), duration_s)
                    if seconds > bar.n:
                        bar.update(seconds - bar.n)
                    time.sleep(0.25)
        finally:
            if process.poll() is None:  # interrupted, or over time: never leave load running
                process.kill()
                process.wait()
    output = output_path.read_text(errors="replace").strip()
    stats = folder / f"{prefix}_stats.csv"
    if process.returncode != 0 or not stats.exists():
        tail = " | ".join(output.splitlines()[-3:])
        raise PerfkitError(f"Locust failed (exit code {process.returncode}): {tail}")
    return stats, output


def load_test_round(label: str, database: DemoDatabase, engine, url: str, folder: Path, facts, options: DemoOptions) -> LoadTestRound:
    """Snapshot pg_stat_statements, run Locust, snapshot again, collect the server log."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    before = statements.snapshot(engine, server="demo")
    offsets = database.log_offsets()
    # the files name their run (locust-before_stats.csv), so a report reading both tells them apart
    stats_csv, output = run_locust(url, folder, facts, users=options.users, duration_s=options.duration_s,
                                   seed=options.seed, prefix=f"locust-{label}")
    after = statements.snapshot(engine, server="demo")
    time.sleep(0.5)  # the logging collector writes a moment later
    logs = database.copy_logs(offsets, folder / "logs")
    changes = statements.diff(before, after)
    store = SnapshotStore(folder / "snapshots")
    store.save(before, server="demo")
    store.save(after, server="demo")
    save_frame(changes, folder / "statements_diff.parquet")
    return LoadTestRound(label, folder, stats_csv, before, after, changes, logs, time.perf_counter() - started, output)


def save_frame(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet (its ``attrs``, which may hold timestamps, left out)."""
    plain = frame.copy()
    plain.attrs = {}
    plain.to_parquet(path, index=False)
    return path


# -- applying the recommendations ---------------------------------------------------------------

INDEX_DDL = re.compile(r"^\s*CREATE\s+(UNIQUE\s+)?INDEX\b", re.IGNORECASE)
_INDEX_PARTS = re.compile(
    r"^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?(?P<name>[^\s(]+)?\s*"
    r"ON\s+(?:ONLY\s+)?(?P<table>[^\s(]+)\s*(?:USING\s+(?P<method>\w+)\s*)?\((?P<columns>.*)\)(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def index_key(sql: str) -> tuple[str, str, str, str]:
    """What an index statement builds: (table, method, columns, the rest), spaces, quotes and ``public.`` ignored."""
    from perfkit import sql as fixes

    fix = fixes.as_fix(sql) or fixes.parse_fix(str(sql))
    if fix is None or fix.action != "create_index":
        return (" ".join(str(sql).lower().split()), "", "", "")
    key = fix.key()  # ("create_index", schema, table, method, keys, include, where, unique)
    table = fix.table if key[1] == fixes.DEFAULT_SCHEMA else f"{key[1]}.{fix.table}"
    return (table, fix.method, ",".join(fix.key_columns), repr((key[4], *key[5:])))


def index_fixes(recommendations: pd.DataFrame, top: int = 3) -> pd.DataFrame:
    """The first ``top`` distinct ``CREATE INDEX`` statements among ranked recommendations (in their order).

    Two statements building the same index (same table, method and columns, whatever its
    name or schema prefix) count once: the first, best-ranked one is kept.
    """
    from perfkit import sql as fixes

    if recommendations is None or recommendations.empty or "sql" not in recommendations:
        return pd.DataFrame(columns=["sql"])
    chosen = recommendations.copy()
    chosen["sql"] = chosen["sql"].fillna("").astype(str).str.strip().str.rstrip(";").str.strip()
    # one CREATE INDEX each (nothing to run before or after it: CONCURRENTLY runs alone)
    found = [fixes.finding_fix(row) for row in chosen.to_dict(orient="records")]
    keys = [fix.key() if fix is not None and fix.action == "create_index" and not fix.requires and not fix.then
            else None for fix in found]
    seen: set = set()
    keep = []
    for key in keys:
        keep.append(key is not None and key not in seen)
        seen.add(key)
    return chosen[keep].head(top).reset_index(drop=True)


def apply_fixes(dsn: str, fixes: pd.DataFrame, *, runs: int = 10, store: Path | None = None) -> pd.DataFrame:
    """Apply each fix through ``perfkit verify`` (:func:`perfkit.verify.verify`, ``keep=True``): its
    statements timed before and after the index is built, the index kept for the next load test.

    Returns ``fixes`` with ``status`` (``applied``, ``exists`` when an index of that name is
    already there, or ``failed``), ``seconds`` (the build), ``error``, ``verified`` (the
    verification's sentence), ``speedup`` and ``size_bytes``: exactly what users get from
    ``perfkit verify`` on their own database. With ``store``, the verifications are kept there
    (:func:`perfkit.verify.store_results`): the weekly report after the fixes shows them.
    """
    from perfkit import sql as fix_sql
    from perfkit import verify
    from perfkit.errors import PerfkitError

    out = fixes.copy()
    columns = {name: [] for name in ("status", "seconds", "error", "verified", "speedup", "size_bytes")}
    rows = out.to_dict(orient="records") if "sql" in out else []
    with psycopg.connect(dsn, autocommit=True) as conn:
        existing = {row["sql"]: (conn.execute("SELECT to_regclass(%s)", (fix_sql.qualified(f.schema, f.name),))
                                 .fetchone()[0] is not None) if (f := fix_sql.finding_fix(row)) is not None
                    and f.action == "create_index" and f.name else False for row in rows}
    for row in rows:
        fix = fix_sql.finding_fix(row)
        values = dict(status="failed", seconds=0.0, error="", verified="", speedup=float("nan"), size_bytes=0)
        if fix is None or fix.action != "create_index":
            values["error"] = "not a CREATE INDEX"
        elif existing.get(row["sql"]):
            values.update(status="exists", error=f"an index named {fix.name} exists already")
        else:
            try:
                done = verify.verify(dsn, [fix], runs=runs, keep=True, allow_writes=True)[0]
                if store is not None:
                    verify.store_results([done], store=store, server="demo")
                values.update(status="applied", seconds=done.build_s, verified=done.text(), speedup=done.speedup,
                              size_bytes=done.size_bytes)
            except PerfkitError as err:
                values["error"] = db.redact_text(str(err).strip().splitlines()[0])
        for name, value in values.items():
            columns[name].append(value)
    for name, value in columns.items():
        out[name] = value
    return out


# -- the run ------------------------------------------------------------------------------------

@contextmanager
def _step(result: DemoResult, name: str, number: int, message: str):
    say(f"[{number}/{len(STEPS)}] {message}")
    t0 = time.perf_counter()
    try:
        yield
    finally:
        result.timings[name] = time.perf_counter() - t0


def _skip(result: DemoResult, name: str, reason: str) -> None:
    result.skipped[name] = reason
    say(f"  skipped {name}: {reason}")


def run_demo(options: DemoOptions | None = None, **overrides) -> DemoResult:
    """Run the whole loop; progress on stderr, the outputs in ``options.out``.

    Parameters
    ----------
    options:
        :class:`DemoOptions`; keyword arguments override its fields.

    Returns
    -------
    DemoResult
    """
    options = options or DemoOptions()
    for key, value in overrides.items():
        setattr(options, key, value)
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H%M%S")
    run_dir = Path(options.out) / f"demo-{stamp}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result = DemoResult(run_dir=run_dir)
    result.reports["run data"] = run_dir
    database = None
    with _step(result, "start database", 1, "starting a throwaway PostgreSQL" if not options.dsn else "checking the scratch database"):
        database = DemoDatabase.scratch(options.dsn, force=options.force) if options.dsn else DemoDatabase.start_sandbox()
    try:
        _run_loop(result, database, options)
    finally:
        with _step(result, "stop database", len(STEPS), "stopping the database" if not options.keep else "leaving the database running"):
            if options.keep and database.sandbox is not None:
                result.dsn = database.dsn
            version = database.sandbox.version if database.sandbox is not None else None
            database.stop(keep=options.keep, state_path=options.state_path)
    (run_dir / "demo.json").write_text(json.dumps(to_jsonable({
        "postgresql": version, "shop": result.size.__dict__ if result.size else None,
        "load": {"tool": "locust", "users": options.users, "duration_s": options.duration_s, "seed": options.seed},
        "fixes_applied": result.fixes.get("sql", pd.Series(dtype=str)).tolist(),
        "timings_s": result.timings, "skipped": result.skipped,
    }), indent=2) + "\n")
    if options.sample_dest is not None:
        t0 = time.perf_counter()
        result.sample_files = write_sample_data(run_dir, options.sample_dest)
        result.timings["sample data"] = time.perf_counter() - t0
        say(f"  wrote {len(result.sample_files)} sample files into {Path(options.sample_dest) / 'demo'}")
    return result


def _run_loop(result: DemoResult, database: DemoDatabase, options: DemoOptions) -> None:
    from perfkit.demo.app import DemoApp

    size = shop.ShopSize.scaled(options.scale)
    result.size = size
    with _step(result, "build shop", 2, f"building the shop: {size.tenants} tenants, {size.orders:,} orders, "
               "with the planted problems"):
        with database.admin_connect() as conn:
            shop.build_shop(conn, size, seed=options.seed, progress=lambda name: say(f"  {name} ..."))
            database.plant_settings(conn)
            database.create_app_role(conn)
            facts = shop.shop_facts(conn)
    engine = db.connect(database.dsn)
    try:
        with DemoApp(database.app_dsn, pool_size=max(4, options.users)) as app:
            with _step(result, "load test before", 3, f"load test: Locust, {options.users} users for {options.duration_s} s "
                       f"against {app.url}"):
                result.rounds["before"] = load_test_round("before", database, engine, app.url,
                                                          result.run_dir / "before", facts, options)
            with _step(result, "report before", 4, "weekly report on the evidence"):
                recommendations = _report_before(result, database, engine, options, facts)
            with _step(result, "apply fixes", 5, "applying the report's top index recommendations"):
                _apply(result, database, recommendations, options)
            with _step(result, "load test after", 6, "the same load test again"):
                result.rounds["after"] = load_test_round("after", database, engine, app.url,
                                                         result.run_dir / "after", facts, options)
        with _step(result, "report after", 7, "the second report: both runs compared"):
            _compare(result, database, engine, options, facts)
    finally:
        engine.dispose()


def capture_plans(engine, facts: shop.ShopFacts, folder: Path) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of each endpoint's statement, saved as JSON in ``folder``; route -> Plan.

    Runs in perfkit's read-only session, so with the database's ``work_mem`` as the app sees it.
    """
    plans = optional_module("perfkit.plans")
    if plans is None:
        return {}
    folder.mkdir(parents=True, exist_ok=True)
    captured = {}
    for route, sql, argument in shop.plan_targets(facts):
        statement = sql.replace("%s", str(int(argument)))
        with db.session(engine) as conn:
            document = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statement).scalar()
        if isinstance(document, str):
            document = json.loads(document)
        name = route_file_name(route)
        (folder / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n")
        plan = plans.parse(document, name=f"{route} ({name}.json)")
        plan.query = statement
        captured[route] = plan
    return captured


def route_file_name(route: str) -> str:
    """``/api/orders/<id>`` -> ``api_orders_id`` (for file names)."""
    return re.sub(r"[^a-z0-9]+", "_", route.lower()).strip("_")


def plan_assessment(captured: dict):
    """``perfkit.plans.assess`` of each endpoint's plan (each plan's heading is its route)."""
    from perfkit import plans

    return plans.assess(list(captured.items()))


def gather_findings(result: DemoResult, engine, round_: LoadTestRound, captured: dict, options: DemoOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The assessments of every evidence source perfkit has (the ones the CLI and the report render),
    their findings tagged with their source, and the ranked recommendations (perfkit.advice.assess)."""
    assessments = []
    loadtests = optional_module("perfkit.loadtests")
    if loadtests is not None:
        assessments.append(loadtests.assess([round_.stats_csv], slo=slo_targets()))
    else:
        _missing(result, "load-test SLO findings", "perfkit.loadtests")
    if optional_module("perfkit.plans") is not None:
        assessments.append(plan_assessment(captured))
    else:
        _missing(result, "plan findings", "perfkit.plans")
    health = optional_module("perfkit.health")
    if health is not None:
        assessments.append(health.assess(engine))
    else:
        _missing(result, "health findings", "perfkit.health")
    logs = log_assessment(result, round_)
    if logs is not None:
        assessments.append(logs)
    names = {"loadtests": "loadtest", "plans": "plans", "health": "health", "logs": "logs"}
    frames = [_tagged(a.findings, names[a.source]) for a in assessments]
    frames = [f for f in frames if not f.empty]
    findings = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["kind", "severity", "subject"])
    if "plan" in findings:  # a plan's finding names its endpoint
        findings["endpoint"] = findings["plan"]
    advice = optional_module("perfkit.advice")
    if advice is None:
        _missing(result, "recommendations", "perfkit.advice")
        return findings, pd.DataFrame()
    ranked = advice.assess(assessments, engine=engine, statements=app_statements(round_.statements))
    return findings, ranked.tables["recommendations"]


def log_assessment(result: DemoResult, round_: LoadTestRound):
    """``perfkit.logs.assess`` of the run's server log (N+1 per request comment, slow statements,
    auto_explain plans); without a server log (a database the demo does not run), an assessment of
    the N+1 found from pg_stat_statements alone."""
    nplusone = optional_module("perfkit.nplusone")
    logs = optional_module("perfkit.logs")
    if nplusone is None or logs is None:
        _missing(result, "N+1 findings", "perfkit.logs")
        return None
    files = [path for path in round_.log_files if path.suffix in (".json", ".csv")]
    if files:
        return logs.assess(files)
    from perfkit.assessment import Assessment

    return Assessment("logs", "Server log", findings=n_plus_one_from_statements(nplusone, round_),
                      notes=["no server log: N+1 from pg_stat_statements and Locust's request counts"])


def n_plus_one_from_statements(nplusone, round_: LoadTestRound) -> pd.DataFrame:
    """N+1 from pg_stat_statements, per route: each statement's first-seen text carries its route's
    comment, and Locust counted that route's requests, so calls per request are known."""
    app = app_statements(round_.statements)
    if app is None or app.empty:
        return pd.DataFrame()
    stats = pd.read_csv(round_.stats_csv)
    requests = dict(zip(stats["Name"].astype(str), stats["Request Count"], strict=True))
    routes = app["query"].map(lambda text: nplusone.request_tags(str(text)).get("route", ""))
    frames = []
    for route, group in app.groupby(routes):
        found = nplusone.from_statements(group, request_count=int(requests[route]) if route in requests else None)
        if not found.empty:
            found["route"] = route
            frames.append(found)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _tagged(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame()
    out = frame.copy()
    out["source"] = source
    return out


def _missing(result: DemoResult, what: str, module: str) -> None:
    key = f"{what}"
    if key not in result.skipped:
        result.skipped[key] = f"{module} is not in this perfkit"
        say(f"  skipped {what}: {module} is not in this perfkit")


def app_statements(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of a snapshot or diff that the shop's API ran (they carry its request comment)."""
    if frame is None or frame.empty:
        return frame
    return frame[frame["query"].astype(str).str.contains("application='shop'", regex=False)]


def slo_targets() -> dict | None:
    """The shop's SLO targets (perfkit/demo/slo.toml), or None for DESIGN.md's defaults."""
    path = Path(__file__).with_name("slo.toml")
    return str(path) if path.exists() else None


def _report_before(result: DemoResult, database: DemoDatabase, engine, options: DemoOptions, facts) -> pd.DataFrame:
    folder = result.run_dir / "before"
    result.before_plans = capture_plans(engine, facts, folder / "plans")
    findings, own = gather_findings(result, engine, result.rounds["before"], result.before_plans, options)
    result.findings = findings
    save_table(findings, folder / "findings.csv")
    recommendations = own
    report = weekly_report(result, database, options, label="before")
    if report is not None:
        proposed = report_recommendations(report)
        if proposed.empty:
            say("  the report holds no recommendation with SQL: applying perfkit.advice's ranking of the "
                "same evidence instead")
        else:
            recommendations = proposed
    save_table(recommendations, folder / "recommendations.csv")
    return recommendations


def weekly_report(result: DemoResult, database: DemoDatabase, options: DemoOptions, *, label: str):
    """``perfkit report weekly`` on the evidence so far, into ``options.out/YYYY-MM-DD[-N]/``; None when skipped.

    The first report reads the first load test; the second reads both (the notebook compares the
    last with the first), the second run's log and the plans after the fixes.
    """
    report = optional_module("perfkit.report")
    name = f"report {label}"
    if report is None:
        _missing(result, f"weekly report ({label})", "perfkit.report")
        return None
    rounds = [result.rounds[key] for key in ("before", "after") if key in result.rounds]
    latest = rounds[-1]
    plan_folder = latest.folder / "plans"
    parameters = {
        "loadtest": [str(r.stats_csv.resolve()) for r in rounds],
        "logs": [str(p.resolve()) for p in latest.log_files if p.suffix in (".json", ".csv")],
        "plans": [str(p.resolve()) for p in sorted(plan_folder.glob("*.json"))],
        "store": str((result.run_dir / "report-store").resolve()),
    }
    if slo_targets():
        parameters["slo"] = str(Path(slo_targets()).resolve())
    done = report.run_report("weekly", out=options.out, parameters=parameters, dsn=database.dsn, progress=False)
    result.reports[name] = done.folder
    if done.status != "ok":
        say(f"  the {name} failed ({done.error}); its partial notebook is in {done.folder}")
    return done


def report_recommendations(done) -> pd.DataFrame:
    """The fixes a weekly report proposes, in its order: ``summary.json``'s ``recommendations``.

    One row per recommendation that carries SQL; empty when the report holds none.
    """
    summary = getattr(done, "summary_data", None) or {}
    listed = [row for row in summary.get("recommendations") or [] if str(row.get("sql") or "").strip()]
    frame = pd.DataFrame(listed) if listed else pd.DataFrame(columns=["sql"])
    frame["source"] = "report summary.json"
    return frame.reset_index(drop=True)


def save_table(frame: pd.DataFrame, path: Path) -> Path:
    """A DataFrame as CSV, lists, dicts and fixes (perfkit.sql.Fix) in cells written as JSON."""
    plain = frame.copy() if frame is not None else pd.DataFrame()
    plain.attrs = {}
    from perfkit.output import to_jsonable

    structured = (list, dict, tuple, Fix)
    for column in plain.columns:
        if plain[column].map(lambda v: isinstance(v, structured)).any():
            plain[column] = plain[column].map(
                lambda v: json.dumps(to_jsonable(v), default=str) if isinstance(v, structured) else v)
    plain.to_csv(path, index=False)
    return path


def _apply(result: DemoResult, database: DemoDatabase, recommendations: pd.DataFrame, options: DemoOptions) -> None:
    fixes = index_fixes(recommendations, options.top)
    if fixes.empty:
        _skip(result, "apply fixes", "no index recommendation to apply")
        result.fixes = fixes
        return
    result.fixes = apply_fixes(database.admin_dsn, fixes, store=result.run_dir / "report-store")
    for row in result.fixes.itertuples():
        say(f"  {row.status} in {row.seconds:.1f} s: {row.sql}" + (f" ({row.error})" if row.error else "")
            + (f"; {row.verified}" if row.verified else ""))
    save_table(result.fixes, result.run_dir / "fixes.csv")


def statement_changes(before: pd.DataFrame, after: pd.DataFrame) -> pd.DataFrame:
    """Per statement of the app (by queryid): calls and mean/total time in each load test, and the change."""
    columns = ["calls", "mean_exec_ms", "total_exec_ms", "temp_blks_written", "shared_blks_hit", "shared_blks_read"]
    a = app_statements(before).set_index("queryid")
    b = app_statements(after).set_index("queryid")
    joined = a[columns].add_suffix("_before").join(b[columns].add_suffix("_after"), how="outer")
    query = a["query"].combine_first(b["query"]).map(statements.strip_leading_comments)
    joined["query"] = query.map(lambda q: re.sub(r"\s*/\*.*?\*/\s*$", "", " ".join(str(q).split())))
    joined = joined.rename(columns={"mean_exec_ms_before": "mean_ms_before", "mean_exec_ms_after": "mean_ms_after",
                                    "total_exec_ms_before": "total_ms_before", "total_exec_ms_after": "total_ms_after"})
    joined["mean_change"] = joined["mean_ms_after"] / joined["mean_ms_before"] - 1
    joined = joined.sort_values("total_ms_before", ascending=False, na_position="last").reset_index()
    return joined


def plan_changes(before: dict, after: dict) -> pd.DataFrame:
    """Per endpoint: execution time, top node and buffers of its statement's plan before and after (perfkit.plans)."""
    plans = optional_module("perfkit.plans")
    rows = []
    if plans is None:
        return pd.DataFrame()
    for route, plan_before in before.items():
        plan_after = after.get(route)
        if plan_after is None:
            continue
        change = plans.compare(plan_before, plan_after)
        rows.append({
            "endpoint": route,
            "execution_ms_before": plan_before.execution_ms,
            "execution_ms_after": plan_after.execution_ms,
            "nodes_before": " > ".join(plan_before.nodes["label"].head(4)),
            "nodes_after": " > ".join(plan_after.nodes["label"].head(4)),
            "temp_written_before": plan_before.nodes["temp_written"].fillna(0).max(),
            "temp_written_after": plan_after.nodes["temp_written"].fillna(0).max(),
            "summary": change.summary,
        })
    return pd.DataFrame(rows)


def p95_table(before: LoadTestRound, after: LoadTestRound) -> pd.DataFrame:
    """p95 (and requests) per endpoint in both load tests, from ``perfkit.loadtests.compare``."""
    loadtests = optional_module("perfkit.loadtests")
    if loadtests is None:
        return pd.DataFrame()
    table = loadtests.compare(loadtests.read(before.stats_csv), loadtests.read(after.stats_csv)).table
    out = table.rename(columns={"requests_a": "requests_before", "requests_b": "requests_after",
                                "p95_a": "p95_before_ms", "p95_b": "p95_after_ms", "p50_a": "p50_before_ms",
                                "p50_b": "p50_after_ms", "p99_a": "p99_before_ms", "p99_b": "p99_after_ms",
                                "rps_a": "rps_before", "rps_b": "rps_after"})
    keep = ["endpoint", "requests_before", "requests_after", "p50_before_ms", "p50_after_ms", "p95_before_ms",
            "p95_after_ms", "p95_change", "p99_before_ms", "p99_after_ms", "rps_before", "rps_after"]
    return out[[c for c in keep if c in out.columns]]


def route_times(before: LoadTestRound, after: LoadTestRound) -> pd.DataFrame:
    """Database time and statements per request of each route in both load tests
    (``perfkit.loadtests.route_db_time`` of each run over its own snapshots)."""
    loadtests = optional_module("perfkit.loadtests")
    if loadtests is None or not hasattr(loadtests, "route_db_time"):
        return pd.DataFrame()
    tables = {}
    for label, round_ in (("before", before), ("after", after)):
        table = loadtests.route_db_time(loadtests.read(round_.stats_csv), round_.statements)
        tables[label] = table.set_index("endpoint")[["requests", "db_ms_per_request", "statements_per_request",
                                                     "db_share", "attributed_by"]]
    joined = tables["before"].add_suffix("_before").join(tables["after"].add_suffix("_after"), how="outer")
    joined["attributed_by"] = joined["attributed_by_after"].fillna(joined["attributed_by_before"])
    joined = joined.drop(columns=["attributed_by_before", "attributed_by_after"]).reset_index()
    order = ["endpoint", "db_ms_per_request_before", "db_ms_per_request_after", "statements_per_request_before",
             "statements_per_request_after", "db_share_before", "db_share_after", "requests_before", "requests_after",
             "attributed_by"]
    return joined[order]


def _compare(result: DemoResult, database: DemoDatabase, engine, options: DemoOptions, facts) -> None:
    folder = result.run_dir / "comparison"
    folder.mkdir(parents=True, exist_ok=True)
    before, after = result.rounds["before"], result.rounds["after"]
    result.after_plans = capture_plans(engine, facts, result.run_dir / "after" / "plans")
    result.statement_changes = statement_changes(before.statements, after.statements)
    save_table(result.statement_changes, folder / "statements.csv")
    result.plan_changes = plan_changes(result.before_plans, result.after_plans)
    if optional_module("perfkit.plans") is None:
        _missing(result, "plans before/after", "perfkit.plans")
    save_table(result.plan_changes, folder / "plans.csv")
    result.p95 = p95_table(before, after)
    if result.p95.empty:
        _missing(result, "p95 before/after", "perfkit.loadtests")
    else:
        save_table(result.p95, folder / "p95.csv")
        result.chart = folder / "p95.png"
        size = result.size or shop.ShopSize()
        title = (f"perfkit demo: p95 per endpoint before and after the report's fixes\n"
                 f"{size.orders:,} orders, {size.tenants} tenants; Locust, {options.users} users x {options.duration_s} s per run")
        from perfkit.charts.demo import p95_before_after

        p95_before_after(result.p95, title=title).savefig(result.chart)
    result.routes = route_times(before, after)
    if not result.routes.empty:
        save_table(result.routes, folder / "routes.csv")
    weekly_report(result, database, options, label="after")
    (folder / "summary.json").write_text(json.dumps(to_jsonable({
        "p95": result.p95, "routes": result.routes, "fixes": result.fixes, "plans": result.plan_changes,
        "statements": result.statement_changes.head(20), "timings_s": result.timings,
    }), indent=2) + "\n")
    result.reports["comparison"] = folder


# -- sample data --------------------------------------------------------------------------------

SAMPLE_LOG_LINES = 1500


def write_sample_data(run_dir: str | Path, dest: str | Path = "data/sample", *, log_lines: int = SAMPLE_LOG_LINES) -> list[Path]:
    """Copy a demo run's real outputs into ``dest/demo/`` (the sample data the notebooks can read).

    Writes, all under ``dest/demo/``: ``loadtests/locust-{before,after}-fix_{stats,stats_history,
    failures,exceptions}.csv`` (Locust's own CSV files), ``logs/demo-api-before-fix.json`` (the
    server's jsonlog of the first load test, its first ``log_lines`` lines), ``plans/<endpoint>-
    {before,after}-fix.json`` (EXPLAIN ANALYZE JSON of each endpoint's statement) with
    ``plans/<endpoint>.sql``, ``store/server=demo/date=*/*.parquet`` (the four statement
    snapshots), ``findings/findings.csv`` and ``findings/recommendations.csv`` (before the fix),
    ``comparison/{p95,statements,plans}.csv`` and ``comparison/p95.png``, ``origin.json`` and
    ``README.md`` (what made each file). Files of an earlier run in ``dest/demo/`` are replaced.

    Returns
    -------
    list of Path
        The files written.
    """
    run_dir, dest = Path(run_dir), Path(dest) / "demo"
    if not (run_dir / "before" / "locust-before_stats.csv").exists():
        raise BadInputError(f"{run_dir} is not a finished demo run (no before/locust-before_stats.csv)")
    if dest.exists():
        shutil.rmtree(dest)
    written: list[Path] = []

    def copy(src: Path, target: Path) -> None:
        if src.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            written.append(target)

    for label in ("before", "after"):
        for kind in ("stats", "stats_history", "failures", "exceptions"):
            copy(run_dir / label / f"locust-{label}_{kind}.csv", dest / "loadtests" / f"locust-{label}-fix_{kind}.csv")
        for plan in sorted((run_dir / label / "plans").glob("*.json")):
            copy(plan, dest / "plans" / f"{plan.stem}-{label}-fix.json")
        for snapshot in sorted((run_dir / label / "snapshots").rglob("*.parquet")):
            copy(snapshot, dest / "store" / snapshot.relative_to(run_dir / label / "snapshots"))
    logs = sorted((run_dir / "before" / "logs").glob("*.json"))
    if logs:
        target = dest / "logs" / "demo-api-before-fix.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        with logs[0].open(encoding="utf-8", errors="replace") as src, target.open("w", encoding="utf-8") as out:
            for number, line in enumerate(src):
                if number >= log_lines:
                    break
                out.write(line)
        written.append(target)
    for route, sql, _argument in shop.plan_targets(shop.ShopFacts([1], [1.0], 1)):
        target = dest / "plans" / f"{route_file_name(route)}.sql"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(sql.replace("%s", "$1") + ";\n")
        written.append(target)
    copy(run_dir / "before" / "findings.csv", dest / "findings" / "findings.csv")
    copy(run_dir / "before" / "recommendations.csv", dest / "findings" / "recommendations.csv")
    for name in ("p95.csv", "statements.csv", "plans.csv", "p95.png"):
        copy(run_dir / "comparison" / name, dest / "comparison" / name)
    origin = json.loads((run_dir / "demo.json").read_text()) if (run_dir / "demo.json").exists() else {}
    (dest / "origin.json").write_text(json.dumps({**origin, "run_dir": run_dir.name}, indent=2) + "\n")
    written.append(dest / "origin.json")
    (dest / "README.md").write_text(SAMPLE_README.format(log_lines=log_lines, run=run_dir.name))
    written.append(dest / "README.md")
    return written


SAMPLE_README = """# Sample data from `perfkit demo`

Real outputs of one `perfkit demo` run ({run}), copied by `perfkit.demo.write_sample_data`
(`perfkit demo --sample-data`); nothing here is written by hand. `origin.json` holds the shop's
size, the load and the PostgreSQL version of the run.

| file | origin |
|---|---|
| `loadtests/locust-before-fix_*.csv` | Locust `--headless --csv` against the demo API (perfkit/demo/app.py), before the fixes |
| `loadtests/locust-after-fix_*.csv` | the same load test after the report's index recommendations were applied |
| `logs/demo-api-before-fix.json` | the server's jsonlog during the first load test (the API's role logs every statement; auto_explain above 50 ms), first {log_lines} lines |
| `plans/<endpoint>-before-fix.json`, `plans/<endpoint>-after-fix.json` | `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)` of the statement behind each endpoint (`plans/<endpoint>.sql`, $1 = the largest tenant or a mid order id) |
| `store/server=demo/date=*/*.parquet` | pg_stat_statements snapshots before and after each load test (perfkit.store layout) |
| `findings/findings.csv` | findings of the first run: load-test SLOs, plans, health, N+1 from the log |
| `findings/recommendations.csv` | `perfkit.advice.recommend` on them: the ranked fixes the demo applied from |
| `comparison/p95.csv`, `comparison/statements.csv`, `comparison/plans.csv`, `comparison/p95.png` | both runs compared: p95 per endpoint (perfkit.loadtests.compare), statements (pg_stat_statements), plans (perfkit.plans.compare) |
"""
