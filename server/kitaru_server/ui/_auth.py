"""The UI's key check: the API's own (:func:`~kitaru_server.api._common.require_key`, which also reads the login cookie).

A browser asking for a page without a valid key is sent to the login page; any
other client gets the API's 401. The login page stores the key in an HttpOnly,
SameSite=Strict cookie: scripts cannot read it and other sites cannot send it.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from kitaru_server.api._common import KEY_COOKIE, AuthError, require_key

__all__ = ["KEY_COOKIE", "COOKIE_SECONDS", "caller_token", "safe_next", "ui_caller"]

COOKIE_SECONDS = 7 * 24 * 3600
_bearer = HTTPBearer(auto_error=False)


async def ui_caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None
) -> dict[str, Any]:
    """The caller's key record; a browser without a valid key is redirected (303) to ``/login?next=<this page>``."""
    try:
        return await require_key(request, credentials)
    except AuthError as exc:
        if exc.status_code != 401 or request.method != "GET" or "text/html" not in request.headers.get("accept", ""):
            raise
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise HTTPException(
            303, "sign in with an API key first", headers={"Location": f"/login?next={quote(target, safe='')}"}
        ) from None


def caller_token(request: Request) -> str | None:
    """The raw key the caller sent (bearer header, else the login cookie): detached drivers report with it."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return request.cookies.get(KEY_COOKIE)


def safe_next(target: str | None) -> str:
    """A local path to go to after signing in (never another site)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/executions"
    parts = urlsplit(target)
    return "/executions" if parts.scheme or parts.netloc else target
