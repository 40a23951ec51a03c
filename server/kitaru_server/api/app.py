"""The FastAPI app: routers over the service layer, key checks, request guards, and errors as JSON."""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI

from kitaru.contracts.launch import Launcher
from kitaru.errors import KitaruUsageError
from kitaru_server.api import artifacts, deployments, executions, health, keys, llm, logs, runtime, stacks, waits
from kitaru_server.api._common import require_key
from kitaru_server.api._errors import install_error_handlers
from kitaru_server.api._guards import DEFAULT_MAX_BODY_BYTES, BodyLimit, BrowserGuard
from kitaru_server.service import KitaruService, service_for

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]

API_PREFIX = "/api/v1"
DATABASE_ENV = "KITARU_SERVER_DATABASE_URL"
AUTH_ENV = "KITARU_SERVER_AUTH"
LAUNCHER_ENV = "KITARU_SERVER_LAUNCHER"
STORAGE_ENV = "KITARU_SERVER_STORAGE_URL"
STORAGE_OPTIONS_ENV = "KITARU_SERVER_STORAGE_OPTIONS"
MAX_BODY_ENV = "KITARU_SERVER_MAX_BODY_BYTES"


def create_app(
    database_url: str | None = None,
    *,
    service: KitaruService | None = None,
    auth: bool = True,
    storage_url: str | None = None,
    storage_options: dict[str, Any] | None = None,
    max_body_bytes: int | None = None,
    launcher: Launcher | None = None,
) -> FastAPI:
    """The Kitaru server's ASGI app over ``service`` (or the service for ``database_url``).

    Args:
        database_url: A SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``); migrated on start.
        service: An existing service to serve instead (``app.state.service``; set it later when neither is given).
        auth: Require an API key on every route but ``/health`` and ``/ready``.
        storage_url: The storage of the ``default`` stack (executions on it must store there); default
            ``KITARU_SERVER_STORAGE_URL``, else ``KITARU_STORAGE_URL``, else ``storage/`` under ``KITARU_HOME``.
        storage_options: Its fsspec options (default ``KITARU_SERVER_STORAGE_OPTIONS``, JSON).
        max_body_bytes: The largest request body (default ``KITARU_SERVER_MAX_BODY_BYTES``, else 10 MiB); 413 beyond.
        launcher: Starts drivers for the UI's resume, retry and replay (without one they answer 501).
    """
    if service is None and database_url is not None:
        service = service_for(database_url)
    from kitaru_server import __version__

    app = FastAPI(
        title="Kitaru server",
        version=__version__,
        description="Durable execution for AI agents: executions, waits, logs, artifacts, models, secrets and API keys.",
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.state.auth = auth
    app.state.storage = _default_storage(storage_url, storage_options)
    app.state.launcher = launcher
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (executions, runtime, waits, logs, artifacts, llm, stacks, deployments):
        app.include_router(module.router, dependencies=[Depends(require_key)])
    app.include_router(keys.router, dependencies=[Depends(require_key)])
    app.include_router(keys.admin_router, dependencies=[Depends(require_key)])
    from kitaru_server.ui import router as ui_router  # here: the UI imports the API's helpers

    app.include_router(ui_router)  # the web UI: its pages check the key themselves (the login page is open)
    app.add_middleware(BrowserGuard)
    app.add_middleware(BodyLimit, max_bytes=_max_body_bytes(max_body_bytes))
    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (each worker process builds its own): configured by the environment.

    ``KITARU_SERVER_DATABASE_URL`` is the database; ``KITARU_SERVER_AUTH=0`` turns auth off;
    ``KITARU_SERVER_STORAGE_URL`` and ``KITARU_SERVER_MAX_BODY_BYTES`` as in :func:`create_app`.
    ``KITARU_SERVER_LAUNCHER=module:factory`` names the launcher's factory (called with the database URL),
    chosen by whatever starts the server.
    """
    database_url = os.environ.get(DATABASE_ENV)
    if not database_url:
        raise RuntimeError(f"{DATABASE_ENV} is not set; start the server with `kitaru server start`.")
    factory = os.environ.get(LAUNCHER_ENV)
    launcher = _load(factory)(database_url) if factory else None
    return create_app(database_url, auth=os.environ.get(AUTH_ENV, "1") != "0", launcher=launcher)


def _load(reference: str) -> Callable[[str], Any]:
    """The object ``module:name`` refers to (the composition root names it; the server imports no backend itself)."""
    module, _, name = reference.partition(":")
    if not module or not name:
        raise RuntimeError(f"{LAUNCHER_ENV}={reference!r} is not MODULE:NAME.")
    return getattr(importlib.import_module(module), name)


def _default_storage(url: str | None, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The ``default`` stack's storage: server-side configuration, never a client's choice."""
    if url is None:
        url = os.environ.get(STORAGE_ENV)
        if url and options is None:
            options = json.loads(os.environ.get(STORAGE_OPTIONS_ENV) or "{}")
    if url is None:  # as the embedded configuration defaults it (the composition root may pass its own)
        url = os.environ.get("KITARU_STORAGE_URL")
        if url and options is None:
            options = json.loads(os.environ.get("KITARU_STORAGE_OPTIONS") or "{}")
    if url is None:
        home = os.environ.get("KITARU_HOME") or Path.home() / ".kitaru"
        url = (Path(home).expanduser().resolve() / "storage").as_uri()
    return url, dict(options or {})


def _max_body_bytes(given: int | None) -> int:
    if given is not None:
        return given
    raw = os.environ.get(MAX_BODY_ENV)
    if raw is None:
        return DEFAULT_MAX_BODY_BYTES
    if not raw.isdigit() or int(raw) < 1024:
        raise KitaruUsageError(f"{MAX_BODY_ENV} must be a number of bytes of at least 1024, not {raw!r}.")
    return int(raw)
