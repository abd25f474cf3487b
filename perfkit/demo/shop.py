"""The demo shop: a multi-tenant schema with planted problems, built fast in SQL, and its requests.

``build_shop(conn, size)`` creates and fills it; ``ROUTES`` hold each endpoint's SQL; ``run_workload`` runs them.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

# Every demo table carries this comment, so a rerun (``perfkit demo --dsn ... --force``) drops
# only tables the demo made.
SHOP_TABLE_COMMENT = "perfkit demo shop"
SHOP_TABLES = ("messages", "audit_logs", "invoices", "order_items", "orders", "products", "users", "tenants")

# What the demo plants, by the Finding kind (DESIGN.md) that should find it.
PLANTED = {
    "missing_tenant_index": "invoices: no index leads with tenant_id; /api/invoices filters on it and sorts by created_at",
    "missing_fk_index": "invoices.order_id (read by /api/orders/<id>) and order_items.product_id have no index",
    "duplicate_index": "orders_tenant_id_idx and orders_tenant_idx are both on orders (tenant_id)",
    "unused_index": "orders_status_total_idx on orders (status, total): no request reads it",
    "table_bloat": "audit_logs: autovacuum off, a mass UPDATE and DELETE left dead rows",
    "n_plus_one": "/api/dashboard/analytics runs one order_items query per recent order",
    "sort_spill": "/api/reports/sales sorts a tenant's orders with work_mem = 64kB",
}
DEMO_WORK_MEM = "64kB"

SCHEMA_SQL = """
CREATE TABLE tenants (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    plan text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE users (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    email text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE products (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    name text NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    user_id bigint NOT NULL,
    status text NOT NULL,
    total numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE order_items (
    id bigserial PRIMARY KEY,
    order_id bigint NOT NULL,
    product_id bigint NOT NULL,
    quantity int NOT NULL,
    price numeric(10,2) NOT NULL
);
CREATE TABLE invoices (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    order_id bigint NOT NULL,
    status text NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE audit_logs (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    user_id bigint,
    action text NOT NULL,
    payload text,
    created_at timestamptz NOT NULL
) WITH (autovacuum_enabled = false);
CREATE TABLE messages (
    id bigserial PRIMARY KEY,
    tenant_id bigint NOT NULL,
    user_id bigint NOT NULL,
    channel text NOT NULL,
    status text NOT NULL,
    body text NOT NULL,
    sent_at timestamptz NOT NULL
);
"""

# Foreign keys and indexes: the ones a team would have, and the ones it should not (added after
# the fill, which is much faster than checking and maintaining them row by row).
INDEX_SQL = """
ALTER TABLE users ADD FOREIGN KEY (tenant_id) REFERENCES tenants(id);
ALTER TABLE products ADD FOREIGN KEY (tenant_id) REFERENCES tenants(id);
ALTER TABLE orders ADD FOREIGN KEY (tenant_id) REFERENCES tenants(id), ADD FOREIGN KEY (user_id) REFERENCES users(id);
ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders(id),
    ADD FOREIGN KEY (product_id) REFERENCES products(id);
ALTER TABLE invoices ADD FOREIGN KEY (tenant_id) REFERENCES tenants(id), ADD FOREIGN KEY (order_id) REFERENCES orders(id);
ALTER TABLE messages ADD FOREIGN KEY (tenant_id) REFERENCES tenants(id), ADD FOREIGN KEY (user_id) REFERENCES users(id);
CREATE INDEX users_tenant_idx ON users (tenant_id);
CREATE INDEX products_tenant_idx ON products (tenant_id);
CREATE INDEX orders_tenant_idx ON orders (tenant_id);
CREATE INDEX orders_tenant_id_idx ON orders (tenant_id);
CREATE INDEX orders_status_total_idx ON orders (status, total);
CREATE INDEX order_items_order_idx ON order_items (order_id);
CREATE INDEX audit_logs_tenant_created_idx ON audit_logs (tenant_id, created_at);
CREATE INDEX messages_tenant_sent_idx ON messages (tenant_id, sent_at);
"""

# Per-tenant row counts (a few large tenants, many small ones) and each tenant's contiguous
# user and product id ranges, so every order belongs to a user and products of its own tenant.
TENANT_SHARES_SQL = """
CREATE TEMP TABLE tenant_rows AS
SELECT t AS tenant_id, w,
       greatest(1, round(w * %(orders)s))::int AS orders,
       greatest(1, round(w * %(users)s))::int AS users,
       greatest(3, round(w * %(products)s))::int AS products,
       greatest(1, round(w * %(audit)s))::int AS audit,
       greatest(1, round(w * %(messages)s))::int AS messages
FROM unnest(%(weights)s::float8[]) WITH ORDINALITY AS u(w, t);
ALTER TABLE tenant_rows ADD COLUMN first_user bigint, ADD COLUMN first_product bigint;
UPDATE tenant_rows r SET first_user = c.first_user, first_product = c.first_product
FROM (SELECT tenant_id,
             sum(users) OVER (ORDER BY tenant_id) - users + 1 AS first_user,
             sum(products) OVER (ORDER BY tenant_id) - products + 1 AS first_product
      FROM tenant_rows) c
WHERE c.tenant_id = r.tenant_id;
"""

FILL_STEPS: tuple[tuple[str, str], ...] = (
    ("tenants", """
INSERT INTO tenants (name, plan, created_at)
SELECT 'tenant-' || t.tenant_id,
       CASE WHEN t.w > 0.02 THEN 'enterprise' ELSE (ARRAY['free','team','business'])[1 + t.tenant_id %% 3] END,
       now() - interval '3 years' + t.tenant_id * interval '1 day'
FROM tenant_rows t ORDER BY t.tenant_id;
"""),
    ("users", """
INSERT INTO users (tenant_id, email, created_at)
SELECT t.tenant_id, 'user' || g || '@tenant' || t.tenant_id || '.example', now() - random() * interval '700 days'
FROM tenant_rows t, generate_series(1, t.users) g
ORDER BY t.tenant_id, g;
"""),
    ("products", """
INSERT INTO products (tenant_id, name, price)
SELECT t.tenant_id, 'product ' || t.tenant_id || '-' || g, round((5 + random() * 200)::numeric, 2)
FROM tenant_rows t, generate_series(1, t.products) g
ORDER BY t.tenant_id, g;
"""),
    ("orders", """
INSERT INTO orders (tenant_id, user_id, status, total, created_at)
SELECT x.tenant_id, x.user_id, x.status, x.total, x.created_at
FROM (SELECT t.tenant_id,
             t.first_user + floor(random() * t.users)::bigint AS user_id,
             (ARRAY['paid','paid','paid','shipped','refunded','pending'])[1 + floor(random() * 6)::int] AS status,
             round((10 + random() * 490)::numeric, 2) AS total,
             now() - random() * interval '365 days' AS created_at
      FROM tenant_rows t, generate_series(1, t.orders) g) x
ORDER BY x.created_at;
"""),
    ("order_items", """
INSERT INTO order_items (order_id, product_id, quantity, price)
SELECT o.id, t.first_product + floor(random() * t.products)::bigint, 1 + floor(random() * 3)::int,
       round((5 + random() * 100)::numeric, 2)
FROM orders o JOIN tenant_rows t ON t.tenant_id = o.tenant_id, generate_series(1, 1 + (o.id %% 4)::int) k;
"""),
    ("invoices", """
INSERT INTO invoices (tenant_id, order_id, status, amount, created_at)
SELECT o.tenant_id, o.id, CASE WHEN o.status = 'refunded' THEN 'void' ELSE 'issued' END, o.total,
       o.created_at + interval '1 hour'
FROM orders o WHERE o.status <> 'pending'
ORDER BY o.id;
"""),
    ("audit_logs", """
INSERT INTO audit_logs (tenant_id, user_id, action, payload, created_at)
SELECT x.* FROM (
    SELECT t.tenant_id, t.first_user + floor(random() * t.users)::bigint,
           (ARRAY['login','update','delete','export','invite'])[1 + floor(random() * 5)::int],
           '{"ip":"10.0.' || floor(random() * 255) || '.' || floor(random() * 255) || '","agent":"' || repeat('m', 60) || '"}',
           now() - random() * interval '90 days' AS created_at
    FROM tenant_rows t, generate_series(1, t.audit) g) x
ORDER BY x.created_at;
"""),
    ("messages", """
INSERT INTO messages (tenant_id, user_id, channel, status, body, sent_at)
SELECT t.tenant_id, t.first_user + floor(random() * t.users)::bigint,
       (ARRAY['email','sms','whatsapp'])[1 + floor(random() * 3)::int],
       (ARRAY['sent','delivered','read','failed'])[1 + floor(random() * 4)::int],
       'Your order has shipped. ' || repeat('.', 40), now() - random() * interval '180 days'
FROM tenant_rows t, generate_series(1, t.messages) g;
"""),
)

# audit_logs without autovacuum: a retention job deletes old rows, a privacy job rewrites the
# payload of a third of the rest; the dead rows stay until somebody vacuums.
BLOAT_SQL = """
DELETE FROM audit_logs WHERE created_at < now() - interval '45 days';
UPDATE audit_logs SET payload = '{"redacted":true}' WHERE id %% 3 = 0;
"""


def tenant_weights(tenants: int, seed: int = 7) -> list[float]:
    """Each tenant's share of the rows: Zipf-like, so a few tenants are large and most are small."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(tenants)]
    rng.shuffle(weights)
    total = sum(weights)
    return [w / total for w in weights]


@dataclass
class ShopSize:
    """Row counts of the shop (before the bloat: audit_logs loses about half); ``scaled`` multiplies them."""

    tenants: int = 200
    users: int = 20_000
    products: int = 5_000
    orders: int = 300_000
    audit: int = 300_000
    messages: int = 100_000

    @classmethod
    def scaled(cls, scale: float) -> ShopSize:
        """The default size times ``scale`` (tenants grow with the square root, at least 20)."""
        base = cls()
        return cls(
            tenants=max(20, int(base.tenants * min(scale, 1) ** 0.5 + 0.5)),
            users=max(200, int(base.users * scale)),
            products=max(100, int(base.products * scale)),
            orders=max(2_000, int(base.orders * scale)),
            audit=max(2_000, int(base.audit * scale)),
            messages=max(1_000, int(base.messages * scale)),
        )


def _execute(conn, sql: str, params: dict | None = None) -> None:
    """Run several statements at once, ``%(name)s`` placeholders filled in on the client."""
    import psycopg

    with psycopg.ClientCursor(conn) as cur:
        cur.execute(sql, params or {})


def existing_tables(conn) -> list[str]:
    """User tables and views in the connection's database (not the system's, not an extension's)."""
    rows = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
        "AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' "
        # the views of extensions (pg_stat_statements, hypopg) are not the user's tables
        "AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass "
        "AND d.objid = c.oid AND d.deptype = 'e') ORDER BY 1"
    ).fetchall()
    return [row[0] for row in rows]


def drop_shop(conn) -> list[str]:
    """Drop the demo's own tables (those commented ``perfkit demo shop``) in ``public``; returns their names."""
    rows = conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relkind = 'r' AND obj_description(c.oid, 'pg_class') = %s",
        (SHOP_TABLE_COMMENT,),
    ).fetchall()
    names = [row[0] for row in rows]
    if names:
        conn.execute("DROP TABLE " + ", ".join(f'public."{name}"' for name in names) + " CASCADE")
    return names


def build_shop(
    conn,
    size: ShopSize | None = None,
    *,
    seed: int = 7,
    bloat: bool = True,
    progress: Callable[[str], None] | None = None,
) -> ShopSize:
    """Create and fill the shop in the connection's database, planting the problems in ``PLANTED``.

    Parameters
    ----------
    conn:
        A read-write psycopg connection in autocommit mode (the owner of the tables it makes).
    size:
        Row counts; default :class:`ShopSize` (300,000 orders, about 250,000 invoices).
    seed:
        Seeds the tenant sizes and PostgreSQL's ``random()``, so two builds hold the same shape.
    bloat:
        Leave audit_logs bloated (a mass DELETE and UPDATE with autovacuum off).
    progress:
        Called with the name of each step as it starts (``"orders"``, ``"indexes"``, ...).

    Returns
    -------
    ShopSize
        The size built. Every table is analyzed; all but audit_logs are vacuumed too (as
        autovacuum would have done), so only audit_logs carries dead rows.
    """
    size = size or ShopSize()
    step = progress or (lambda _name: None)
    step("schema")
    conn.execute(SCHEMA_SQL)
    for table in SHOP_TABLES:
        conn.execute(f"COMMENT ON TABLE {table} IS '{SHOP_TABLE_COMMENT}'")
    conn.execute("SELECT setseed(%s)", ((seed % 1000) / 1000.0,))
    _execute(
        conn,
        TENANT_SHARES_SQL,
        {
            "orders": size.orders,
            "users": size.users,
            "products": size.products,
            "audit": size.audit,
            "messages": size.messages,
            "weights": tenant_weights(size.tenants, seed),
        },
    )
    for name, sql in FILL_STEPS:
        step(name)
        _execute(conn, sql)
    conn.execute("DROP TABLE tenant_rows")
    step("keys and indexes")
    conn.execute(INDEX_SQL)
    if bloat:
        step("bloat")
        _execute(conn, BLOAT_SQL)
    step("vacuum")
    if conn.info.server_version >= 150000:
        # flush this session's row counts now (not up to a second later, after ANALYZE reset
        # them): otherwise every table looks as if it changed since its last analyze
        conn.execute("SELECT pg_stat_force_next_flush()")
    for table in SHOP_TABLES:
        conn.execute(f"ANALYZE {table}" if table == "audit_logs" else f"VACUUM (ANALYZE) {table}")
    return size


def plant_settings(conn, *, database: str | None = None, work_mem: str = DEMO_WORK_MEM) -> None:
    """Give the database a tiny ``work_mem`` (new sessions get it), so big report sorts spill to disk."""
    database = database or conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(f'ALTER DATABASE "{database}" SET work_mem = \'{work_mem}\'')


def reset_settings(conn, *, database: str | None = None) -> None:
    """Undo :func:`plant_settings`."""
    database = database or conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(f'ALTER DATABASE "{database}" RESET work_mem')


# -- the requests -------------------------------------------------------------------------------

def sqlcommenter(tags: dict[str, str]) -> str:
    """An sqlcommenter comment (keys sorted, values URL-encoded and quoted), as web frameworks append."""
    pairs = ",".join(f"{quote(str(k), safe='')}='{quote(str(v), safe='')}'" for k, v in sorted(tags.items()))
    return f" /*{pairs}*/"


def comment(route: str, request_id: str) -> str:
    """The request comment of one request to ``route`` (application, request_id, route)."""
    return sqlcommenter({"application": "shop", "route": route, "request_id": request_id})


INVOICES_SQL = (
    "SELECT id, order_id, status, amount, created_at FROM invoices "
    "WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 50"
)
ORDER_SQL = "SELECT id, tenant_id, user_id, status, total, created_at FROM orders WHERE id = %s"
ORDER_ITEMS_SQL = (
    "SELECT i.product_id, p.name, i.quantity, i.price FROM order_items i "
    "JOIN products p ON p.id = i.product_id WHERE i.order_id = %s"
)
ORDER_INVOICE_SQL = "SELECT id, status, amount, created_at FROM invoices WHERE order_id = %s"
DASHBOARD_ORDERS_SQL = (
    "SELECT id, status, total, created_at FROM orders WHERE tenant_id = %s ORDER BY created_at DESC LIMIT 25"
)
DASHBOARD_ITEMS_SQL = "SELECT count(*), sum(quantity * price) FROM order_items WHERE order_id = %s"
PRODUCTS_SQL = "SELECT id, name, price FROM products WHERE tenant_id = %s ORDER BY name LIMIT 100"
SALES_REPORT_SQL = """SELECT user_id, id, total, created_at FROM (
    SELECT o.user_id, o.id, o.total, o.created_at,
           row_number() OVER (PARTITION BY o.user_id ORDER BY o.created_at DESC) AS recent
    FROM orders o WHERE o.tenant_id = %s AND o.status IN ('paid', 'shipped')) ranked
WHERE recent <= 3 ORDER BY total DESC LIMIT 100"""


def _rows(conn, sql: str, params: tuple, tag: str) -> list[tuple]:
    # the comment's URL escapes (%2F) are not placeholders
    return conn.execute(sql + tag.replace("%", "%%"), params).fetchall()


def invoices_page(conn, tenant: int, tag: str = "") -> list[tuple]:
    """``GET /api/invoices?tenant=``: a tenant's 50 newest invoices (no tenant index: a full scan)."""
    return _rows(conn, INVOICES_SQL, (tenant,), tag)


def order_detail(conn, order_id: int, tag: str = "") -> dict | None:
    """``GET /api/orders/<id>``: the order, its items and its invoice (``invoices.order_id`` is unindexed)."""
    order = _rows(conn, ORDER_SQL, (order_id,), tag)
    if not order:
        return None
    items = _rows(conn, ORDER_ITEMS_SQL, (order_id,), tag)
    invoice = _rows(conn, ORDER_INVOICE_SQL, (order_id,), tag)
    return {"order": order[0], "items": items, "invoice": invoice[0] if invoice else None}


def dashboard(conn, tenant: int, tag: str = "") -> list[tuple]:
    """``GET /api/dashboard/analytics?tenant=``: recent orders, then one query per order (the N+1)."""
    orders = _rows(conn, DASHBOARD_ORDERS_SQL, (tenant,), tag)
    out = []
    for order_id, status, total, created_at in orders:
        count, value = _rows(conn, DASHBOARD_ITEMS_SQL, (order_id,), tag)[0]
        out.append((order_id, status, total, created_at, count, value))
    return out


def products_page(conn, tenant: int, tag: str = "") -> list[tuple]:
    """``GET /api/products?tenant=``: a tenant's catalog page (indexed: the fast one)."""
    return _rows(conn, PRODUCTS_SQL, (tenant,), tag)


def sales_report(conn, tenant: int, tag: str = "") -> list[tuple]:
    """``GET /api/reports/sales?tenant=``: top orders among each customer's last three (a sort that spills)."""
    return _rows(conn, SALES_REPORT_SQL, (tenant,), tag)


@dataclass
class Route:
    """One API route, its share of real traffic, and what it runs."""

    route: str
    weight: int
    description: str


ROUTES = (
    Route("/api/invoices", 6, "a tenant's newest invoices"),
    Route("/api/orders/<id>", 6, "one order with items and invoice"),
    Route("/api/dashboard/analytics", 2, "recent orders with their totals"),
    Route("/api/products", 4, "a tenant's catalog"),
    Route("/api/reports/sales", 1, "a tenant's sales report"),
)


def plan_targets(facts: ShopFacts) -> list[tuple[str, str, int]]:
    """``(route, sql, argument)``: the statement behind each endpoint, with the largest tenant (or a mid order id).

    The demo captures their plans before and after the fixes (one ``%s`` placeholder each).
    """
    biggest = facts.tenants[facts.tenant_weights.index(max(facts.tenant_weights))] if facts.tenants else 1
    return [
        ("/api/invoices", INVOICES_SQL, biggest),
        ("/api/orders/<id>", ORDER_INVOICE_SQL, max(1, facts.max_order_id // 2)),
        ("/api/dashboard/analytics", DASHBOARD_ORDERS_SQL, biggest),
        ("/api/products", PRODUCTS_SQL, biggest),
        ("/api/reports/sales", SALES_REPORT_SQL, biggest),
    ]


@dataclass
class ShopFacts:
    """What a client needs to make requests: tenant ids with their traffic weights, order ids."""

    tenants: list[int]
    tenant_weights: list[float]
    max_order_id: int


def shop_facts(conn) -> ShopFacts:
    """Tenants weighted by their order count (big tenants get more traffic), and the order id range."""
    rows = conn.execute("SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id ORDER BY tenant_id").fetchall()
    max_order = conn.execute("SELECT coalesce(max(id), 0) FROM orders").fetchone()[0]
    total = sum(count for _t, count in rows) or 1
    return ShopFacts([int(t) for t, _c in rows], [count / total for _t, count in rows], int(max_order))


@dataclass
class WorkloadResult:
    """What ``run_workload`` did: requests per route and their latencies in ms."""

    requests: dict[str, int] = field(default_factory=dict)
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def run_workload(conn, *, requests: int = 300, seed: int = 11, progress: Callable[[int], None] | None = None) -> WorkloadResult:
    """Run ``requests`` requests of the demo API's routes on one connection (autocommit), in process.

    The same SQL as :mod:`perfkit.demo.app`, without HTTP: for tests and sample data that need
    a workload in pg_stat_statements and the server log but no load test.
    """
    rng = random.Random(seed)
    facts = shop_facts(conn)
    result = WorkloadResult()
    started = time.perf_counter()
    weights = [r.weight for r in ROUTES]
    for i in range(requests):
        route = rng.choices(ROUTES, weights)[0].route
        tenant = rng.choices(facts.tenants, facts.tenant_weights)[0]
        tag = comment(route, uuid.UUID(int=rng.getrandbits(128)).hex[:16])
        t0 = time.perf_counter()
        if route == "/api/invoices":
            invoices_page(conn, tenant, tag)
        elif route == "/api/orders/<id>":
            order_detail(conn, rng.randint(1, facts.max_order_id), tag)
        elif route == "/api/dashboard/analytics":
            dashboard(conn, tenant, tag)
        elif route == "/api/products":
            products_page(conn, tenant, tag)
        else:
            sales_report(conn, tenant, tag)
        elapsed = (time.perf_counter() - t0) * 1000
        result.requests[route] = result.requests.get(route, 0) + 1
        result.latencies_ms.setdefault(route, []).append(elapsed)
        if progress:
            progress(i + 1)
    result.seconds = time.perf_counter() - started
    return result
