"""Artifacts: list, get by id, find by execution and name (metadata only: values stay in storage)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Page, Service, StrictJSONRoute, json_response

router = APIRouter(prefix="/api/v1", tags=["artifacts"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)


@router.get("/artifacts", summary="Artifacts, newest first")
def list_artifacts(
    service: Service,
    page: Annotated[Page, Depends()],
    exec_id: Annotated[str | None, Query(max_length=128)] = None,
    name: Annotated[str | None, Query(max_length=256)] = None,
    kind: Annotated[Literal["output", "saved", "prompt", "response"] | None, Query()] = None,
) -> JSON:
    return page.respond(service.list_artifacts(exec_id=exec_id, name=name, kind=kind, limit=page.limit, offset=page.offset))


@router.get("/artifacts/{artifact_id}", summary="One artifact")
def get_artifact(service: Service, artifact_id: Annotated[str, Path(min_length=1, max_length=64)]) -> JSON:
    return json_response(service.get_artifact(artifact_id))


@router.get("/executions/{exec_id}/artifacts/{name}", summary="An execution's artifact by name (save() name or invocation id)")
def find_artifact(
    service: Service,
    exec_id: Annotated[str, Path(min_length=1, max_length=128)],
    name: Annotated[str, Path(min_length=1, max_length=256)],
) -> JSON:
    return json_response(service.find_artifact(exec_id, name))
