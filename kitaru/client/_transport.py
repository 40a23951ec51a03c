"""HTTP transport to a Kitaru server: one pooled httpx client, errors mapped back to Kitaru's own, retries.

The server answers errors as ``{"error": <type>, "message": ..., "fields": {...}}``;
a Kitaru error type is raised as that class (so ``KitaruConflictError`` from a
lost race is the same exception embedded and remote). Transport failures are
:class:`~kitaru.errors.KitaruBackendError` naming the server's URL.

Requests a runtime makes (commits, lease renewals, polls) are idempotent and
ride out a server outage: they retry with backoff for up to
``KITARU_SERVER_RETRY_SECONDS`` (default 120 s, e.g. a server restart), so a
flow keeps running while its server restarts. Everything else fails fast.
"""

from __future__ import annotations

import os
import random
import time
from typing import Any
from urllib.parse import quote

import kitaru.errors as errors

__all__ = ["CONNECT_TIMEOUT", "Transport", "segment"]

CONNECT_TIMEOUT = 3.0  # an unreachable server fails within this, naming its URL
READ_TIMEOUT = 60.0
RETRY_ENV = "KITARU_SERVER_RETRY_SECONDS"
RETRY_BUDGET = 120.0  # seconds an idempotent request keeps retrying a transient failure (a server restart)
_TRANSIENT_STATUSES = (502, 503, 504)
_BY_STATUS = {
    400: errors.KitaruUsageError,
    404: errors.KitaruNotFoundError,
    409: errors.KitaruConflictError,
    422: errors.KitaruUsageError,
}


def segment(value: str) -> str:
    """A path parameter, escaped (ids may hold any character)."""
    return quote(str(value), safe="")


class Transport:
    """Sends requests to ``<url>/api/v1``; thread-safe (httpx pools connections across threads)."""

    def __init__(self, url: str, api_key: str | None) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.api_key = api_key
        headers = {"User-Agent": "kitaru-client"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(
            base_url=f"{self.url}/api/v1",
            headers=headers,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16),
        )

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        retry: bool = False,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Send one request and return its decoded JSON; ``retry`` (idempotent requests only) rides out transient failures.

        Raises:
            KitaruError: the server's error, as its own class (401/403: a usage error about the key).
            KitaruBackendError: the server is unreachable or failed.
        """
        import httpx

        params = {k: v for k, v in (params or {}).items() if v is not None}
        deadline = time.monotonic() + retry_budget()
        delay = 0.05
        while True:
            try:
                response = self._client.request(method, path, params=params, json=json, headers=headers)
            except httpx.TransportError as exc:
                if retry and time.monotonic() + delay < deadline:
                    delay = _sleep(delay)
                    continue
                raise self._transport_error(exc) from None
            if retry and response.status_code in _TRANSIENT_STATUSES and time.monotonic() + delay < deadline:
                delay = _sleep(delay)
                continue
            return self._decode(response)

    def _decode(self, response: Any) -> Any:
        if response.status_code < 400:
            return response.json() if response.content else None
        try:
            body = response.json()
            kind, message, fields = body.get("error"), body.get("message") or "", body.get("fields") or {}
        except (ValueError, AttributeError):
            kind, message, fields = None, response.text[:200], {}
        raise self._error(response.status_code, kind, message, fields)

    def _error(self, status: int, kind: str | None, message: str, fields: dict[str, Any]) -> errors.KitaruError:
        if status == 401:
            if not self.api_key:
                return errors.KitaruUsageError(
                    f"the Kitaru server at {self.url} requires an API key; pass api_key=, set "
                    "KITARU_API_KEY, or run `kitaru login`."
                )
            return errors.KitaruUsageError(
                f"the Kitaru server at {self.url} refused the API key (wrong, rotated or revoked); "
                "set a valid key with KITARU_API_KEY or kitaru.connect(url, api_key=...)."
            )
        if status == 403:
            return errors.KitaruUsageError(f"the Kitaru server at {self.url} refused this: {message}")
        fields = {k: v for k, v in fields.items() if isinstance(k, str) and k.isidentifier() and k != "message"}
        cls = getattr(errors, kind or "", None)
        if isinstance(cls, type) and issubclass(cls, errors.KitaruError):
            return cls(message, **fields)
        if kind is None and status < 500:
            return errors.KitaruBackendError(
                f"{self.url} is not a Kitaru server (it answered HTTP {status} without a Kitaru error); "
                "check KITARU_SERVER_URL or the URL given to kitaru.connect().",
                status_code=status,
            )
        if status in _BY_STATUS:
            return _BY_STATUS[status](message, **fields)
        return errors.KitaruBackendError(
            f"the Kitaru server at {self.url} failed ({status}: {message or 'no detail'}); retry, and "
            "check the server's log if it lasts.",
            status_code=status,
        )

    def _transport_error(self, exc: Exception) -> errors.KitaruBackendError:
        import httpx

        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError):
            what = f"cannot reach the Kitaru server at {self.url} ({type(exc).__name__}: {exc})"
            hint = "check that it runs (`kitaru server status`) and that KITARU_SERVER_URL is right."
        elif isinstance(exc, httpx.TimeoutException):
            what = f"the Kitaru server at {self.url} did not answer within {READ_TIMEOUT:g} s"
            hint = "retry, and check the server's load and log."
        else:
            what = f"the connection to the Kitaru server at {self.url} failed ({type(exc).__name__}: {exc})"
            hint = "retry, and check the network and the server's log."
        return errors.KitaruBackendError(f"{what}; {hint}", url=self.url)


def retry_budget() -> float:
    """Seconds an idempotent request keeps retrying: ``KITARU_SERVER_RETRY_SECONDS``, default 120.

    Raises:
        KitaruUsageError: the variable is not a number of seconds.
    """
    raw = os.environ.get(RETRY_ENV)
    if raw is None:
        return RETRY_BUDGET
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 86_400:
        raise errors.KitaruUsageError(f"{RETRY_ENV} must be a number of seconds between 0 and 86400, not {raw!r}.")
    return value


def _sleep(delay: float) -> float:
    """Sleep ``delay`` (with jitter) and return the next, doubled delay (at most 2 s)."""
    time.sleep(delay * random.uniform(0.5, 1.0))
    return min(delay * 2, 2.0)
