"""Liveness and readiness (no key needed)."""

from __future__ import annotations

from fastapi import APIRouter

from kitaru_server.api._common import JSON, Service, json_response

router = APIRouter(tags=["health"])


@router.get("/health", summary="The process is up")
def health() -> JSON:
    return json_response({"status": "ok"})


@router.get(
    "/ready",
    summary="The database is reachable (503 otherwise)",
    responses={503: {"description": "The database is unreachable."}},
)
def ready(service: Service) -> JSON:
    reachable = service.ping()
    return json_response(
        {"status": "ready" if reachable else "unavailable", "database": reachable}, status_code=200 if reachable else 503
    )
