"""The demo shop's HTTP API: a threaded stdlib server on 127.0.0.1 over the shop's tables.

``DemoApp(dsn).start()`` serves the routes of ``perfkit.demo.shop`` in a background thread; ``stop()`` shuts it down.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import queue
import re
import threading
import uuid
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import psycopg

from perfkit.demo import shop
from perfkit.errors import BadInputError

LOOPBACK = "127.0.0.1"
_ORDER_PATH = re.compile(r"^/api/orders/(\d+)$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class ConnectionPool:
    """A fixed set of autocommit psycopg connections, opened on first use and shared by request threads.

    Parameters
    ----------
    dsn:
        Where the shop lives (the app's role).
    size:
        At most this many connections; a request waits for a free one (like a real app's pool).
    """

    def __init__(self, dsn: str, size: int = 8, *, timeout: float = 30.0):
        self.dsn = dsn
        self.size = size
        self.timeout = timeout
        self._idle: queue.LifoQueue = queue.LifoQueue()
        self._opened = 0
        self._all: list[psycopg.Connection] = []
        self._lock = threading.Lock()
        self.closed = False

    def _open(self) -> psycopg.Connection:
        # parameters bound on the client, as Django does: the server logs each statement as run
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=10, application_name="shop",
                               cursor_factory=psycopg.ClientCursor)
        return conn

    @contextmanager
    def connection(self):
        """Borrow a connection; a broken one is closed and replaced on the next borrow."""
        conn = None
        with self._lock:
            if self._idle.empty() and self._opened < self.size:
                self._opened += 1
                opening = True
            else:
                opening = False
        if opening:
            try:
                conn = self._open()
            except BaseException:
                with self._lock:
                    self._opened -= 1
                raise
            with self._lock:
                self._all.append(conn)
        else:
            conn = self._idle.get(timeout=self.timeout)
        try:
            yield conn
        finally:
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                with self._lock:
                    self._opened -= 1
                    if conn in self._all:
                        self._all.remove(conn)
                conn.close()
            elif self.closed:
                conn.close()
            else:
                self._idle.put(conn)

    def close(self) -> None:
        self.closed = True
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


def _jsonable(value):
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: a load-test user reuses its connection
    server_version = "perfkit-demo-shop/1"
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        # the access log would be noise on the demo's stderr; Locust records every request
        return

    def do_GET(self):  # noqa: N802 - the stdlib's name
        parts = urlsplit(self.path)
        params = parse_qs(parts.query)
        request_id = self.headers.get("X-Request-Id", "")
        if not _REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex[:16]
        try:
            route, body = self.server.app.dispatch(parts.path, params, request_id)
        except _HttpError as err:
            self._send(err.status, {"error": err.message}, request_id)
            return
        except psycopg.Error as err:
            self._send(500, {"error": type(err).__name__}, request_id)
            return
        self._send(200, {"route": route, "data": body}, request_id)

    def _send(self, status: int, payload: dict, request_id: str) -> None:
        data = json.dumps(_jsonable(payload)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Request-Id", request_id)
        self.end_headers()
        self.wfile.write(data)


class _HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # the stdlib's backlog of 5 drops connections when many users connect at once: their
    # retried SYN then costs a second, which would show up as a latency spike
    request_queue_size = 128
    app: DemoApp


def _tenant(params: dict) -> int:
    values = params.get("tenant") or []
    if not values or not values[0].isdigit():
        raise _HttpError(400, "tenant=<id> is required")
    return int(values[0])


class DemoApp:
    """The shop's API on ``127.0.0.1``, its SQL tagged with sqlcommenter comments (application, route, request_id).

    Routes: ``/api/invoices?tenant=``, ``/api/orders/<id>``, ``/api/dashboard/analytics?tenant=``,
    ``/api/products?tenant=``, ``/api/reports/sales?tenant=`` and ``/health``.

    Parameters
    ----------
    dsn:
        The shop's database, as the app's role.
    port:
        A TCP port on 127.0.0.1; a free one when 0.
    pool_size:
        Database connections shared by the request threads.

    Examples
    --------
    >>> with DemoApp(dsn) as app:                                   # doctest: +SKIP
    ...     urllib.request.urlopen(app.url + "/api/invoices?tenant=1").read()
    """

    def __init__(self, dsn: str, *, port: int = 0, pool_size: int = 8):
        self.dsn = dsn
        self.port = port
        self.pool = ConnectionPool(dsn, pool_size)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise BadInputError("the demo app is not running")
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def start(self) -> DemoApp:
        """Bind 127.0.0.1 and serve in a background thread; returns self."""
        if self._server is not None:
            return self
        self._server = _Server((LOOPBACK, self.port), _Handler)
        self._server.app = self
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="perfkit-demo-app", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wait for the server thread, close the database connections; safe twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            if self._thread is not None:
                self._thread.join(timeout=10)
            self._server = None
            self._thread = None
        self.pool.close()

    def __enter__(self) -> DemoApp:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def dispatch(self, path: str, params: dict, request_id: str):
        """Run one request: returns ``(route, body)`` or raises an HTTP error (400, 404)."""
        if path == "/health":
            with self.pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()
            return "/health", "ok"
        match = _ORDER_PATH.match(path)
        route = "/api/orders/<id>" if match else path
        handlers = {
            "/api/invoices": lambda conn, tag: shop.invoices_page(conn, _tenant(params), tag),
            "/api/dashboard/analytics": lambda conn, tag: shop.dashboard(conn, _tenant(params), tag),
            "/api/products": lambda conn, tag: shop.products_page(conn, _tenant(params), tag),
            "/api/reports/sales": lambda conn, tag: shop.sales_report(conn, _tenant(params), tag),
        }
        if match:
            handlers[route] = lambda conn, tag: shop.order_detail(conn, int(match.group(1)), tag)
        handler = handlers.get(route)
        if handler is None:
            raise _HttpError(404, f"no route {path}")
        tag = shop.comment(route, request_id)
        with self.pool.connection() as conn:
            body = handler(conn, tag)
        if body is None:
            raise _HttpError(404, f"not found: {path}")
        return route, body
