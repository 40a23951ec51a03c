"""Checks every request passes before a route sees it: body size, the Host of a server without auth, and browser origin.

Pure ASGI middleware (no per-request task or body copy):

- :class:`BodyLimit` answers 413 to a body over the limit, from its
  ``Content-Length`` before reading it, else while reading it (chunked bodies
  included), so an oversized body is never held in memory whole.
- :class:`BrowserGuard` answers 403 when a server without auth is reached by a
  ``Host`` name that is not loopback (a DNS-rebinding page), when a
  state-changing request comes from another origin (``Origin`` is not this
  server), and when one authenticated by the login cookie lacks the CSRF token
  the pages send (``X-Kitaru-CSRF``). Clients that send their key in the
  ``Authorization`` header are no browser's ambient credential: they need no token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from typing import Any
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.requests import cookie_parser

__all__ = ["CSRF_HEADER", "DEFAULT_MAX_BODY_BYTES", "BodyLimit", "BrowserGuard", "csrf_token", "is_loopback_host"]

DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024
CSRF_HEADER = "x-kitaru-csrf"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOKEN_EXEMPT = frozenset({"/login", "/logout"})  # signing in has no cookie yet; signing out harms no one
_KEY_COOKIE = "kitaru_api_key"


def csrf_token(cookie_key: str) -> str:
    """The CSRF token of a login cookie: pages embed it; only a page of this server (which saw the cookie) knows it."""
    return hmac.new(cookie_key.encode("utf-8", "surrogatepass"), b"kitaru-csrf", hashlib.sha256).hexdigest()[:32]


def is_loopback_host(host: str) -> bool:
    """Whether a ``Host`` header names this machine's loopback (``localhost``, 127.0.0.0/8, ``[::1]``), any port."""
    name = host.strip().lower()
    if name.startswith("["):
        name = name[1 : name.find("]")] if "]" in name else name[1:]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class _TooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"the request body is larger than this server's limit of {limit} bytes; send less "
            "(split batches, keep metadata small) or raise KITARU_SERVER_MAX_BODY_BYTES on the server.",
        )


class BodyLimit:
    """413 for a request body over ``max_bytes`` (by ``Content-Length``, or counted while it is read)."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _reject(send, _TooLarge(limit) if declared.isdigit() else HTTPException(400, "Content-Length is not a number."))
            return
        received = 0
        started = False

        async def counted() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(limit)
            return message

        async def tracked(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge as exc:  # raised where no handler turned it into a response
            if started:
                raise
            await _reject(send, exc)


class BrowserGuard:
    """403 for a non-loopback ``Host`` without auth, a cross-origin state change, or a cookie request without its token."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = _problem(scope)
        if problem is not None:
            await _reject(send, HTTPException(403, problem))
            return
        await self.app(scope, receive, send)


def _problem(scope: dict[str, Any]) -> str | None:
    host = _header(scope, b"host") or ""
    if not scope["app"].state.auth and not is_loopback_host(host):
        return (
            f"this server runs without API keys and answers only loopback host names (localhost, 127.0.0.1, [::1]), "
            f"not {host[:100]!r}; reach it as http://127.0.0.1:<port>, or start it with auth on."
        )
    if scope["method"] in _SAFE_METHODS:
        return None
    origin = _header(scope, b"origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() != host.lower()):
        return (
            f"a state-changing request from another origin ({origin[:100]!r}) is refused; "
            "use the server's own pages, or a client that sends its key in the Authorization header."
        )
    if _header(scope, b"authorization") is None and scope["path"] not in _TOKEN_EXEMPT:
        cookie = _cookie(scope, _KEY_COOKIE)
        if cookie and not hmac.compare_digest(_header(scope, CSRF_HEADER.encode()) or "", csrf_token(cookie)):
            return (
                "a request authenticated by the login cookie needs the page's CSRF token (the X-Kitaru-CSRF header); "
                "reload the page and try again."
            )
    return None


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _cookie(scope: dict[str, Any], name: str) -> str | None:
    raw = _header(scope, b"cookie")
    return cookie_parser(raw).get(name) if raw else None  # parsed as the key check parses it


async def _reject(send: Any, error: HTTPException) -> None:
    body = json.dumps(
        {"error": "KitaruAuthError" if error.status_code == 403 else "HTTPError", "message": error.detail, "fields": {}}
    )
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
