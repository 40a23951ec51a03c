"""Executions: list, count, get, create, metadata, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from kitaru_server.admission import DEFAULT_STACK, check_may_continue, check_new_execution, principal_of
from kitaru_server.api._common import ERROR_RESPONSES, JSON, Caller, Page, Service, StrictJSONRoute, json_response
from kitaru_server.api._schemas import ExecutionCreate, ExecutionStatus, MetadataUpdate

router = APIRouter(prefix="/api/v1", tags=["executions"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
ExecId = Annotated[str, Path(min_length=1, max_length=128, description="The execution's id.")]


@router.get("/executions", summary="List executions, newest first")
def list_executions(
    service: Service,
    page: Annotated[Page, Depends()],
    flow: Annotated[str | None, Query(max_length=256, description="Only this flow's executions.")] = None,
    status: Annotated[ExecutionStatus | None, Query(description="Only executions in this status.")] = None,
) -> JSON:
    return page.respond(service.list_executions(flow=flow, status=status, limit=page.limit, offset=page.offset))


@router.get("/executions/count", summary="Count executions")
def count_executions(service: Service) -> JSON:
    return json_response({"count": service.count_executions()})


@router.get("/executions/counts", summary="How many executions are in each status")
def execution_counts(service: Service) -> JSON:
    return json_response(service.execution_counts())


@router.post("/executions", status_code=201, summary="Record a new execution (the runtime starts one)")
def create_execution(request: Request, service: Service, caller: Caller, body: ExecutionCreate) -> JSON:
    """Admitted only on its stack's storage, with stored objects of that storage (see :mod:`kitaru_server.admission`)."""
    record = body.model_dump(exclude_none=True, by_alias=True)
    name = record.get("stack") or DEFAULT_STACK
    stack = None if name == DEFAULT_STACK else service.get_stack(name)
    check_new_execution(record, stack=stack, default_storage=request.app.state.storage)
    if record.get("original_exec_id"):
        check_may_continue(caller, service.get_execution(record["original_exec_id"], with_calls=False), "replay")
    record["created_by"] = principal_of(caller)
    return json_response(service.create_execution(record), status_code=201)


@router.get("/executions/{exec_id}", summary="One execution, with its calls")
def get_execution(
    service: Service, exec_id: ExecId, with_calls: bool = Query(True, description="Include calls, attempts, artifacts.")
) -> JSON:
    return json_response(service.get_execution(exec_id, with_calls=with_calls))


@router.patch("/executions/{exec_id}/metadata", summary="Merge fields into an execution's metadata")
def update_metadata(service: Service, exec_id: ExecId, body: MetadataUpdate) -> JSON:
    service.update_execution_metadata(exec_id, body.fields)
    return json_response({"exec_id": exec_id})


@router.post("/executions/{exec_id}/cancel", summary="Cancel an execution (at once, or by asking its driver)")
def request_cancel(service: Service, exec_id: ExecId) -> JSON:
    return json_response({"outcome": service.request_cancel(exec_id)})
