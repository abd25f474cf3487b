"""SLO verdicts for a load-test summary: targets from DESIGN.md's defaults or a TOML file.

``slo(run, targets)`` gives one verdict per endpoint and metric; ``slo_findings`` the breaches.
"""

from __future__ import annotations

import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perfkit.errors import BadInputError
from perfkit.fileio import require_regular
from perfkit.findings import finding, findings_frame
from perfkit.loadtests.frames import ALL

# metric -> (target, critical, higher_is_better); DESIGN.md "Defaults from the field"
DEFAULT_LIMITS = {
    "p95_ms": (500.0, 1000.0, False),
    "p99_ms": (1000.0, 2000.0, False),
    "error_rate": (0.01, 0.05, False),
    "rps": (100.0, 50.0, True),
}
METRIC_WORDS = {"p95_ms": "p95 latency", "p99_ms": "p99 latency", "error_rate": "error rate",
                "rps": "throughput"}
CLASSES = ("read_simple", "read_complex", "write", "webhook")
VERDICT_COLUMNS = ["endpoint", "class", "metric", "value", "target", "critical", "verdict"]


@dataclass
class EndpointClass:
    """Targets for the endpoints whose name matches one of ``match`` (fnmatch, or ``re:...``)."""

    name: str
    match: list[str]
    limits: dict[str, tuple[float, float, bool]]
    methods: list[str] = field(default_factory=list)

    def matches(self, endpoint: str, methods: set[str] | None = None) -> bool:
        if self.methods and methods is not None and not (set(m.upper() for m in self.methods) & methods):
            return False
        for pattern in self.match:
            if pattern.startswith("re:"):
                if re.search(pattern[3:], endpoint):
                    return True
            elif fnmatch.fnmatchcase(endpoint, pattern):
                return True
        return False


@dataclass
class SloTargets:
    """SLO targets: defaults for every endpoint and ALL, and per-endpoint-class overrides.

    ``limits`` maps a metric (``p95_ms``, ``p99_ms``, ``error_rate``, ``rps``) to
    ``(target, critical, higher_is_better)``. Throughput is judged on ALL only, unless a class
    sets its own ``rps``.
    """

    limits: dict[str, tuple[float, float, bool]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    classes: list[EndpointClass] = field(default_factory=list)

    def for_endpoint(self, endpoint: str, methods: set[str] | None = None):
        """(class name, limits) for one endpoint: the first matching class wins."""
        for cls in self.classes:
            if endpoint != ALL and cls.matches(endpoint, methods):
                limits = dict(self.limits)
                if "rps" not in cls.limits:
                    limits.pop("rps", None)
                limits.update(cls.limits)
                return cls.name, limits
        limits = dict(self.limits)
        if endpoint != ALL:
            limits.pop("rps", None)
        return "", limits


def _limit(value, metric: str, where: str, path) -> tuple[float, float, bool]:
    higher = DEFAULT_LIMITS[metric][2]
    if not isinstance(value, dict) or "target" not in value or "critical" not in value:
        raise BadInputError(f"{where}.{metric} must be a table with target and critical, "
                            f"e.g. {metric} = {{ target = 500, critical = 1000 }}", path=path)
    try:
        target, critical = float(value["target"]), float(value["critical"])
    except (TypeError, ValueError):
        raise BadInputError(f"{where}.{metric}: target and critical must be numbers", path=path) from None
    if metric == "error_rate" and (target > 1 or critical > 1):
        raise BadInputError(f"{where}.error_rate is a fraction (0.01 = 1 %), not a percentage", path=path)
    if (critical < target) if not higher else (critical > target):
        raise BadInputError(f"{where}.{metric}: critical must be beyond target", path=path)
    return target, critical, higher


def load_targets(path) -> SloTargets:
    """Read SLO targets from a TOML file (see docs/README-loadtests.md for the format).

    Raises
    ------
    BadInputError
        When the file is missing, is not TOML, or has an unknown metric or bad limits.
    """
    path = require_regular(path, "is a folder, not an SLO file")  # a FIFO would block forever
    try:
        doc = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise BadInputError("no such file", path=path) from None
    except tomllib.TOMLDecodeError as err:
        match = re.search(r"line (\d+)", str(err))
        raise BadInputError(f"not valid TOML ({err})", path=path,
                            line=int(match.group(1)) if match else None) from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"cannot read: {err}", path=path) from None
    return targets_from_dict(doc, path=path)


def targets_from_dict(doc: dict, *, path=None) -> SloTargets:
    """SloTargets from the TOML file's structure (``[defaults]``, ``[classes.NAME]``)."""
    known = set(DEFAULT_LIMITS)
    unknown_top = set(doc) - {"defaults", "classes"}
    if unknown_top:
        raise BadInputError(f"unknown section(s) {', '.join(sorted(unknown_top))}; "
                            "expected [defaults] and [classes.NAME]", path=path)
    targets = SloTargets()
    for metric, value in (doc.get("defaults") or {}).items():
        if metric not in known:
            raise BadInputError(f"unknown metric defaults.{metric}; known: {', '.join(sorted(known))}", path=path)
        targets.limits[metric] = _limit(value, metric, "defaults", path)
    for name, spec in (doc.get("classes") or {}).items():
        if not isinstance(spec, dict):
            raise BadInputError(f"classes.{name} must be a table", path=path)
        match = spec.get("match", [])
        if isinstance(match, str):
            match = [match]
        if not match or not all(isinstance(m, str) for m in match):
            raise BadInputError(f"classes.{name}.match must list endpoint patterns", path=path)
        limits = {}
        for metric, value in spec.items():
            if metric in ("match", "methods"):
                continue
            if metric not in known:
                raise BadInputError(f"unknown metric classes.{name}.{metric}; known: {', '.join(sorted(known))}", path=path)
            limits[metric] = _limit(value, metric, f"classes.{name}", path)
        targets.classes.append(EndpointClass(name, list(match), limits, list(spec.get("methods", []))))
    return targets


def verdict(value: float, target: float, critical: float, higher_is_better: bool) -> str:
    """``pass``, ``warning`` or ``critical`` for one value (``n/a`` when it is unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    if higher_is_better:
        return "critical" if value < critical else "pass" if value > target else "warning"
    return "critical" if value > critical else "pass" if value < target else "warning"


def _methods_by_endpoint(run) -> dict[str, set[str]]:
    samples = getattr(run, "samples", None)
    if samples is None or samples.empty or samples["method"].isna().all():
        return {}
    pairs = samples[["endpoint", "method"]].dropna().drop_duplicates()
    out: dict[str, set[str]] = {}
    for endpoint, method in pairs.itertuples(index=False):
        out.setdefault(str(endpoint), set()).add(str(method).upper())
    return out


def slo(run, targets: SloTargets | dict | str | Path | None = None) -> pd.DataFrame:
    """One SLO verdict per endpoint and metric.

    Parameters
    ----------
    run:
        A LoadTestRun (or a summary DataFrame).
    targets:
        SloTargets, a dict in the TOML structure, a TOML file path, or None for the defaults.

    Returns
    -------
    pandas.DataFrame
        ``VERDICT_COLUMNS``: endpoint, class (the endpoint class that matched, or empty),
        metric, value, target, critical, verdict (pass / warning / critical / n/a).
    """
    if targets is None:
        targets = SloTargets()
    elif isinstance(targets, dict):
        targets = targets_from_dict(targets)
    elif isinstance(targets, str | Path):
        targets = load_targets(targets)
    summary = run if isinstance(run, pd.DataFrame) else run.summary
    methods = {} if isinstance(run, pd.DataFrame) else _methods_by_endpoint(run)
    rows = []
    for record in summary.to_dict(orient="records"):
        endpoint = str(record["endpoint"])
        cls, limits = targets.for_endpoint(endpoint, methods.get(endpoint))
        for metric, (target, critical, higher) in limits.items():
            value = record.get(metric)
            value = float(value) if value is not None and not pd.isna(value) else float("nan")
            rows.append({"endpoint": endpoint, "class": cls, "metric": metric, "value": value,
                         "target": target, "critical": critical,
                         "verdict": verdict(value, target, critical, higher)})
    return pd.DataFrame(rows, columns=VERDICT_COLUMNS)


_ADVICE = {
    "p95_ms": "Profile the slowest requests of this endpoint: its statements (perfkit top), plans "
              "(perfkit explain) and pool waits",
    "p99_ms": "Look at the tail: lock waits, GC pauses, cold caches, connection pool exhaustion",
    "error_rate": "Read the failures by status and error; fix the cause before tuning latency",
    "rps": "Throughput under target: check saturation (CPU, pool size, locks) and the load "
           "generator itself",
}


def _show(metric: str, value: float) -> str:
    if metric == "error_rate":
        return f"{value * 100:.2f} %"
    if metric == "rps":
        return f"{value:,.1f} req/s"
    return f"{value:,.0f} ms"


def slo_findings(verdicts: pd.DataFrame, summary: pd.DataFrame | None = None) -> pd.DataFrame:
    """``slo_breach`` findings (critical or warning) from a verdicts frame."""
    rows = []
    requests = {}
    if summary is not None:
        requests = dict(zip(summary["endpoint"].astype(str), summary["requests"], strict=True))
    for record in verdicts.to_dict(orient="records"):
        if record["verdict"] not in ("critical", "warning"):
            continue
        metric, value = record["metric"], record["value"]
        limit = record["critical"] if record["verdict"] == "critical" else record["target"]
        higher = DEFAULT_LIMITS[metric][2]
        side = "under" if higher else "over"
        limit_word = "critical limit" if record["verdict"] == "critical" else "target"
        evidence = (f"{METRIC_WORDS[metric]} {_show(metric, value)} {side} the {_show(metric, limit)} "
                    f"{limit_word}")
        n = requests.get(record["endpoint"])
        if n is not None and not pd.isna(n):
            evidence += f" ({int(n):,} requests)"
        if record["class"]:
            evidence += f"; class {record['class']}"
        rows.append(finding("slo_breach", record["verdict"], record["endpoint"], evidence,
                            _ADVICE[metric], metric=metric))
    return findings_frame(rows)
