"""Logs and events of an execution: pages by id, and live server-sent event streams."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Query
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from kitaru_server.api._common import ERROR_RESPONSES, JSON, Service, StrictJSONRoute, json_response
from kitaru_server.api._sse import event_stream

router = APIRouter(prefix="/api/v1", tags=["logs and events"], route_class=StrictJSONRoute, responses=ERROR_RESPONSES)
ExecId = Annotated[str, Path(min_length=1, max_length=128, description="The execution's id.")]
AfterId = Annotated[int, Query(ge=0, le=2**62, description="Only rows with a greater id (a cursor).")]
Source = Annotated[Literal["runner", "step"] | None, Query(description="runner: the flow body; step: checkpoints.")]
InvocationId = Annotated[str | None, Query(max_length=256, description="Only this checkpoint call's logs.")]
LastEventId = Annotated[str | None, Header(max_length=32, description="Resume a stream after this event id.")]
Poll = Annotated[float, Query(ge=0.05, le=10, description="Seconds between polls of the database.")]
TERMINAL = ("completed", "failed", "cancelled")


@router.get("/executions/{exec_id}/logs", summary="Log entries in the order they were written")
def get_logs(
    service: Service,
    exec_id: ExecId,
    after_id: AfterId = 0,
    invocation_id: InvocationId = None,
    source: Source = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSON:
    rows = service.get_logs(exec_id, invocation_id=invocation_id, source=source, limit=limit, after_id=after_id)
    return json_response({"items": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})


@router.get("/executions/{exec_id}/events", summary="Events (checkpoint.*, wait.*, progress) in the order they were recorded")
def get_events(
    service: Service, exec_id: ExecId, after_id: AfterId = 0, limit: Annotated[int, Query(ge=1, le=10_000)] = 1000
) -> JSON:
    rows = service.get_events(exec_id, after_id=after_id, limit=limit)
    return json_response({"items": rows, "next_after_id": rows[-1]["id"] if len(rows) == limit else None})


@router.get(
    "/executions/{exec_id}/logs/stream",
    summary="Live log entries (server-sent events) until the execution ends",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_logs(
    service: Service,
    exec_id: ExecId,
    after_id: AfterId = 0,
    invocation_id: InvocationId = None,
    source: Source = None,
    poll: Poll = 0.25,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    await run_in_threadpool(service.get_execution, exec_id, with_calls=False)  # 404 before the stream starts
    return event_stream(
        lambda after, limit: service.get_logs(exec_id, invocation_id=invocation_id, source=source, limit=limit, after_id=after),
        lambda: service.get_execution(exec_id, with_calls=False)["status"] in TERMINAL,
        event="log",
        after_id=_resume_from(after_id, last_event_id),
        poll_seconds=poll,
    )


@router.get(
    "/executions/{exec_id}/events/stream",
    summary="Live events (server-sent events) until the execution ends",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    service: Service, exec_id: ExecId, after_id: AfterId = 0, poll: Poll = 0.25, last_event_id: LastEventId = None
) -> StreamingResponse:
    await run_in_threadpool(service.get_execution, exec_id, with_calls=False)
    return event_stream(
        lambda after, limit: service.get_events(exec_id, after_id=after, limit=limit),
        lambda: service.get_execution(exec_id, with_calls=False)["status"] in TERMINAL,
        event="event",
        after_id=_resume_from(after_id, last_event_id),
        poll_seconds=poll,
    )


def _resume_from(after_id: int, last_event_id: str | None) -> int:
    """``Last-Event-ID`` (sent by a reconnecting browser) wins over ``after_id`` when it is a number."""
    return (
        int(last_event_id)
        if last_event_id is not None and last_event_id.isascii() and last_event_id.isdigit() and len(last_event_id) < 19
        else after_id
    )
