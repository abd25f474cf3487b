"""The ``perfkit`` command line: one subcommand per module in ``perfkit.commands``.

Every PerfkitError becomes its one-line message on stderr and its exit code (EXIT_CODES). SIGTERM
and SIGHUP stop a command like SIGINT (Ctrl-C) does: ``perfkit report`` still writes its partial report.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys

from perfkit import __version__
from perfkit.errors import PerfkitError

# Each name is a module in perfkit/commands with a ``register(subparsers)`` function.
COMMANDS = (
    "snapshot",
    "store",
    "top",
    "diff",
    "explain",
    "plan",
    "loadtest",
    "budgets",
    "health",
    "logs",
    "sandbox",
    "demo",
    "report",
    "notebooks",
    "verify",
)


EXIT_CODES = """exit codes:
  0   ok
  1   a gate failed: loadtest --ci breached a critical SLO, or a finding at or above --fail-on
      (health, diff, logs, plan)
  2   bad input or usage (an option, a file, a DSN)
  3   the environment: server unreachable, authentication, a missing extension or privilege,
      an output that cannot be written
  4   a report run failed part-way (the partial report is written)
  70  an internal error (a bug): the scrubbed traceback is saved to a file, its path printed
  128+N  stopped by signal N (130: Ctrl-C)
"""


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, but a bad option is one line on stderr (and exit code 2), not the usage block;
    its help formatter measures the terminal without importing shutil (:func:`_sized`)."""

    def __init__(self, *args, formatter_class=argparse.HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=_sized(formatter_class), **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_SIZED: dict = {}


def _sized(formatter_class):
    """``formatter_class`` as wide as ``shutil.get_terminal_size().columns - 2`` (argparse's own
    default), measured by :func:`perfkit.output.terminal_columns`: argparse builds a formatter for
    every option it adds, and importing shutil for it is a tenth of ``perfkit plan``'s start-up."""
    if not (isinstance(formatter_class, type) and issubclass(formatter_class, argparse.HelpFormatter)):
        return formatter_class
    if formatter_class not in _SIZED:

        def __init__(self, prog, indent_increment=2, max_help_position=24, width=None):
            if width is None:
                from perfkit.output import terminal_columns

                width = terminal_columns(80) - 2
            formatter_class.__init__(self, prog, indent_increment, max_help_position, width)

        _SIZED[formatter_class] = type(formatter_class.__name__, (formatter_class,), {"__init__": __init__})
    return _SIZED[formatter_class]


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``perfkit`` parser. With ``argv`` naming a command first (``plan FILE``), only that
    command's module is imported and registered: it parses the same, and ``perfkit plan`` does not
    import what the other commands need at start-up. Otherwise (``--help``, a misspelt command)
    every command is registered."""
    parser = OneLineErrorParser(
        prog="perfkit",
        description="Performance investigation workbook for PostgreSQL-backed web applications.",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"perfkit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    wanted = [argv[0]] if argv and argv[0] in COMMANDS else COMMANDS
    for name in wanted:
        importlib.import_module(f"perfkit.commands.{name}").register(subparsers)
    return parser


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP (what systemd, ``timeout`` and a closed terminal send), raised like Ctrl-C."""

    def __init__(self, number: int):
        self.number = number
        self.signal_name = signal.Signals(number).name
        super().__init__(f"stopped by {self.signal_name}")


def _raise_stopped(number, _frame):
    raise Stopped(number)


@contextlib.contextmanager
def stop_signals_raise():
    """SIGTERM and SIGHUP raise Stopped (a KeyboardInterrupt) while a command runs; the old handlers after."""
    threading = sys.modules.get("threading")  # not imported: no thread was started with it
    if threading is not None and threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {number: signal.signal(number, _raise_stopped) for number in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for number, handler in saved.items():
            signal.signal(number, handler)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)  # argparse exits 2 on a bad option
    try:
        with stop_signals_raise(), _markdown_if_asked(args):
            code = int(args.func(args) or 0)
            _flush_stdout()
            return code
    except PerfkitError as err:
        print(f"perfkit: error: {err}", file=sys.stderr)
        return err.exit_code
    except Stopped as stopped:
        print(f"perfkit: stopped by {stopped.signal_name}", file=sys.stderr)
        return 128 + stopped.number
    except KeyboardInterrupt:
        print("perfkit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `perfkit ... | head`: the reader left; not an error worth a traceback
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if not _out_of_space(err):
            return _bug()
        from perfkit.output import write_failed

        failed = write_failed(err)  # also points stdout at /dev/null: nothing fails again at exit
        if not getattr(err, "perfkit_stdout", False):
            failed = type(failed)(f"cannot write the output ({err.strerror or err})")
        print(f"perfkit: error: {failed}", file=sys.stderr)
        return failed.exit_code
    except Exception:  # a bug: show it, but never a password
        return _bug()


def _markdown_if_asked(args):
    """``--format markdown``: the command's output as Markdown (perfkit.output, which imports pandas,
    loaded only then)."""
    from perfkit.commands import output_format

    if output_format(args) != "markdown":
        return contextlib.nullcontext()
    from perfkit.output import markdown_output

    return markdown_output()


INTERNAL_ERROR = 70  # EX_SOFTWARE: a bug in perfkit, not the input or the environment


def _bug() -> int:
    """A bug: the scrubbed traceback goes to a file (0600, never a password), its path and the
    exception's one line to stderr; exit 70."""
    import os
    import tempfile
    import traceback

    from perfkit.secrets import redact_text

    text = redact_text(traceback.format_exc())
    last = redact_text(" ".join(str(sys.exc_info()[1]).split()))[:300]
    name = type(sys.exc_info()[1]).__name__
    try:
        folder = os.environ.get("PERFKIT_CRASH_DIR") or tempfile.gettempdir()
        handle, path = tempfile.mkstemp(prefix="perfkit-crash-", suffix=".txt", dir=folder)
        with os.fdopen(handle, "w") as out:
            out.write(text)
        where = f"the traceback is in {path}"
    except OSError:  # nowhere to write it: show it instead
        print(text, file=sys.stderr, end="")
        where = "the traceback is above"
    print(f"perfkit: internal error (a bug in perfkit): {name}: {last}; {where}; please report it", file=sys.stderr)
    return INTERNAL_ERROR


def _flush_stdout() -> None:
    """Flush what the command printed, so that a full disk is reported here, not at exit."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as err:
        err.perfkit_stdout = True
        raise


def _out_of_space(err: OSError) -> bool:
    """A full disk (or /dev/full, a quota) while writing: an environment error, not a bug."""
    import errno

    return getattr(err, "perfkit_stdout", False) or err.errno in (errno.ENOSPC, errno.EDQUOT)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
