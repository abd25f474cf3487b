"""The subcommands of ``perfkit``: one module each, with ``register(subparsers)``.

Shared option helpers live here so every command spells ``--dsn`` and ``--json`` the same way.
"""

from __future__ import annotations

import argparse

OUTPUT_FORMATS = ("text", "markdown", "json")  # --format of every command printing tables


def add_dsn_option(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    parser.add_argument(
        "--dsn",
        default=None,
        required=False,
        help="libpq connection string or postgresql:// URL "
        "(default: $PERFKIT_DSN, then the libpq PG* variables)",
    )
    parser.add_argument(
        "--statement-timeout",
        default="30s",
        metavar="DURATION",
        help="statement_timeout for perfkit's session (default: 30s)",
    )
    parser.add_argument(
        "--lock-timeout",
        default="5s",
        metavar="DURATION",
        help="lock_timeout for perfkit's session (default: 5s)",
    )


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """``--json`` and ``--format {text,markdown,json}`` (a command with a ``--format`` of its own, like
    ``loadtest``'s input format, takes ``markdown`` and ``text`` there)."""
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout (= --format json)")
    if "--format" not in parser._option_string_actions:
        parser.add_argument("--format", dest="output_format", choices=OUTPUT_FORMATS, default=None,
                            help="text for a terminal (default), markdown (GitHub-flavoured tables, for a pull "
                            "request comment; appended to $GITHUB_STEP_SUMMARY when set) or json")


def output_format(args: argparse.Namespace) -> str:
    """``text``, ``markdown`` or ``json`` from the options (``--json`` is ``json``); sets ``args.json``."""
    chosen = getattr(args, "output_format", None)
    if chosen is None and getattr(args, "format", None) in OUTPUT_FORMATS:  # loadtest: --format markdown
        chosen, args.format = args.format, None
    if getattr(args, "json", False):
        chosen = "json"
    chosen = chosen or "text"
    if hasattr(args, "json"):
        args.json = chosen == "json"
    return chosen


SEVERITY_CHOICES = ("critical", "warning", "info")


def add_fail_on_option(parser: argparse.ArgumentParser, *, junit: bool = False) -> None:
    """``--fail-on SEVERITY`` (exit 1 when a finding is at least that severe) and, with ``junit``,
    ``--junit FILE``."""
    parser.add_argument("--fail-on", choices=SEVERITY_CHOICES, default=None, metavar="SEVERITY",
                        help="exit 1 when a finding is at least this severe: critical, warning or info "
                        "(a CI gate; default: exit 0 whatever is found)")
    if junit:
        add_junit_option(parser, "with --fail-on: one test case per check, failed when it found something "
                         "at least that severe")


def add_junit_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--junit", metavar="FILE", default=None, help=f"write a JUnit XML report to FILE ({what})")


def failed_gate(findings, fail_on: str | None) -> bool:
    """True when ``fail_on`` is set and a finding in ``findings`` (a findings frame or a list of
    finding dicts) is at least that severe."""
    if not fail_on or findings is None or not len(findings):
        return False
    worst = SEVERITY_CHOICES.index(fail_on)
    severities = findings["severity"] if hasattr(findings, "columns") and not isinstance(findings, list) else (
        row.get("severity") for row in findings)
    return any(s in SEVERITY_CHOICES[:worst + 1] for s in severities)


def gate_code(findings, fail_on: str | None) -> int:
    """The exit code of a command gated by ``--fail-on``: 1 when the gate failed, else 0."""
    return 1 if failed_gate(findings, fail_on) else 0


def engine_from_args(args: argparse.Namespace, *, retries: int = 0):
    """A read-only perfkit engine from the --dsn / timeout options (``retries``: for scheduled
    runs, one more try after a pause when the server is unreachable)."""
    from perfkit import db

    return db.connect(
        args.dsn,
        statement_timeout=args.statement_timeout,
        lock_timeout=args.lock_timeout,
        retries=retries,
    )


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number above 0, got {value}")
    return value
