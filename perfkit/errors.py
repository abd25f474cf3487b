"""Errors perfkit raises: each message is the one line a user needs to act on.

The command line turns every PerfkitError into its message on stderr and its ``exit_code``: 2 for
bad input or usage, 3 for the environment (the server unreachable, authentication, a missing
extension or privilege, an output that cannot be written), 4 for a report that failed part-way.
"""

from __future__ import annotations

from pathlib import Path


class PerfkitError(Exception):
    """Base of every error perfkit raises on purpose; ``str(err)`` is one line."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class BadInputError(PerfkitError):
    """An input file or option perfkit cannot use.

    Parameters
    ----------
    message:
        What is wrong, in the user's words.
    path:
        The file, when the input is a file; it prefixes the message.
    line:
        The 1-based line number inside ``path``, when known.
    """

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}, line {line}"
            where += ": "
        super().__init__(where + message)


class DatabaseUnreachable(PerfkitError):
    """The server could not be reached (refused, unknown host, timeout)."""

    exit_code = 3


class AuthenticationFailed(PerfkitError):
    """The server refused the credentials."""

    exit_code = 3


class ExtensionMissing(PerfkitError):
    """An extension perfkit needs is not loaded or not created."""

    exit_code = 3


class PermissionDenied(PerfkitError):
    """The role lacks a privilege a check or a read needs."""

    exit_code = 3


class QueryTimeout(PerfkitError):
    """A statement was cancelled by perfkit's statement_timeout or lock_timeout."""


class ReadOnlyViolation(PerfkitError):
    """A statement tried to write through a read-only perfkit session."""


class SandboxError(PerfkitError):
    """The throwaway PostgreSQL cluster could not be created, started or stopped."""


class ReportError(PerfkitError):
    """A report run failed; the partial output is kept and named in the message."""


class EnvironmentFailure(PerfkitError):
    """The run started, then its environment failed under it: the server went away, or most of the
    checks could not run. Exit code 3, so a script or CI job tells it from bad input (2)."""

    exit_code = 3


class OutputError(PerfkitError):
    """Standard output (or an output file) cannot be written: a full disk, ``/dev/full``, a
    closed descriptor. An environment error: exit code 3."""

    exit_code = 3
