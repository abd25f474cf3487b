"""A throwaway PostgreSQL cluster with pg_stat_statements, auto_explain and structured logs.

``with Sandbox() as sb: sb.dsn`` starts one on 127.0.0.1 and always removes it afterwards.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import hmac
import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg

from perfkit.errors import SandboxError
from perfkit.fileio import write_atomic

SERVER_PROGRAMS = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = (
    "install the PostgreSQL server and contrib packages (Debian/Ubuntu: "
    "apt-get install postgresql postgresql-contrib postgresql-15-hypopg, or run scripts/setup.sh "
    "as root), or set PERFKIT_PG_BINDIR to the folder holding initdb"
)
SUPERUSER = "postgres"
DEFAULT_DATABASE = "perfkit"
# written at start in the cluster folder, holding the token also kept in the state file: stop
# touches only a folder that has it
MARKER_NAME = ".perfkit-sandbox"
DEFAULT_STATE_DIR = Path(os.environ.get("PERFKIT_SANDBOX_DIR", Path.home() / ".cache" / "perfkit" / "sandbox"))


def find_bindir() -> Path:
    """The folder with initdb, pg_ctl and postgres.

    Looks at ``$PERFKIT_PG_BINDIR``, ``pg_config --bindir``, ``/usr/lib/postgresql/*/bin``
    (newest first), then ``PATH``.
    """
    candidates: list[Path] = []
    if os.environ.get("PERFKIT_PG_BINDIR"):
        candidates.append(Path(os.environ["PERFKIT_PG_BINDIR"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))

    def version_key(path: str) -> tuple:
        match = re.search(r"/postgresql/(\d+)(?:\.(\d+))?/", path)
        return (int(match.group(1)), int(match.group(2) or 0)) if match else (0, 0)

    candidates.extend(Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version_key, reverse=True))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for directory in candidates:
        if all((directory / program).is_file() and os.access(directory / program, os.X_OK) for program in SERVER_PROGRAMS):
            return directory
    looked = ", ".join(str(c) for c in candidates) or "pg_config, /usr/lib/postgresql/*/bin, PATH"
    raise SandboxError(f"PostgreSQL server binaries not found (looked in: {looked}): {INSTALL_HINT}")


def server_version(bindir: Path) -> int:
    """The major version of the server in ``bindir`` (e.g. 15)."""
    out = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    match = re.search(r"(\d+)(?:\.\d+)?", out.stdout)
    if not match:
        raise SandboxError(f"cannot read the version of {bindir / 'postgres'}: {out.stdout.strip() or out.stderr.strip()}")
    return int(match.group(1))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def default_settings(version: int) -> dict[str, str]:
    """postgresql.conf settings of a sandbox: evidence on, durability off (it is throwaway)."""
    settings = {
        "shared_preload_libraries": "'pg_stat_statements,auto_explain'",
        "pg_stat_statements.track": "all",
        "pg_stat_statements.max": "10000",
        "pg_stat_statements.track_utility": "on",
        "track_io_timing": "on",
        "track_functions": "all",
        "logging_collector": "on",
        "log_directory": "'log'",
        "log_filename": "'postgresql-%Y-%m-%d_%H%M%S.log'",
        "log_destination": "'jsonlog'" if version >= 15 else "'csvlog'",
        "log_line_prefix": "'%m [%p] '",
        "auto_explain.log_min_duration": "-1",
        "auto_explain.log_analyze": "on",
        "auto_explain.log_buffers": "on",
        "auto_explain.log_format": "'json'",
        "max_connections": "100",
        "shared_buffers": "128MB",
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_wal_size": "1GB",
    }
    if version >= 14:
        settings["compute_query_id"] = "on"
    return settings


@dataclass
class SandboxState:
    """What ``perfkit sandbox start`` leaves behind for ``status`` and ``stop``."""

    directory: str
    port: int
    dsn: str
    version: int
    owned_directory: bool
    token: str = ""

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(self.__dict__, indent=2))
        os.chmod(path, 0o600)  # it holds the token of the cluster's marker

    @classmethod
    def load(cls, path: Path) -> SandboxState | None:
        """The recorded state, or None when the file is missing, unreadable or not what ``start`` writes."""
        try:
            data = json.loads(path.read_text())
            state = cls(**data)
        except (OSError, ValueError, TypeError, RecursionError):
            return None
        types = {"directory": str, "port": int, "dsn": str, "version": int, "owned_directory": bool, "token": str}
        if not all(isinstance(getattr(state, name), kind) for name, kind in types.items()) \
                or not state.directory or "\0" in state.directory:
            return None
        return state


class Sandbox:
    """A throwaway PostgreSQL cluster.

    Parameters
    ----------
    directory:
        Where the cluster lives; a new temporary folder when None. A given folder must be
        empty or absent; it is removed on stop unless ``keep_directory``.
    port:
        TCP port on 127.0.0.1; a free one when None.
    database:
        The database created for the caller, with pg_stat_statements (and hypopg when the
        server has it).
    settings:
        Extra postgresql.conf settings (values as written in the file, e.g. ``"'json'"``),
        overriding the defaults.

    Examples
    --------
    >>> with Sandbox() as sb:                       # doctest: +SKIP
    ...     engine = perfkit.db.connect(sb.dsn)
    """

    def __init__(
        self,
        directory: str | Path | None = None,
        *,
        port: int | None = None,
        database: str = DEFAULT_DATABASE,
        settings: Mapping[str, str] | None = None,
        keep_directory: bool = False,
        bindir: str | Path | None = None,
    ):
        self.bindir = Path(bindir) if bindir else find_bindir()
        self.version = server_version(self.bindir)
        self.requested_directory = Path(directory) if directory else None
        self.port = port
        self._port_given = port is not None
        self.database = database
        self.settings = {**default_settings(self.version), **dict(settings or {})}
        self.keep_directory = keep_directory
        self.directory: Path | None = None
        self.running = False
        self._owned = False
        self._attached = False
        self.token = ""
        self.hypopg = False

    # -- paths -----------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self._require_dir() / "data"

    @property
    def socket_dir(self) -> Path:
        return self._require_dir() / "socket"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "log"

    @property
    def server_log(self) -> Path:
        """pg_ctl's log: startup failures land here."""
        return self._require_dir() / "server.log"

    def _require_dir(self) -> Path:
        if self.directory is None:
            raise SandboxError("the sandbox has not been started")
        return self.directory

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/perfkit`` (trust auth for the superuser, loopback only)."""
        return self.dsn_for(self.database)

    def dsn_for(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user}{secret}@127.0.0.1:{self.port}/{database}"

    def log_files(self) -> list[Path]:
        """The server's csv/json/stderr log files, oldest first."""
        if self.directory is None or not self.log_dir.exists():
            return []
        return sorted(self.log_dir.iterdir(), key=lambda p: p.stat().st_mtime)

    # -- running as the postgres system user when root -------------------------------------
    def _as_server_user(self, argv: list[str]) -> list[str]:
        if os.geteuid() != 0:
            return argv
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise SandboxError(
                "running as root, and there is no 'postgres' system user to run the server as "
                "(PostgreSQL refuses to run as root): create one (useradd --system postgres) or run as another user"
            ) from None
        runuser = shutil.which("runuser") or shutil.which("su")
        if runuser and runuser.endswith("runuser"):
            return [runuser, "-u", "postgres", "--", *argv]
        if runuser:
            return [runuser, "postgres", "-s", "/bin/sh", "-c", " ".join(_shell_quote(a) for a in argv)]
        raise SandboxError("running as root, and neither runuser nor su is available to start the server as 'postgres'")

    def _run(self, argv: list[str], what: str, timeout: float = 120) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(self._as_server_user(argv), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"{what} did not finish within {timeout:.0f} s") from None
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()
            tail = detail[-1] if detail else f"exit code {result.returncode}"
            raise SandboxError(f"{what} failed: {tail}")
        return result

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """initdb, configure, start the server and create the database; returns self."""
        if self.running:
            return self
        self._make_directory()
        try:
            self._initdb()
            self._configure()
            self._start_server()
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def _make_directory(self) -> None:
        if self.requested_directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="perfkit-pg-"))
            self._owned = True
        else:
            path = self.requested_directory.resolve()
            if path.exists() and any(path.iterdir()):
                raise SandboxError(f"{path} is not empty: give an empty or new folder for the sandbox")
            self._owned = not path.exists()
            path.mkdir(parents=True, exist_ok=True)
            self.directory = path
        self.token = secrets.token_hex(16)
        marker = os.open(self.directory / MARKER_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(marker, "w") as handle:
            handle.write(self.token + "\n")
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres") if _has_user("postgres") else None
            if pw is not None:
                for path in (self.directory, self.socket_dir):
                    os.chown(path, pw.pw_uid, pw.pw_gid)
                # the server user must be able to reach the folder
                parent = self.directory.parent
                if not os.access(parent, os.X_OK) or (parent.stat().st_mode & 0o001) == 0:
                    raise SandboxError(
                        f"{parent} is not reachable by the 'postgres' system user; "
                        "give a sandbox folder under a world-readable path such as /tmp"
                    )
        os.chmod(self.directory, 0o700 if os.geteuid() != 0 else 0o755)

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D", str(self.data_dir),
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E", "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            "initdb",
        )

    def _configure(self) -> None:
        port = self.port or free_port()
        self.port = port
        lines = [
            "# perfkit sandbox",
            "listen_addresses = '127.0.0.1'",
            f"port = {port}",
            f"unix_socket_directories = '{self.socket_dir}'",
        ]
        lines += [f"{name} = {value}" for name, value in self.settings.items()]
        conf = self.data_dir / "postgresql.auto.conf"
        hba = self.data_dir / "pg_hba.conf"
        # the superuser connects over loopback without a password; every other role needs one
        hba_text = (
            "local all all trust\n"
            f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        self._write_as_server_user(conf, "\n".join(lines) + "\n")
        self._write_as_server_user(hba, hba_text)

    def _write_as_server_user(self, path: Path, text: str) -> None:
        path.write_text(text)
        if os.geteuid() == 0 and _has_user("postgres"):
            pw = pwd.getpwnam("postgres")
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def _start_server(self) -> None:
        for attempt in range(3):
            try:
                self._run(
                    [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-l", str(self.server_log), "-w", "-t", "60", "start"],
                    "starting the server",
                )
                self.running = True
                return
            except SandboxError as err:
                log = self._server_log_tail()
                if ("could not bind" in log or "already in use" in log) and attempt < 2 and not self._port_given:
                    self.port = None  # another process took the free port between probe and start
                    self._configure()
                    continue
                raise SandboxError(f"{err}; server log: {log or 'empty'}") from None

    def _server_log_tail(self) -> str:
        try:
            lines = [line for line in self.server_log.read_text(errors="replace").splitlines() if line.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-3:])

    def _create_database(self) -> None:
        admin = self.dsn_for("postgres")
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{self.database}"')
        with psycopg.connect(self.dsn, autocommit=True, connect_timeout=10) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'hypopg'").fetchone()
            if available:
                conn.execute("CREATE EXTENSION IF NOT EXISTS hypopg")
                self.hypopg = True

    def admin_connect(self, database: str | None = None, **kwargs) -> psycopg.Connection:
        """A read-write superuser psycopg connection (for building test schemas and workloads)."""
        kwargs.setdefault("autocommit", True)
        return psycopg.connect(self.dsn_for(database or self.database), **kwargs)

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove the folder; safe to call twice.

        A sandbox attached from a state file is first checked to be the cluster perfkit started
        (:meth:`check_ours`); otherwise nothing is signalled or removed.
        """
        if self._attached and self.directory is not None and self.directory.exists():
            self.check_ours()
        errors = []
        if self.directory is not None and (self.data_dir / "postmaster.pid").exists():
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop"], "stopping the server")
            except SandboxError as err:
                errors.append(str(err))
                self._kill_postmaster()
        self.running = False
        if self.directory is not None and self.directory.exists() and not self.keep_directory:
            if self._owned:
                shutil.rmtree(self.directory, ignore_errors=True)
            else:
                for child in self.directory.iterdir():
                    shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        if errors:
            raise SandboxError("; ".join(errors))

    def check_ours(self) -> None:
        """Refuse (SandboxError) unless the folder is a cluster this perfkit started.

        It must hold the start marker with the token of the state file, ``data/PG_VERSION``,
        and when ``postmaster.pid`` names a live process, that process must be a postgres
        whose data directory is this folder's ``data``.
        """
        folder = self._require_dir()
        try:
            token = (folder / MARKER_NAME).read_text().strip()
        except OSError:
            token = ""
        if not self.token or not token or not hmac.compare_digest(token, self.token):
            raise SandboxError(f"{folder} is not a sandbox perfkit started (no {MARKER_NAME} with the token of "
                               "the state file): refusing to stop or remove anything")
        if not (self.data_dir / "PG_VERSION").is_file():
            raise SandboxError(f"{self.data_dir} holds no PG_VERSION, so it is not a PostgreSQL cluster: "
                               "refusing to stop or remove anything")
        pid = self._pid_file_pid()
        if pid is not None and _alive(pid) and not _is_postgres_of(pid, self.data_dir):
            raise SandboxError(f"{self.data_dir / 'postmaster.pid'} names process {pid}, which is not this "
                               "sandbox's postgres: refusing to signal it or remove anything")

    def _pid_file_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _kill_postmaster(self) -> None:
        pid = self._pid_file_pid()
        if pid is not None and pid > 1 and _is_postgres_of(pid, self.data_dir):
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
                time.sleep(0.5)

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def state(self) -> SandboxState:
        return SandboxState(str(self.directory), int(self.port or 0), self.dsn, self.version, self._owned, self.token)

    @classmethod
    def attach(cls, state: SandboxState) -> Sandbox:
        """A Sandbox object for a cluster started earlier (by ``perfkit sandbox start``)."""
        sandbox = cls(port=state.port)
        sandbox.directory = Path(state.directory)
        sandbox.version = state.version
        sandbox._owned = state.owned_directory
        sandbox._attached = True
        sandbox.token = state.token
        sandbox.running = (sandbox.data_dir / "postmaster.pid").exists()
        return sandbox

    def is_accepting(self) -> bool:
        try:
            with psycopg.connect(self.dsn, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.Error:
            return False


@contextlib.contextmanager
def state_lock(state_path: Path):
    """Hold an exclusive lock beside the state file (``state.json.lock``) or refuse at once.

    Two ``perfkit sandbox start`` (or a start and a stop) on one state file never run together:
    the second gets a one-line SandboxError. The lock goes with the process, also when killed.
    """
    lock_path = state_path.with_name(state_path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SandboxError(f"another perfkit sandbox start or stop is using {state_path}: "
                               "wait for it, or give another --state") from None
        yield
    finally:
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postgres_of(pid: int, data_dir: Path) -> bool:
    """Whether process ``pid`` is a postgres (postmaster) run with ``-D data_dir``."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    argv = [a.decode(errors="replace") for a in argv if a]
    if not argv or os.path.basename(argv[0]) not in ("postgres", "postmaster"):
        return False
    given = None
    for index, arg in enumerate(argv[1:], start=1):
        if arg == "-D" and index + 1 < len(argv):
            given = argv[index + 1]
        elif arg.startswith("-D") and len(arg) > 2:
            given = arg[2:]
    return given is not None and os.path.realpath(given) == os.path.realpath(data_dir)


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"
