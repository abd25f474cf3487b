"""SLO verdicts for a load-test summary: targets from DESIGN.md's defaults or a TOML file.

``slo(run, targets)`` gives one verdict per endpoint and metric; ``slo_findings`` the breaches.
A TOML file may hold targets per environment (``[env.production]``), chosen with ``env=``.
"""

from __future__ import annotations

import fnmatch
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
# metrics a file may set that are not judged by default: median and maximum latency
OPTIONAL_METRICS = ("p50_ms", "max_ms")
METRICS = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "error_rate", "rps")
HIGHER_IS_BETTER = {"rps"}
METRIC_WORDS = {"p50_ms": "median latency", "p95_ms": "p95 latency", "p99_ms": "p99 latency",
                "max_ms": "maximum latency", "error_rate": "error rate", "rps": "throughput"}
CLASSES = ("read_simple", "read_complex", "write", "webhook")
VERDICT_COLUMNS = ["endpoint", "class", "metric", "value", "target", "critical", "verdict"]


def _path_of(endpoint: str) -> str | None:
    """The path of an endpoint named by a full URL (k6 names requests by URL), else None."""
    method, _, rest = endpoint.partition(" ")
    url = rest if rest and method.isupper() and "://" in rest else endpoint
    if "://" not in url:
        return None
    path = urlsplit(url).path or "/"
    return f"{method} {path}" if url is rest else path


@dataclass
class EndpointClass:
    """Targets for the endpoints whose name matches one of ``match`` (fnmatch, or ``re:...``).

    A pattern is tried on the endpoint's name and, when the name is a full URL, on its path
    (``https://shop.example/api/search?q=1`` matches ``/api/search*``). ``methods`` narrows the
    class to those HTTP methods; an endpoint whose method the tool did not record is not in a
    class that names methods (its requests may as well be reads).
    """

    name: str
    match: list[str]
    limits: dict[str, tuple[float, float, bool]]
    methods: list[str] = field(default_factory=list)

    def matches_name(self, endpoint: str) -> bool:
        names = [endpoint]
        path = _path_of(endpoint)
        if path is not None:
            names.append(path)
        method, _, rest = endpoint.partition(" ")
        if rest and method.isupper() and method.isalpha():  # Locust's "POST /api/orders" (one name, two methods)
            names.append(rest)
            if path is not None:
                names.append(path.partition(" ")[2] or path)
        for pattern in self.match:
            for name in names:
                if pattern.startswith("re:"):
                    if re.search(pattern[3:], name):
                        return True
                elif fnmatch.fnmatchcase(name, pattern):
                    return True
        return False

    def matches(self, endpoint: str, methods: set[str] | None = None) -> bool:
        if self.methods and not (methods and set(m.upper() for m in self.methods) & methods):
            return False
        return self.matches_name(endpoint)


@dataclass
class SloTargets:
    """SLO targets: defaults for every endpoint and ALL, and per-endpoint-class overrides.

    ``limits`` maps a metric (``p50_ms``, ``p95_ms``, ``p99_ms``, ``max_ms``, ``error_rate``,
    ``rps``) to ``(target, critical, higher_is_better)``; ``p50_ms`` and ``max_ms`` are judged
    only when a file sets them. Throughput is judged on ALL only, unless a class sets its own
    ``rps``. ``env`` names the environment whose ``[env.NAME]`` tables were applied.
    """

    limits: dict[str, tuple[float, float, bool]] = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    classes: list[EndpointClass] = field(default_factory=list)
    env: str | None = None

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

    def unknown_method_classes(self, endpoint: str) -> list[str]:
        """Classes naming methods that would take ``endpoint`` by name: left out when the tool
        recorded no method for it."""
        if endpoint == ALL:
            return []
        return [cls.name for cls in self.classes if cls.methods and cls.matches_name(endpoint)]


def _limit(value, metric: str, where: str, path) -> tuple[float, float, bool]:
    higher = metric in HIGHER_IS_BETTER
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


def load_targets(path, env: str | None = None) -> SloTargets:
    """Read SLO targets from a TOML file (see docs/README-loadtests.md for the format).

    ``env`` applies the file's ``[env.NAME]`` tables over its ``[defaults]`` and ``[classes]``.

    Raises
    ------
    BadInputError
        When the file is missing, is not TOML, has an unknown metric or bad limits, or has no
        such environment.
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
    return targets_from_dict(doc, path=path, env=env)


def environments(doc: dict) -> list[str]:
    """The environments an SLO document names (``[env.NAME]``)."""
    envs = doc.get("env") or {}
    return sorted(envs) if isinstance(envs, dict) else []


def _with_env(doc: dict, env: str | None, path) -> dict:
    """The document with ``[env.NAME]`` laid over its defaults and classes (metric by metric)."""
    envs = doc.get("env")
    if envs is not None and (not isinstance(envs, dict) or not all(isinstance(v, dict) for v in envs.values())):
        raise BadInputError("env must hold one table per environment, e.g. [env.production.defaults]", path=path)
    base = {k: v for k, v in doc.items() if k != "env"}
    if env is None:
        return base
    if not envs:
        raise BadInputError(f"--env {env}: the SLO file has no [env.NAME] tables", path=path)
    if env not in envs:
        raise BadInputError(f"--env {env}: no [env.{env}] in the SLO file; it has {', '.join(sorted(envs))}",
                            path=path)
    over = envs[env]
    unknown = set(over) - {"defaults", "classes"}
    if unknown:
        raise BadInputError(f"unknown section(s) env.{env}.{', '.join(sorted(unknown))}; "
                            f"expected [env.{env}.defaults] and [env.{env}.classes.NAME]", path=path)
    merged = {"defaults": {**(base.get("defaults") or {}), **(over.get("defaults") or {})}}
    classes = {name: dict(spec) if isinstance(spec, dict) else spec
               for name, spec in (base.get("classes") or {}).items()}
    for name, spec in (over.get("classes") or {}).items():
        if isinstance(spec, dict) and isinstance(classes.get(name), dict):
            classes[name].update(spec)
        else:
            classes[name] = spec
    merged["classes"] = classes
    return merged


def targets_from_dict(doc: dict, *, path=None, env: str | None = None) -> SloTargets:
    """SloTargets from the TOML file's structure (``[defaults]``, ``[classes.NAME]``,
    ``[env.NAME.defaults]``, ``[env.NAME.classes.NAME]``)."""
    known = set(METRICS)
    unknown_top = set(doc) - {"defaults", "classes", "env", "budgets"}
    if unknown_top:
        raise BadInputError(f"unknown section(s) {', '.join(sorted(unknown_top))}; "
                            "expected [defaults], [classes.NAME], [env.NAME] and [budgets]", path=path)
    if "budgets" in doc:  # (perfkit budgets reads them; a mistake there is an error here too)
        from perfkit.budgets import budgets_from_dict

        budgets_from_dict(doc["budgets"], path=path)
    doc = _with_env({k: v for k, v in doc.items() if k != "budgets"}, env, path)
    targets = SloTargets(env=env)
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
        methods = spec.get("methods", [])
        if isinstance(methods, str):
            methods = [methods]
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise BadInputError(f"classes.{name}.methods must list HTTP methods, e.g. [\"POST\"]", path=path)
        limits = {}
        for metric, value in spec.items():
            if metric in ("match", "methods"):
                continue
            if metric not in known:
                raise BadInputError(f"unknown metric classes.{name}.{metric}; known: {', '.join(sorted(known))}", path=path)
            limits[metric] = _limit(value, metric, f"classes.{name}", path)
        targets.classes.append(EndpointClass(name, list(match), limits, list(methods)))
    return targets


def verdict(value: float, target: float, critical: float, higher_is_better: bool) -> str:
    """``pass``, ``warning`` or ``critical`` for one value (``n/a`` when it is unknown)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "n/a"
    if higher_is_better:
        return "critical" if value < critical else "pass" if value > target else "warning"
    return "critical" if value > critical else "pass" if value < target else "warning"


def _methods_by_endpoint(run) -> dict[str, set[str]]:
    """Endpoint -> HTTP methods, from the samples or the tool's own figures (Locust's Type)."""
    out: dict[str, set[str]] = {}
    for endpoint, methods in (getattr(run, "tool_figures", None) or {}).get("methods", {}).items():
        out.setdefault(str(endpoint), set()).update(str(m).upper() for m in methods)
    samples = getattr(run, "samples", None)
    if samples is None or samples.empty or samples["method"].isna().all():
        return out
    pairs = samples[["endpoint", "method"]].dropna().drop_duplicates()
    for endpoint, method in pairs.itertuples(index=False):
        out.setdefault(str(endpoint), set()).add(str(method).upper())
    return out


def slo(run, targets: SloTargets | dict | str | Path | None = None, *, env: str | None = None) -> pd.DataFrame:
    """One SLO verdict per endpoint and metric.

    Parameters
    ----------
    run:
        A LoadTestRun (or a summary DataFrame).
    targets:
        SloTargets, a dict in the TOML structure, a TOML file path, or None for the defaults.
    env:
        The ``[env.NAME]`` tables to apply when ``targets`` is a dict or a file.

    Returns
    -------
    pandas.DataFrame
        ``VERDICT_COLUMNS``: endpoint, class (the endpoint class that matched, or empty),
        metric, value, target, critical, verdict (pass / warning / critical / n/a).
        ``attrs["notes"]`` says which classes naming HTTP methods were left out for endpoints
        whose method the file does not record.
    """
    if targets is None:
        targets = SloTargets()
    elif isinstance(targets, dict):
        targets = targets_from_dict(targets, env=env)
    elif isinstance(targets, str | Path):
        targets = load_targets(targets, env=env)
    summary = run if isinstance(run, pd.DataFrame) else run.summary
    methods = {} if isinstance(run, pd.DataFrame) else _methods_by_endpoint(run)
    rows, unknown = [], {}
    for record in summary.to_dict(orient="records"):
        endpoint = str(record["endpoint"])
        if not methods.get(endpoint):
            for name in targets.unknown_method_classes(endpoint):
                unknown.setdefault(name, []).append(endpoint)
        cls, limits = targets.for_endpoint(endpoint, methods.get(endpoint))
        for metric, (target, critical, higher) in limits.items():
            value = record.get(metric)
            value = float(value) if value is not None and not pd.isna(value) else float("nan")
            rows.append({"endpoint": endpoint, "class": cls, "metric": metric, "value": value,
                         "target": target, "critical": critical,
                         "verdict": verdict(value, target, critical, higher)})
    frame = pd.DataFrame(rows, columns=VERDICT_COLUMNS)
    frame.attrs["notes"] = [
        f"SLO class {name} applies to {', '.join(c.methods)} requests only; the file records no HTTP "
        f"method for {len(endpoints)} endpoint{'s' if len(endpoints) != 1 else ''} it would match by name "
        f"({', '.join(endpoints[:3])}{', ...' if len(endpoints) > 3 else ''}), so they were judged without it"
        for name, endpoints in unknown.items()
        for c in targets.classes if c.name == name
    ]
    return frame


_ADVICE = {
    "p50_ms": "The typical request is slow, not only the tail: profile the endpoint's statements "
              "(perfkit top) and plans (perfkit explain)",
    "max_ms": "Find the slowest requests: lock waits, timeouts, cold caches, pool exhaustion",
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
        higher = metric in HIGHER_IS_BETTER
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
