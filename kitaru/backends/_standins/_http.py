"""A small JSON-over-HTTP server for the stand-ins: one ``handle(method, path, query, body, headers)`` callback."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = ["JsonServer"]

Handler = Callable[[str, str, dict[str, str], Any, Mapping[str, str]], tuple[int, Any]]


class JsonServer:
    """Serves ``handle`` on a loopback port until :meth:`close`."""

    def __init__(self, handle: Handler, *, content_type: str = "application/json") -> None:
        self._handle = handle
        self._content_type = content_type
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, name="standin-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                query = {key: values[-1] for key, values in parse_qs(url.query).items()}
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    code, payload = 400, {"message": "the request body is not JSON"}
                else:
                    code, payload = server._handle(self.command, url.path, query, body, self.headers)
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", server._content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

        return Handler
