"""Errors as HTTP: each answers ``{"error": <type>, "message": <one sentence>, "fields": {...}}``.

Kitaru's own errors keep their type name, so the HTTP client raises the same
class the embedded service would. Database errors caused by the input (a
value too long for its column, a reference to an execution that does not
exist) are the caller's fault: 4xx, never 5xx.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException

from kitaru.errors import (
    KitaruConflictError,
    KitaruError,
    KitaruNotFoundError,
    KitaruStateError,
    KitaruUsageError,
)
from kitaru_server.api._common import JSON, AuthError, json_response
from kitaru_server.errors import PermissionDeniedError

__all__ = ["install_error_handlers", "status_of"]

_log = logging.getLogger("kitaru_server.api")
_STATUS = (
    (PermissionDeniedError, 403),
    (KitaruNotFoundError, 404),
    (KitaruConflictError, 409),
    (KitaruStateError, 409),
    (KitaruUsageError, 422),
)
_SCALARS = (str, int, float, bool, type(None))


def status_of(error: KitaruError) -> int:
    """The HTTP status of a Kitaru error (500 for runtime errors, which input never causes)."""
    return next((status for cls, status in _STATUS if isinstance(error, cls)), 500)


def _body(status: int, error: str, message: str, fields: dict[str, Any] | None = None) -> JSON:
    safe = {k: v for k, v in (fields or {}).items() if isinstance(v, _SCALARS)}
    return json_response({"error": error, "message": message, "fields": safe}, status_code=status)


async def _kitaru_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, KitaruError)
    return _body(status_of(exc), type(exc).__name__, exc.message, exc.fields)


async def _auth_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, AuthError)
    response = _body(exc.status_code, "KitaruAuthError", exc.message)
    if exc.status_code == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


async def _validation_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for error in exc.errors()[:5]:
        where = ".".join(str(part) for part in error.get("loc", ()))
        context = error.get("ctx", {}).get("error")
        problems.append(f"{where}: {error.get('msg')}{f' ({context})' if isinstance(context, str) else ''}")
    message = f"the request is invalid: {'; '.join(problems)}. Fix it as the API schema at /openapi.json describes."
    return _body(422, "KitaruUsageError", message)


async def _http_error(_request: Request, exc: Exception) -> JSON:
    assert isinstance(exc, HTTPException)
    response = _body(exc.status_code, "HTTPError", str(exc.detail))
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _database_error(_request: Request, exc: Exception) -> JSON:
    if isinstance(exc, sa_exc.IntegrityError):
        return _body(
            409,
            "KitaruConflictError",
            "the change conflicts with stored records (an unknown execution, or a duplicate); check the ids you sent.",
        )
    if isinstance(exc, sa_exc.OperationalError) and not _is_input_error(exc):
        _log.exception("database error")
        return _body(
            503,
            "KitaruBackendError",
            "the server's database is unavailable; retry shortly, and check the server's log if it lasts.",
        )
    return _body(422, "KitaruUsageError", f"the database refused a value: {_first_line(exc)}. Send shorter or simpler values.")


async def _unicode_error(_request: Request, exc: Exception) -> JSON:
    return _body(422, "KitaruUsageError", f"a string is not valid Unicode ({exc}); send UTF-8 text without lone surrogates.")


async def _unexpected(_request: Request, exc: Exception) -> JSON:
    _log.exception("unexpected error")
    return _body(
        500, "KitaruInternalError", f"the server failed ({type(exc).__name__}); retry, and report it with the server's log."
    )


def _is_input_error(exc: sa_exc.StatementError) -> bool:
    """SQLite reports a too-large value or a bad parameter as an OperationalError, not a DataError."""
    text = str(exc.orig) if exc.orig is not None else ""
    return isinstance(exc.orig, (OverflowError, ValueError, TypeError)) or "too large" in text or "too big" in text


def _first_line(exc: sa_exc.StatementError) -> str:
    text = (str(exc.orig) if exc.orig is not None else str(exc)).strip()
    return (text.splitlines() or ["unknown"])[0][:200]


def install_error_handlers(app: FastAPI) -> None:
    """Map every error a request can cause to a JSON body and a 4xx (5xx only for the server's own faults)."""
    app.add_exception_handler(KitaruError, _kitaru_error)
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(sa_exc.StatementError, _database_error)
    app.add_exception_handler(UnicodeError, _unicode_error)
    app.add_exception_handler(Exception, _unexpected)
