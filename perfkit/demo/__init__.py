"""``perfkit demo``: a small shop on a throwaway database, load-tested, reported on, fixed and measured again.

- :mod:`perfkit.demo.loop`: the investigation loop (``run_demo``), its database and its evidence;
- :mod:`perfkit.demo.shop`: the shop's schema, data, planted problems and each endpoint's SQL;
- :mod:`perfkit.demo.app`: the shop's HTTP API (stdlib server), as the load test sees it;
- ``locustfile.py`` (run by Locust, never imported) and ``slo.toml`` (the shop's SLO targets).
"""

from __future__ import annotations

from perfkit.demo.loop import (
    APP_ROLE,
    LOCUSTFILE,
    STEPS,
    DemoDatabase,
    DemoOptions,
    DemoResult,
    LoadTestRound,
    run_demo,
    slo_targets,
    write_sample_data,
)

__all__ = [
    "APP_ROLE",
    "LOCUSTFILE",
    "STEPS",
    "DemoDatabase",
    "DemoOptions",
    "DemoResult",
    "LoadTestRound",
    "run_demo",
    "slo_targets",
    "write_sample_data",
]
