"""The demo's Locust load test: shop users browsing the API, traffic weighted like a real one.

Reads the tenants and order ids from the JSON file named by ``PERFKIT_DEMO_FACTS``; run by ``perfkit.demo.loop.run_locust``.
"""

from __future__ import annotations

import json
import os
import random

from locust import HttpUser, between, task

_FACTS_FILE = os.environ.get("PERFKIT_DEMO_FACTS", "")
if _FACTS_FILE:
    with open(_FACTS_FILE, encoding="utf-8") as handle:
        _FACTS = json.load(handle)
else:  # Locust imports the file to list its users; requests then fail loudly (tenant=0 is a 404)
    _FACTS = {"tenants": [0], "tenant_weights": [1.0], "max_order_id": 1}

TENANTS: list[int] = _FACTS["tenants"]
TENANT_WEIGHTS: list[float] = _FACTS["tenant_weights"]
MAX_ORDER_ID: int = max(1, int(_FACTS["max_order_id"]))
_RNG = random.Random(int(os.environ.get("PERFKIT_DEMO_SEED", "13")))


def _tenant() -> int:
    # a big tenant's users make more requests than a small one's
    return _RNG.choices(TENANTS, TENANT_WEIGHTS)[0]


class ShopUser(HttpUser):
    """One signed-in user of some tenant: lists, order pages, the dashboard, now and then a report."""

    wait_time = between(0.05, 0.25)

    @task(6)
    def invoices(self):
        self.client.get(f"/api/invoices?tenant={_tenant()}", name="/api/invoices")

    @task(6)
    def order(self):
        self.client.get(f"/api/orders/{_RNG.randint(1, MAX_ORDER_ID)}", name="/api/orders/<id>")

    @task(2)
    def dashboard(self):
        self.client.get(f"/api/dashboard/analytics?tenant={_tenant()}", name="/api/dashboard/analytics")

    @task(4)
    def products(self):
        self.client.get(f"/api/products?tenant={_tenant()}", name="/api/products")

    @task(1)
    def sales_report(self):
        self.client.get(f"/api/reports/sales?tenant={_tenant()}", name="/api/reports/sales")
