"""Jinja2 templates (package data next to this module) and the HTML responses built from them."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from starlette.responses import HTMLResponse

from kitaru_server.ui import _format

__all__ = ["STATIC", "TEMPLATES", "asset_version", "html_page", "render"]

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
# Everything the pages load comes from this server: no CDN, no inline scripts.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


@functools.cache
def _environment() -> Any:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.globals.update(
        timestamp=_format.timestamp,
        iso=_format.iso,
        duration=_format.duration,
        size=_format.size,
        status_class=_format.status_class,
        json_pretty=_format.json_pretty,
        asset=asset_url,
    )
    return env


def render(template: str, **context: Any) -> str:
    """A template rendered with ``context`` (values are escaped unless marked safe)."""
    return _environment().get_template(template).render(**context)


def html_page(template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A full page: the template, with the UI's security headers."""
    return HTMLResponse(render(template, **context), status_code=status_code, headers=SECURITY_HEADERS)


@functools.cache
def asset_version(name: str) -> str:
    """A digest of a static file, so its URL changes when it does (and browsers may cache it)."""
    return hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]


def asset_url(name: str) -> str:
    return f"/ui/static/{name}?v={asset_version(name)}"
