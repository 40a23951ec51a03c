"""The warm local Ray's supervisor counts a dashboard that asks for Ray's token as up.

Ray 2.60 turns token auth on by default: its dashboard then answers 401 to a request without
the token. A supervisor that waited for a 200 would never record the head, and every run would
wait for it until its start-up timeout.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from kitaru.runtime import warm


@pytest.fixture
def answering() -> Iterator[dict[str, int]]:
    """A loopback HTTP server answering every GET with the status in ``answering["status"]``."""
    answer = {"status": 200}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            self.send_response(answer["status"])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    answer["port"] = server.server_address[1]
    try:
        yield answer
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "up"), [(200, True), (401, True), (403, True), (404, False), (503, False)])
def test_dashboard_readiness(answering: dict[str, int], status: int, up: bool) -> None:
    answering["status"] = status
    assert warm._http_ok(f"http://127.0.0.1:{answering['port']}/api/version") is up


def test_nothing_listening_is_not_up() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert warm._http_ok(f"http://127.0.0.1:{port}/api/version") is False
