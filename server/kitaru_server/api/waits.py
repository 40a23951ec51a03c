"""Waits: list, get, give input (validated against the wait's schema), abort."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Page, Service, StrictJSONRoute, json_response
from kitaru_server.api._schemas import WaitInput

router = APIRouter(prefix="/api/v1", tags=["waits"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
ExecId = Annotated[str, Path(min_length=1, max_length=128, description="The execution's id.")]
WaitName = Annotated[str, Path(min_length=1, max_length=256, description="The wait's name.")]


@router.get("/executions/{exec_id}/waits", summary="The execution's waits, in the order they were opened")
def list_waits(
    service: Service,
    exec_id: ExecId,
    page: Annotated[Page, Depends()],
    status: Annotated[Literal["pending", "answered", "aborted"] | None, Query(description="Only waits in this status.")] = None,
) -> JSON:
    return page.slice(service.list_waits(exec_id, status=status))


@router.get("/executions/{exec_id}/waits/{name}", summary="One wait")
def get_wait(service: Service, exec_id: ExecId, name: WaitName) -> JSON:
    return json_response(service.get_wait(exec_id, name))


@router.post(
    "/executions/{exec_id}/waits/{name}/input", summary="Answer a pending wait (422: invalid input, 409: already settled)"
)
def give_input(service: Service, exec_id: ExecId, name: WaitName, body: WaitInput) -> JSON:
    return json_response(service.answer_wait(exec_id, name, body.value))


@router.post("/executions/{exec_id}/waits/{name}/abort", summary="Abort a pending wait (409: already settled)")
def abort(service: Service, exec_id: ExecId, name: WaitName) -> JSON:
    return json_response(service.settle_wait(exec_id, name, status="aborted"))
