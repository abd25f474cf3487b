"""A tiny HTTP target for the load-test fixtures: several endpoints, different latencies, errors.

Usage: python scripts/loadtest_target.py PORT  (binds 127.0.0.1 only; Ctrl-C or SIGTERM stops it).

Endpoints (latencies are deterministic per request number, so runs look alike):
  GET  /api/users          ~2-6 ms, always 200
  GET  /api/reports        ~20-80 ms, one request in 25 takes ~400 ms
  POST /api/orders         ~10-20 ms, one request in 10 answers 500
  GET  /api/orders         same as POST (for tools that only GET)
  GET  /api/search         ~5-15 ms, one request in 20 answers 503
  GET  /api/missing        404
  GET  /api/mixed          ~1-5 ms, one request in 40 takes 1.5 s (past a 1 s client timeout)
  GET  /                   200, 1 ms
"""

from __future__ import annotations

import itertools
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_COUNTERS: dict[str, itertools.count] = {}
_LOCK = threading.Lock()


def _next(path: str) -> int:
    with _LOCK:
        counter = _COUNTERS.setdefault(path, itertools.count(1))
        return next(counter)


def _jitter(n: int, low_ms: float, high_ms: float) -> float:
    # a cheap deterministic pseudo-random spread in [low, high)
    frac = ((n * 2654435761) % 1000) / 1000.0
    return (low_ms + (high_ms - low_ms) * frac) / 1000.0


def _plan(method: str, path: str) -> tuple[int, float]:
    """(status, seconds to sleep) for one request."""
    path = path.split("?", 1)[0]
    n = _next(f"{method} {path}")
    if path == "/api/users":
        return 200, _jitter(n, 2, 6)
    if path == "/api/reports":
        return 200, 0.4 if n % 25 == 0 else _jitter(n, 20, 80)
    if path == "/api/orders":
        return (500 if n % 10 == 0 else 201 if method == "POST" else 200), _jitter(n, 10, 20)
    if path == "/api/search":
        return (503 if n % 20 == 0 else 200), _jitter(n, 5, 15)
    if path == "/api/missing":
        return 404, 0.001
    if path == "/api/mixed":
        return 200, 1.5 if n % 40 == 0 else _jitter(n, 1, 5)
    if path == "/":
        return 200, 0.001
    return 404, 0.0


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as load tools expect
    wbufsize = 65536  # one write per answer (no 40 ms delayed-ACK stalls between header and body)
    disable_nagle_algorithm = True

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, delay = _plan(self.command, self.path)
        time.sleep(delay)
        body = b'{"ok": true}\n' if status < 400 else b'{"error": "boom"}\n'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):  # a client that timed out and left
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _answer

    def log_message(self, format, *args):  # noqa: A002 - keep the tools' output clean
        pass


def main(argv: list[str]) -> int:
    port = int(argv[1]) if len(argv) > 1 else 8089
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
