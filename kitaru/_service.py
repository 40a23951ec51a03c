"""The server's service layer, reached in-process (embedded) or over HTTP (remote), chosen by URL.

A *service URL* is either a SQLAlchemy database URL (``sqlite:///…``,
``postgresql+psycopg://…``: the service layer runs in this process) or a Kitaru
server's ``http(s)://`` URL (the same operations, over the server's API).
"""

from __future__ import annotations

from typing import Any

__all__ = ["connect_service", "is_remote"]


def is_remote(service_url: str) -> bool:
    return service_url.startswith(("http://", "https://"))


def connect_service(service_url: str, api_key: str | None = None) -> Any:
    """The process's service for ``service_url`` (created once per URL)."""
    if is_remote(service_url):
        from kitaru.client._http import http_service

        return http_service(service_url, api_key)
    from kitaru_server import service_for

    return service_for(service_url)
