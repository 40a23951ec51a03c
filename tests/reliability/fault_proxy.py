"""A fault-injecting HTTP proxy for an S3 emulator: errors, timeouts, dropped connections and slow answers at set rates.

Each request draws one number: below ``rates["error"]`` it gets a 503 ``SlowDown`` (not forwarded); then
``drop`` closes the connection without an answer (half the time after forwarding, so the request may
have taken effect: an ambiguous failure); then ``timeout`` holds the connection past the client's read
timeout; then ``slow`` delays a forwarded answer. Counts of requests and of each fault are kept.

A gate holds PUT requests (their bodies received, nothing forwarded yet) while it is closed: a test can
stop a writer mid-write, kill it, then let the held requests through (as a store does with a request it
has received from a client that died since).
"""

from __future__ import annotations

import collections
import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

FAULTS = ("error", "drop", "timeout", "slow")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection"}
_SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


class FaultProxy:
    """Forwards HTTP requests to ``127.0.0.1:target_port``, injecting faults; use as a context manager."""

    def __init__(self, target_port: int, rates: dict[str, float], *, hang_seconds: float = 3.0, seed: int = 0) -> None:
        self.target_port, self.rates, self.hang_seconds = target_port, dict(rates), hang_seconds
        self.counts: collections.Counter[str] = collections.Counter()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._puts_open = threading.Event()
        self._puts_open.set()
        self.held = 0  # PUT requests waiting at the closed gate right now
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FaultProxy:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.release_puts()
        self._server.shutdown()
        self._server.server_close()

    def hold_puts(self) -> None:
        """Close the gate: PUT requests wait (counted in ``held``) until :meth:`release_puts`."""
        self._puts_open.clear()

    def release_puts(self) -> None:
        """Open the gate: held PUT requests go on, and later ones pass."""
        self._puts_open.set()

    def _wait_at_gate(self) -> None:
        if self._puts_open.is_set():
            return
        with self._lock:
            self.held += 1
            self.counts["held"] += 1
        try:
            self._puts_open.wait()
        finally:
            with self._lock:
                self.held -= 1

    def _draw(self) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            roll = self._random.random()
            for fault in FAULTS:
                rate = self.rates.get(fault, 0.0)
                if roll < rate:
                    self.counts[fault] += 1
                    return fault
                roll -= rate
            return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: Any) -> None:
                pass

            def _proxy(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "PUT":
                    proxy._wait_at_gate()
                fault = proxy._draw()
                if fault == "error":
                    self._answer(503, {"Content-Type": "application/xml"}, _SLOW_DOWN)
                    return
                if fault == "timeout":
                    time.sleep(proxy.hang_seconds)
                    self.close_connection = True
                    return
                if fault == "drop" and proxy._random.random() < 0.5:
                    self.close_connection = True
                    return
                if fault == "slow":
                    time.sleep(0.3)
                status, headers, payload = self._forward(body)
                if fault == "drop":  # forwarded, then the answer is lost
                    self.close_connection = True
                    return
                self._answer(status, headers, payload)

            def _forward(self, body: bytes | None) -> tuple[int, dict[str, str], bytes]:
                connection = http.client.HTTPConnection("127.0.0.1", proxy.target_port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                    headers["Host"] = f"127.0.0.1:{proxy.target_port}"
                    connection.request(self.command, self.path, body=body, headers=headers)
                    response = connection.getresponse()
                    payload = response.read()
                    kept = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}}
                    return response.status, kept, payload
                finally:
                    connection.close()

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _proxy  # noqa: N815 - http.server's naming

        return Handler
