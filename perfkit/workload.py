"""A small multi-tenant shop schema and a web-like workload for the sandbox.

``build_shop(conn)`` creates and fills it (with planted problems); ``run_workload(conn)`` runs requests.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

SCHEMA_SQL = """
CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    plan text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    email text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE products (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    name text NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    user_id bigint NOT NULL REFERENCES users(id),
    status text NOT NULL,
    total numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE order_items (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL REFERENCES orders(id),
    product_id bigint NOT NULL REFERENCES products(id),
    quantity int NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL REFERENCES tenants(id),
    order_id bigint NOT NULL REFERENCES orders(id),
    status text NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE audit_logs (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    action text NOT NULL,
    payload text,
    created_at timestamptz NOT NULL
);
-- indexes a team would have: users by tenant, products by tenant
CREATE INDEX users_tenant_idx ON users (tenant_id);
CREATE INDEX products_tenant_idx ON products (tenant_id);
CREATE INDEX order_items_order_idx ON order_items (order_id);
"""

# Tenants of very different sizes: a few large, many small (share of all rows per tenant).
def tenant_weights(tenants: int, seed: int = 7) -> list[float]:
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(tenants)]
    rng.shuffle(weights)
    total = sum(weights)
    return [w / total for w in weights]


FILL_SQL = """
INSERT INTO tenants (name, plan)
SELECT 'tenant-' || g, (ARRAY['free','team','business','enterprise'])[1 + g %% 4]
FROM generate_series(1, %(tenants)s) g;

CREATE TEMP TABLE tenant_share (tenant_id bigint, lo float8, hi float8);
INSERT INTO tenant_share
SELECT t, sum(w) OVER (ORDER BY t) - w, sum(w) OVER (ORDER BY t)
FROM unnest(%(weights)s::float8[]) WITH ORDINALITY AS u(w, t);

CREATE TEMP TABLE pick AS
SELECT g AS n, (SELECT tenant_id FROM tenant_share WHERE r >= lo AND r < hi LIMIT 1) AS tenant_id
FROM (SELECT g, random() AS r FROM generate_series(1, %(orders)s) g) x;
UPDATE pick SET tenant_id = 1 WHERE tenant_id IS NULL;

INSERT INTO users (tenant_id, email, created_at)
SELECT 1 + (g %% %(tenants)s), 'user' || g || '@example.test', now() - (g %% 700) * interval '1 day'
FROM generate_series(1, %(users)s) g;

INSERT INTO products (tenant_id, name, price)
SELECT 1 + (g %% %(tenants)s), 'product ' || g, round((5 + random() * 200)::numeric, 2)
FROM generate_series(1, %(products)s) g;

INSERT INTO orders (tenant_id, user_id, status, total, created_at)
SELECT p.tenant_id,
       1 + ((p.n * 7919) %% %(users)s),
       (ARRAY['paid','paid','paid','shipped','refunded','pending'])[1 + p.n %% 6],
       round((10 + random() * 500)::numeric, 2),
       now() - random() * interval '365 days'
FROM pick p;

INSERT INTO order_items (order_id, product_id, quantity, price)
SELECT o.id, 1 + ((o.id * 31 + k) %% %(products)s), 1 + k, round((5 + random() * 100)::numeric, 2)
FROM orders o, generate_series(0, 2) k;

INSERT INTO invoices (tenant_id, order_id, status, amount, created_at)
SELECT o.tenant_id, o.id, CASE WHEN o.status = 'refunded' THEN 'void' ELSE 'issued' END, o.total,
       o.created_at + interval '1 hour'
FROM orders o;

INSERT INTO audit_logs (tenant_id, action, payload, created_at)
SELECT 1 + (g %% %(tenants)s), (ARRAY['login','update','delete','export'])[1 + g %% 4],
       repeat('x', 100), now() - random() * interval '90 days'
FROM generate_series(1, %(audit)s) g;
ANALYZE;
"""


@dataclass
class ShopSize:
    """Row counts of the shop; ``scale`` multiplies the defaults."""

    tenants: int = 60
    users: int = 5_000
    products: int = 2_000
    orders: int = 60_000
    audit: int = 50_000

    @classmethod
    def scaled(cls, scale: float) -> ShopSize:
        base = cls()
        return cls(
            tenants=max(5, int(base.tenants * min(scale, 1) + 0.5)),
            users=max(100, int(base.users * scale)),
            products=max(50, int(base.products * scale)),
            orders=max(500, int(base.orders * scale)),
            audit=max(500, int(base.audit * scale)),
        )


def build_shop(conn, size: ShopSize | None = None, *, seed: int = 7) -> ShopSize:
    """Create and fill the shop tables in the connection's database (read-write, autocommit).

    Planted problems: invoices and orders have no index leading with ``tenant_id`` (the list
    endpoints filter on it and sort by ``created_at``); ``order_items.product_id`` and
    ``invoices.order_id`` are foreign keys without an index.
    """
    size = size or ShopSize()
    conn.execute("SELECT setseed(%s)", (((seed % 1000) / 1000.0),))
    conn.execute(SCHEMA_SQL)
    import psycopg

    psycopg.ClientCursor(conn).execute(
        FILL_SQL,
        {
            "tenants": size.tenants,
            "users": size.users,
            "products": size.products,
            "orders": size.orders,
            "audit": size.audit,
            "weights": tenant_weights(size.tenants, seed),
        },
    )
    return size


def comment(route: str, request_id: str) -> str:
    """An sqlcommenter-style comment, as web frameworks add to their SQL."""
    return f"/* route='{route}',request_id='{request_id}' */ "


@dataclass
class Endpoint:
    """One API route: the SQL its handler runs for one request."""

    route: str
    handler: Callable
    weight: float = 1.0


def _invoices(conn, rng, tag, tenants):
    tenant = rng.choice(tenants)
    conn.execute(tag + "SELECT id, order_id, status, amount, created_at FROM invoices "
                 "WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 50", (tenant,)).fetchall()


def _order(conn, rng, tag, tenants, max_order):
    order_id = rng.randint(1, max_order)
    conn.execute(tag + "SELECT * FROM orders WHERE id = %s", (order_id,)).fetchall()
    conn.execute(tag + "SELECT product_id, quantity, price FROM order_items WHERE order_id = %s", (order_id,)).fetchall()


def _dashboard(conn, rng, tag, tenants):
    """The N+1: one query for the recent orders, then one per order for its items."""
    tenant = rng.choice(tenants)
    orders = conn.execute(tag + "SELECT id, total FROM orders WHERE tenant_id = %s "
                          "ORDER BY created_at DESC LIMIT 20", (tenant,)).fetchall()
    for (order_id, _total) in orders:
        conn.execute(tag + "SELECT sum(quantity * price) FROM order_items WHERE order_id = %s", (order_id,)).fetchall()


def _products(conn, rng, tag, tenants):
    tenant = rng.choice(tenants)
    conn.execute(tag + "SELECT id, name, price FROM products WHERE tenant_id = %s ORDER BY name LIMIT 100", (tenant,)).fetchall()


@dataclass
class WorkloadResult:
    """What ``run_workload`` did: requests per route and their latencies in ms."""

    requests: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def run_workload(conn, *, requests: int = 300, seed: int = 11, progress: Callable[[int], None] | None = None) -> WorkloadResult:
    """Run ``requests`` web requests against the shop on one connection (autocommit).

    Routes: ``/api/invoices`` (tenant list, no tenant index), ``/api/orders/<id>``,
    ``/api/dashboard/analytics`` (an N+1), ``/api/products``.
    """
    rng = random.Random(seed)
    tenants = [row[0] for row in conn.execute("SELECT id FROM tenants ORDER BY id").fetchall()]
    max_order = conn.execute("SELECT max(id) FROM orders").fetchone()[0]
    endpoints = [
        Endpoint("/api/invoices", lambda c, r, t: _invoices(c, r, t, tenants), 3),
        Endpoint("/api/orders/<id>", lambda c, r, t: _order(c, r, t, tenants, max_order), 4),
        Endpoint("/api/dashboard/analytics", lambda c, r, t: _dashboard(c, r, t, tenants), 1),
        Endpoint("/api/products", lambda c, r, t: _products(c, r, t, tenants), 2),
    ]
    weights = [e.weight for e in endpoints]
    result = WorkloadResult()
    started = time.perf_counter()
    for i in range(requests):
        endpoint = rng.choices(endpoints, weights)[0]
        tag = comment(endpoint.route, uuid.UUID(int=rng.getrandbits(128)).hex[:16])
        t0 = time.perf_counter()
        endpoint.handler(conn, rng, tag)
        elapsed = (time.perf_counter() - t0) * 1000
        result.requests[endpoint.route] = result.requests.get(endpoint.route, 0) + 1
        result.latencies_ms.setdefault(endpoint.route, []).append(elapsed)
        if progress:
            progress(i + 1)
    result.seconds = time.perf_counter() - started
    return result
