"""The FastAPI app: routers over the service layer, key checks, and errors as JSON."""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI

from kitaru_server.api import artifacts, deployments, executions, health, keys, llm, logs, runtime, stacks, waits
from kitaru_server.api._common import require_key
from kitaru_server.api._errors import install_error_handlers
from kitaru_server.service import KitaruService, service_for

__all__ = ["API_PREFIX", "app_from_environment", "create_app"]

API_PREFIX = "/api/v1"
DATABASE_ENV = "KITARU_SERVER_DATABASE_URL"
AUTH_ENV = "KITARU_SERVER_AUTH"


def create_app(database_url: str | None = None, *, service: KitaruService | None = None, auth: bool = True) -> FastAPI:
    """The Kitaru server's ASGI app over ``service`` (or the service for ``database_url``).

    Args:
        database_url: A SQLAlchemy URL (``sqlite:///…``, ``postgresql+psycopg://…``); migrated on start.
        service: An existing service to serve instead (``app.state.service``; set it later when neither is given).
        auth: Require an API key on every route but ``/health`` and ``/ready``.
    """
    if service is None and database_url is not None:
        service = service_for(database_url)
    from kitaru import __version__

    app = FastAPI(
        title="Kitaru server",
        version=__version__,
        description="Durable execution for AI agents: executions, waits, logs, artifacts, models, secrets and API keys.",
        openapi_url="/openapi.json",
    )
    app.state.service = service
    app.state.auth = auth
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (executions, runtime, waits, logs, artifacts, llm, stacks, deployments):
        app.include_router(module.router, dependencies=[Depends(require_key)])
    app.include_router(keys.router, dependencies=[Depends(require_key)])
    app.include_router(keys.admin_router, dependencies=[Depends(require_key)])
    from kitaru_server.ui import router as ui_router  # here: the UI imports the API's helpers

    app.include_router(ui_router)  # the web UI: its pages check the key themselves (the login page is open)
    return app


def app_from_environment() -> FastAPI:
    """The app for ``uvicorn --factory`` (each worker process builds its own): configured by the environment.

    ``KITARU_SERVER_DATABASE_URL`` is the database; ``KITARU_SERVER_AUTH=0`` turns auth off.
    """
    database_url = os.environ.get(DATABASE_ENV)
    if not database_url:
        raise RuntimeError(f"{DATABASE_ENV} is not set; start the server with `kitaru server start`.")
    return create_app(database_url, auth=os.environ.get(AUTH_ENV, "1") != "0")
