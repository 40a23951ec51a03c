"""The server's service layer, reached in-process (embedded) or over HTTP (remote), chosen by URL.

A *service URL* is either a SQLAlchemy database URL (``sqlite:///…``,
``postgresql+psycopg://…``: the service layer runs in this process) or a Kitaru
server's ``http(s)://`` URL (the same operations, over the server's API).
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["connect_reads", "connect_service", "is_remote"]


def is_remote(service_url: str) -> bool:
    return service_url.startswith(("http://", "https://"))


def connect_service(service_url: str, api_key: str | None = None) -> Any:
    """The process's service for ``service_url`` (created once per URL)."""
    if is_remote(service_url):
        from kitaru.client._http import http_service

        return http_service(service_url, api_key)
    from kitaru_server import service_for

    return service_for(service_url)


def connect_reads(service_url: str, api_key: str | None = None) -> Any:
    """What a read-only query goes through: the service, or, for an embedded SQLite database
    when this process has not loaded the service yet, plain reads that spare a short-lived
    process (a CLI query) the SQLAlchemy import. Both answer ``list_executions`` alike."""
    if not is_remote(service_url) and "kitaru_server.service" not in sys.modules:
        with _reads_lock:
            reads = _reads.get(service_url)
            if reads is None:
                from kitaru_server.sqlite_reads import open_reads

                reads = open_reads(service_url)
                if reads is not None:
                    _reads[service_url] = reads
        if reads is not None:
            return reads
    return connect_service(service_url, api_key)


_reads: dict[str, Any] = {}
_reads_lock = threading.Lock()
