"""A fake model endpoint for tests: a real HTTP server on loopback (no patched SDK).

It speaks the OpenAI chat-completions (``POST /v1/chat/completions``) and the
Anthropic messages (``POST /v1/messages``) wire formats, usage included, and
records every request it receives (path, headers, JSON body)::

    with FakeModelServer(reply="hello") as server:
        client.models.register("fake", model="openai/gpt-4o-mini", base_url=server.openai_base_url)
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeModelServer"]


class FakeModelServer:
    """An OpenAI- and Anthropic-compatible server answering with canned text.

    Args:
        reply: The answer's text, or a function of the request body returning it (default: ``"echo: <prompt>"``).
        input_tokens: Reported prompt tokens.
        output_tokens: Reported completion tokens.
    """

    def __init__(
        self, *, reply: str | Callable[[dict[str, Any]], str] | None = None, input_tokens: int = 12, output_tokens: int = 5
    ) -> None:
        self.reply = reply
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.requests: list[dict[str, Any]] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>`` (the Anthropic SDK's ``base_url``)."""
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def openai_base_url(self) -> str:
        """The OpenAI SDK's ``base_url`` (``<url>/v1``)."""
        return f"{self.url}/v1"

    anthropic_base_url = url

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` (a provider outage)."""
        with self._lock:
            self._failures.extend([status] * count)

    def start(self) -> FakeModelServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="kitaru-fake-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeModelServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- request handling (server threads) ------------------------------------------------------

    def _answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append({"path": path, "headers": headers, "body": body})
            failure = self._failures.pop(0) if self._failures else None
        anthropic = path.rstrip("/").endswith("/messages")
        if not anthropic and not path.rstrip("/").endswith("/chat/completions"):
            return 404, {"error": {"message": f"no route {path}", "type": "not_found"}}
        if failure is not None:
            if anthropic:
                return failure, {"type": "error", "error": {"type": "api_error", "message": "injected failure"}}
            return failure, {"error": {"message": "injected failure", "type": "server_error", "code": None}}
        text = self._text(body)
        if anthropic:
            return 200, {
                "id": f"msg_{uuid.uuid4().hex[:12]}",
                "type": "message",
                "role": "assistant",
                "model": body.get("model"),
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens},
            }
        return 200, {
            "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": self.input_tokens,
                "completion_tokens": self.output_tokens,
                "total_tokens": self.input_tokens + self.output_tokens,
            },
        }

    def _text(self, body: dict[str, Any]) -> str:
        if callable(self.reply):
            return self.reply(body)
        if self.reply is not None:
            return self.reply
        user = [m for m in body.get("messages", []) if m.get("role") == "user"]
        content = user[-1]["content"] if user else ""
        return f"echo: {content}" if isinstance(content, str) else "echo"


def _handler_for(server: FakeModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except json.JSONDecodeError:
                body = {}
            headers = {key.lower(): value for key, value in self.headers.items()}
            status, payload = server._answer(self.path, headers, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
            pass

    return Handler
