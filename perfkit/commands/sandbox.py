"""``perfkit sandbox start|stop|status``: a throwaway PostgreSQL with pg_stat_statements.

``start`` prints the DSN; the cluster runs until ``stop``, which removes it - only a cluster perfkit
started (the marker and token of ``start``, PG_VERSION, its own postgres), else it refuses.
"""

from __future__ import annotations

from pathlib import Path

from perfkit.commands import add_json_option


def register(subparsers) -> None:
    parser = subparsers.add_parser("sandbox", help="a throwaway PostgreSQL; start prints its DSN", description=__doc__)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--dir", default=None, metavar="DIR", help="cluster folder for start (default: a new temporary folder)")
    parser.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 for start (default: a free one)")
    parser.add_argument("--state", default=None, metavar="FILE",
                        help="where start records the running sandbox (default: $PERFKIT_SANDBOX_DIR/state.json "
                             "or ~/.cache/perfkit/sandbox/state.json)")
    add_json_option(parser)
    parser.set_defaults(func=run)


def _state_path(args) -> Path:
    from perfkit.sandbox import DEFAULT_STATE_DIR

    return Path(args.state) if args.state else DEFAULT_STATE_DIR / "state.json"


def run(args) -> int:
    from perfkit.sandbox import state_lock

    state_path = _state_path(args)
    if args.action == "status":
        return _status(args, state_path)
    with state_lock(state_path):  # a second start (or stop) on this state file refuses
        return _start(args, state_path) if args.action == "start" else _stop(args, state_path)


def _start(args, state_path: Path) -> int:
    from perfkit.errors import SandboxError
    from perfkit.output import emit_json, say
    from perfkit.sandbox import Sandbox, SandboxState

    state = SandboxState.load(state_path)
    if state is not None and Sandbox.attach(state).is_accepting():
        raise SandboxError(f"a sandbox is already running at {state.dsn} (state in {state_path}): stop it first")
    say("perfkit: starting a throwaway PostgreSQL ...")
    sandbox = Sandbox(args.dir, port=args.port).start()
    sandbox.state().save(state_path)
    if args.json:
        emit_json({"dsn": sandbox.dsn, "directory": str(sandbox.directory), "port": sandbox.port,
                   "version": sandbox.version, "hypopg": sandbox.hypopg, "state": str(state_path)})
    else:
        print(sandbox.dsn)
        say(f"perfkit: PostgreSQL {sandbox.version} in {sandbox.directory}; logs in {sandbox.log_dir}; "
            f"stop with `perfkit sandbox stop`")
    return 0


def _status(args, state_path: Path) -> int:
    from perfkit.output import emit_json
    from perfkit.sandbox import Sandbox, SandboxState

    state = SandboxState.load(state_path)
    running = state is not None and Sandbox.attach(state).is_accepting()
    if args.json:
        emit_json({"running": running, "dsn": state.dsn if state else None,
                   "directory": state.directory if state else None})
    elif running:
        print(f"running: {state.dsn} ({state.directory})")
    else:
        print("not running" + (f" (stale state in {state_path})" if state else ""))
    return 0 if running else 3


def _stop(args, state_path: Path) -> int:
    """Stop and remove only the cluster perfkit started (Sandbox.check_ours); else refuse, touching nothing."""
    from perfkit.errors import SandboxError
    from perfkit.output import emit_json
    from perfkit.sandbox import Sandbox, SandboxState

    state = SandboxState.load(state_path)
    if state is None:
        raise SandboxError(f"no sandbox recorded in {state_path} (missing, unreadable or not written by "
                           "`perfkit sandbox start`): nothing to stop")
    gone = not Path(state.directory).exists()
    Sandbox.attach(state).stop()
    state_path.unlink(missing_ok=True)
    if args.json:
        emit_json({"stopped": not gone, "directory": state.directory})
    elif gone:
        print(f"no sandbox left in {state.directory}: removed the stale state file {state_path}")
    else:
        print(f"stopped and removed {state.directory}")
    return 0
