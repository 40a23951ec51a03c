"""What every route module shares: the service and caller dependencies, pagination, strict JSON in and out."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from kitaru_server.service import KitaruService

__all__ = [
    "ERROR_RESPONSES",
    "AuthError",
    "Caller",
    "JSON",
    "Page",
    "Service",
    "StrictJSONRoute",
    "UnicodeJSONRoute",
    "json_response",
    "require_admin",
    "require_key",
    "require_runtime",
    "KEY_COOKIE",
]

MAX_PAGE = 1000
KEY_COOKIE = "kitaru_api_key"  # the web UI's login keeps the key in this cookie (HttpOnly, SameSite=Strict)
_bearer = HTTPBearer(auto_error=False, scheme_name="ApiKey", description="A Kitaru API key: `Authorization: Bearer ktr_...`.")
# Every anonymous caller (auth off, loopback only) may do everything, like the embedded service.
_ANONYMOUS = {"key_id": None, "name": "anonymous", "kind": "service_account", "admin": True, "continue_others": True}


class JSON(JSONResponse):
    """JSON that is always valid: no NaN or Infinity, non-ASCII escaped (stored text may hold lone surrogates)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=False, separators=(",", ":")).encode("ascii")


def json_response(content: Any, status_code: int = 200) -> JSON:
    return JSON(content, status_code=status_code)


def _reject_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not valid JSON; send numbers only", name, 0)


# A lone UTF-16 surrogate: escaped (\ud800-\udfff) or as raw (CESU-style) bytes. Pairs are valid and parse to one character.
_MAYBE_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|\xed[\xa0-\xbf]")


def _reject_surrogates(value: Any, document: str) -> None:
    """Refuse text that is not valid Unicode (a lone surrogate): the database and every page would choke on it later."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise json.JSONDecodeError(
                    f"a string is not valid Unicode (a lone surrogate near {item[max(exc.start - 20, 0) : exc.start]!r}); "
                    "send UTF-8 text",
                    document,
                    0,
                ) from None
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


class _StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            value = json.loads(body, parse_constant=_reject_constant)
            if _MAYBE_SURROGATE.search(body):
                _reject_surrogates(value, "")
            self._json = value
        return self._json


class UnicodeJSONRoute(APIRoute):
    """A route whose JSON body must be valid Unicode and hold numbers only (no ``NaN``/``Infinity``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked_handler(request: Request) -> Response:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return checked_handler


class StrictJSONRoute(APIRoute):
    """A strict route: no ``NaN``/``Infinity`` in its JSON body (Python's parser accepts them, JSON does not), and no
    query parameter it does not declare (a misspelt filter must not silently widen a listing)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared = _query_names(self.dependant)

        async def strict_handler(request: Request) -> Response:
            unknown = sorted(set(request.query_params) - declared)
            if unknown:
                takes = ", ".join(sorted(declared)) or "none"
                raise RequestValidationError(
                    [
                        {
                            "type": "extra_forbidden",
                            "loc": ("query", unknown[0]),
                            "input": unknown[0],
                            "msg": f"unknown query parameter (this route takes: {takes})",
                        }
                    ]
                )
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict_handler


def _query_names(dependant: Any) -> set[str]:
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


class AuthError(Exception):
    """A request without a valid key (401) or with a key that may not do this (403)."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message


async def get_service(request: Request) -> KitaruService:  # async: no thread for what does no I/O
    return request.app.state.service


Service = Annotated[KitaruService, Depends(get_service)]


async def require_key(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None
) -> dict[str, Any]:
    """The caller's key record (the bearer key, else the web UI's login cookie); 401 when auth is on and the key is
    missing, unknown or revoked.

    A key verified a moment ago is taken from memory; only the others are read from the database (in a thread).
    """
    if not request.app.state.auth:
        return _ANONYMOUS
    token = credentials.credentials if credentials is not None else request.cookies.get(KEY_COOKIE)
    if not token:
        raise AuthError(
            401,
            "this server requires an API key; send it as `Authorization: Bearer <key>` "
            "(kitaru login --api-key, or KITARU_API_KEY).",
        )
    service = request.app.state.service
    key = service.recently_verified_key(token)
    if key is None:
        key = await run_in_threadpool(service.verify_api_key, token)
    if key is None:
        raise AuthError(401, "the API key was refused (unknown, rotated or revoked); ask an admin for a valid key.")
    return key


Caller = Annotated[dict[str, Any], Depends(require_key)]


def require_admin(request: Request, caller: Caller) -> dict[str, Any]:
    """403 unless the caller's key is an admin key (keys, stacks, model aliases and secrets are written by admins)."""
    if not caller["admin"]:
        raise AuthError(
            403,
            f"key {caller['name']!r} is not an admin key; {request.method} {request.url.path} needs one "
            "(admins write keys, stacks, model aliases and secrets; other keys read their names).",
        )
    return caller


def require_runtime(caller: Caller) -> dict[str, Any]:
    """403 unless the caller is a service account: secret values go only to runtimes' model calls."""
    if caller["kind"] != "service_account":
        raise AuthError(
            403,
            f"key {caller['name']!r} may not read secret values: only runtimes do, with a service-account key "
            "(run flows that use secrets with KITARU_API_KEY set to one).",
        )
    return caller


@dataclasses.dataclass
class Page:
    """``limit``/``offset`` query parameters; lists answer ``{"items": [...], "next_offset": n | null}``."""

    limit: int = Query(50, ge=1, le=MAX_PAGE, description="At most this many items.")
    offset: int = Query(0, ge=0, le=10**9, description="Skip this many items.")

    def respond(self, rows: list[Any]) -> JSON:
        """Rows the service already paginated."""
        next_offset = self.offset + len(rows) if len(rows) == self.limit else None
        return json_response({"items": rows, "next_offset": next_offset})

    def slice(self, rows: list[Any]) -> JSON:
        """Rows of a service method that returns them all."""
        window = rows[self.offset : self.offset + self.limit]
        next_offset = self.offset + len(window) if self.offset + len(window) < len(rows) else None
        return json_response({"items": window, "next_offset": next_offset})


_ERROR_BODY = {
    "application/json": {
        "schema": {
            "type": "object",
            "required": ["error", "message"],
            "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "fields": {"type": "object"}},
        }
    }
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body could not be parsed.", "content": _ERROR_BODY},
    401: {"description": "Missing or refused API key.", "content": _ERROR_BODY},
    403: {"description": "The key may not do this.", "content": _ERROR_BODY},
    404: {"description": "No such execution, wait, artifact, model, secret or key.", "content": _ERROR_BODY},
    409: {"description": "A conflict: a lost race, or a state that does not allow this.", "content": _ERROR_BODY},
    413: {"description": "The request body is over the server's limit (KITARU_SERVER_MAX_BODY_BYTES).", "content": _ERROR_BODY},
    422: {"description": "Invalid input (the message says what is wrong).", "content": _ERROR_BODY},
}
