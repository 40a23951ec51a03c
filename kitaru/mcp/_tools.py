"""The MCP tools: thin wrappers over :class:`~kitaru.KitaruClient`.

Every parameter is typed (the SDK derives each tool's input schema from the
annotations) and every tool's docstring is its description. A failure becomes a
tool error carrying the CLI's one-line message (:func:`kitaru.cli._output.describe`),
so a wrong argument never brings the server down. Tools that continue or start an
execution (``run``, ``executions_input``, ``executions_abort_wait``,
``executions_resume``, ``executions_resume_all``, ``executions_retry``,
``executions_replay``) start a detached driver process (:mod:`kitaru.mcp._drivers`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import Field

from kitaru.cli._output import describe
from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruUsageError
from kitaru.mcp import _render
from kitaru.mcp._drivers import settle

__all__ = ["TOOLS"]

logger = logging.getLogger("kitaru.mcp")
F = TypeVar("F", bound=Callable[..., Any])

ExecId = Annotated[str, Field(min_length=1, description="The execution id.")]
ExecutionStatus = Literal["pending", "running", "waiting", "interrupted", "completed", "failed", "cancelled"]
WaitSeconds = Annotated[
    float,
    Field(
        ge=0,
        le=600,
        description=(
            "Also wait up to this many seconds until the execution stops running (terminal, or waiting for input); "
            "0 returns as soon as the driver process has taken over."
        ),
    ),
]
Overrides = Annotated[
    dict[str, dict[str, Any]] | None,
    Field(
        description=(
            'Selector -> one of {"output": VALUE} (skip the call, use VALUE), {"input": {ARG: VALUE}} (rerun with changed '
            'arguments), {"model": "provider/model"} (llm_call only) or {"code": "module:function"} (tool_call only).'
        )
    ),
]


def _client() -> Any:
    from kitaru.client import KitaruClient

    return KitaruClient()


def _tool_errors(fn: F) -> F:
    """Turn any exception into a tool error with the CLI's one-line message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ToolError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a tool error; the server keeps serving
            if not isinstance(exc, KitaruError):
                logger.exception("tool %s failed unexpectedly", fn.__name__)
            raise ToolError(" ".join(describe(exc).split())) from exc

    return wrapper  # type: ignore[return-value]


# --- executions: reading --------------------------------------------------------------------------


@_tool_errors
def executions_list(
    flow: Annotated[str | None, Field(description="Only executions of this flow (its name).")] = None,
    status: Annotated[ExecutionStatus | None, Field(description="Only executions in this status.")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="At most this many, newest first.")] = 50,
    offset: Annotated[int, Field(ge=0, description="Skip this many of the newest first (paging).")] = 0,
) -> dict[str, Any]:
    """List executions, newest first (without their checkpoint calls; use executions_get for those)."""
    executions = _client().executions.list(flow=flow, status=status, limit=limit, offset=offset)
    return {"executions": [_render.execution_summary(e) for e in executions], "count": len(executions)}


@_tool_errors
def executions_get(
    exec_id: ExecId,
    include_result: Annotated[bool, Field(description="Load the flow's return value when the execution completed.")] = True,
) -> dict[str, Any]:
    """Get one execution: status, inputs, failure, checkpoint calls (with attempts and artifacts), pending waits,
    and its result once completed."""
    return _render.execution(_client().executions.get(exec_id), with_result=include_result)


@_tool_errors
def executions_latest(
    flow: Annotated[str | None, Field(description="The newest execution of this flow.")] = None,
    status: Annotated[ExecutionStatus | None, Field(description="The newest execution in this status.")] = None,
    include_result: Annotated[bool, Field(description="Load the flow's return value when the execution completed.")] = True,
) -> dict[str, Any]:
    """Get the newest execution (optionally of a flow, in a status), with its calls, pending waits and result."""
    return _render.execution(_client().executions.latest(flow=flow, status=status), with_result=include_result)


@_tool_errors
def executions_logs(
    exec_id: ExecId,
    checkpoint: Annotated[str | None, Field(description="Only this checkpoint call (its invocation id).")] = None,
    source: Annotated[
        Literal["step", "runner"] | None, Field(description="Only 'step' (checkpoints) or 'runner' (the flow body).")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=5000, description="At most this many entries, oldest first.")] = 500,
) -> dict[str, Any]:
    """Get the captured stdout, stderr and logging of an execution's flow body and checkpoints."""
    entries = _client().executions.logs(exec_id, checkpoint=checkpoint, source=source, limit=limit)
    return {"exec_id": exec_id, "entries": _render.to_jsonable(entries), "count": len(entries)}


@_tool_errors
def executions_events(
    exec_id: ExecId,
    since: Annotated[int, Field(ge=0, description="Only events with an id greater than this (the last id seen).")] = 0,
) -> dict[str, Any]:
    """Get an execution's recorded events (checkpoint.started/returned/failed, wait.opened/answered, progress)."""
    events = _client().executions.events(exec_id, since=since)
    return {"exec_id": exec_id, "events": _render.to_jsonable(events), "count": len(events)}


# --- executions: acting ---------------------------------------------------------------------------


@_tool_errors
def run(
    target: Annotated[
        str,
        Field(
            min_length=1, description=("The flow: MODULE:FLOW or PATH.py:FLOW, importable from the server's working directory.")
        ),
    ],
    inputs: Annotated[dict[str, Any] | None, Field(description="The flow's keyword arguments.")] = None,
    exec_id: Annotated[
        str | None, Field(description=("Idempotency key: an id that already completed returns that execution."))
    ] = None,
    wait_seconds: WaitSeconds = 0,
) -> dict[str, Any]:
    """Start a flow in a detached driver process; returns the new execution (it outlives this call)."""
    client = _client()
    handle = client.executions.run(target, inputs=inputs, exec_id=exec_id, detach=True)
    return _started(client, handle, wait_seconds)


@_tool_errors
def executions_input(
    exec_id: ExecId,
    value: Annotated[Any, Field(description='The input, checked against the wait\'s JSON schema (true, 42, "text", {...}).')],
    wait: Annotated[str | None, Field(description="The wait's name; optional when exactly one wait is pending.")] = None,
    resume: Annotated[bool, Field(description="Resume a suspended execution in a detached driver.")] = True,
    wait_seconds: WaitSeconds = 0,
) -> dict[str, Any]:
    """Answer a pending wait of an execution; a suspended execution is resumed in a detached driver."""
    client = _client()
    name = client.executions._wait_name(exec_id, wait)
    client.executions.input(exec_id, wait=name, value=value, resume=False)
    return _answered(client, exec_id, name, resume, wait_seconds, value=value)


@_tool_errors
def executions_abort_wait(
    exec_id: ExecId,
    wait: Annotated[str | None, Field(description="The wait's name; optional when exactly one wait is pending.")] = None,
    resume: Annotated[bool, Field(description="Resume a suspended execution in a detached driver (to take the abort).")] = True,
    wait_seconds: WaitSeconds = 0,
) -> dict[str, Any]:
    """Abort a pending wait: wait() raises KitaruWaitAbortedError in the flow body (uncaught, the execution ends cancelled)."""
    client = _client()
    name = client.executions._wait_name(exec_id, wait)
    client.executions.abort_wait(exec_id, wait=name, resume=False)
    return _answered(client, exec_id, name, resume, wait_seconds)


@_tool_errors
def executions_resume(exec_id: ExecId, wait_seconds: WaitSeconds = 0) -> dict[str, Any]:
    """Continue an interrupted, suspended (waiting) or cancelled execution from its last committed call, in a detached driver."""
    from kitaru.contracts.lifecycle import RESUMABLE, check_continue

    client = _client()
    check_continue(client.service.get_execution(exec_id, with_calls=False), RESUMABLE)  # a completed one is an error here
    return _started(client, client.executions.resume(exec_id, detach=True), wait_seconds)


@_tool_errors
def executions_resume_all() -> dict[str, Any]:
    """Resume every interrupted execution, and every suspended one whose input has arrived, in detached drivers."""
    handles = _client().executions.resume_all(detach=True)
    drivers = [_driver(handle) for handle in handles]
    return {"exec_ids": [handle.exec_id for handle in handles], "driver": drivers[-1] if drivers else None, "drivers": drivers}


@_tool_errors
def executions_retry(exec_id: ExecId, wait_seconds: WaitSeconds = 0) -> dict[str, Any]:
    """Run a failed execution again in a detached driver: completed calls are reused, failed ones re-run with the current code."""
    client = _client()
    return _started(client, client.executions.retry(exec_id, detach=True), wait_seconds)


@_tool_errors
def executions_cancel(exec_id: ExecId) -> dict[str, Any]:
    """Cancel an execution (its running checkpoints are stopped); returns once it is cancelled. It can be resumed later."""
    return _render.execution(_client().executions.cancel(exec_id), with_result=False)


@_tool_errors
def executions_replay(
    exec_id: Annotated[str, Field(min_length=1, description="The execution to replay.")],
    at: Annotated[
        str,
        Field(min_length=1, description=("The invocation id (or a checkpoint name: its first call) from which calls run live.")),
    ],
    flow_overrides: Annotated[dict[str, Any] | None, Field(description="Flow arguments to change: ARG -> value.")] = None,
    checkpoint_overrides: Overrides = None,
    invocation_overrides: Annotated[
        dict[str, dict[str, Any]] | None,
        Field(description="As checkpoint_overrides, selecting calls by invocation id (these win)."),
    ] = None,
    skip: Annotated[list[str] | None, Field(description="Invocation ids in the live part to reuse anyway.")] = None,
    new_exec_id: Annotated[str | None, Field(description="The new execution's id (default: a new uuid).")] = None,
    wait_seconds: WaitSeconds = 0,
) -> dict[str, Any]:
    """Replay an execution as a new, linked one in a detached driver; calls before `at` reuse their recorded outputs."""
    client = _client()
    handle = client.executions.replay(
        exec_id,
        at=at,
        flow_overrides=flow_overrides,
        checkpoint_overrides=checkpoint_overrides,
        invocation_overrides=invocation_overrides,
        skip=skip,
        new_exec_id=new_exec_id,
        detach=True,
    )
    return _started(client, handle, wait_seconds)


# --- artifacts, stacks, status --------------------------------------------------------------------


@_tool_errors
def artifacts_list(
    exec_id: Annotated[str | None, Field(description="Only artifacts of this execution.")] = None,
    name: Annotated[str | None, Field(description="Only artifacts of this name (a save() name or an invocation id).")] = None,
    kind: Annotated[
        Literal["output", "saved", "prompt", "response"] | None, Field(description="Only artifacts of this kind.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=1000, description="At most this many, newest first.")] = 100,
) -> dict[str, Any]:
    """List stored artifacts (checkpoint outputs, save() values, LLM prompts and responses), newest first."""
    refs = _client().artifacts.list(exec_id=exec_id, name=name, kind=kind, limit=limit)
    return {"artifacts": [_render.artifact(ref, load=False) for ref in refs], "count": len(refs)}


@_tool_errors
def artifacts_get(
    artifact_id: Annotated[str | None, Field(description="The artifact id; or give exec_id and name instead.")] = None,
    exec_id: Annotated[str | None, Field(description="The execution holding the artifact (with name).")] = None,
    name: Annotated[str | None, Field(description="Its name in that execution: a save() name or an invocation id.")] = None,
    load: Annotated[bool, Field(description="Load the value from storage (a large one comes back truncated).")] = True,
) -> dict[str, Any]:
    """Get one artifact by id, or by execution and name, with its value."""
    client = _client()
    if artifact_id is not None and exec_id is None and name is None:
        ref = client.artifacts.get(artifact_id)
    elif artifact_id is None and exec_id is not None and name is not None:
        ref = client.artifacts.find(exec_id, name)
    else:
        raise KitaruUsageError("give either artifact_id, or exec_id and name, to name one artifact.")
    return _render.artifact(ref, load=load)


@_tool_errors
def stacks_list() -> dict[str, Any]:
    """List the stacks (compute backend, storage, container registry) and which one is active."""
    stacks = _client().stacks
    active = stacks.current().name
    return {"stacks": [_render.stack(s, active=active) for s in stacks.list()], "active": active}


@_tool_errors
def stacks_get(
    name: Annotated[str | None, Field(description="The stack's name (default: the active one).")] = None,
) -> dict[str, Any]:
    """Get one stack's settings (secret-looking storage options are masked)."""
    stacks = _client().stacks
    return _render.stack(stacks.get(name) if name else stacks.current())


@_tool_errors
def deployments_list(
    flow: Annotated[str | None, Field(description="Only this flow's versions.")] = None,
) -> dict[str, Any]:
    """List deployed flow versions (newest first) with their tags, stack and target."""
    from kitaru.cli._output import to_jsonable

    return {"deployments": [to_jsonable(d) for d in _client().deployments.list(flow)]}


@_tool_errors
def deployments_invoke(
    flow: Annotated[str, Field(description="The deployed flow's name.")],
    tag: Annotated[str | None, Field(description="The version this tag names (e.g. prod).")] = None,
    version: Annotated[int | None, Field(description="A version number (default: the newest).")] = None,
    inputs: Annotated[dict[str, Any] | None, Field(description="The flow's keyword arguments.")] = None,
) -> dict[str, Any]:
    """Run a deployed version of a flow on its stack, from its code snapshot; returns the new execution's id."""
    handle = _client().deployments.invoke(flow, version=version, tag=tag, inputs=inputs)
    return {"exec_id": handle.exec_id, "status": handle.status}


@_tool_errors
def status() -> dict[str, Any]:
    """Where executions are recorded (embedded database or server), whether it answers, the active stack,
    and the number of executions by status."""
    from kitaru.cli._output import status_report

    return status_report()


# --- helpers --------------------------------------------------------------------------------------


def _record_or_none(client: Any, exec_id: str) -> dict[str, Any] | None:
    try:
        record: dict[str, Any] = client.service.get_execution(exec_id, with_calls=False)
    except KitaruNotFoundError:
        return None
    return record


def _driver(handle: Any) -> dict[str, Any] | None:
    """The detached driver's pid and log (``None`` when nothing was started: an idempotent run)."""
    if handle.submission is None:
        return None
    return {"pid": handle.submission.details.get("pid"), "log": handle.submission.details.get("log")}


def _started(client: Any, handle: Any, wait_seconds: float) -> dict[str, Any]:
    if wait_seconds:
        settle(client, handle.exec_id, wait_seconds)
    return {
        "exec_id": handle.exec_id,
        "driver": _driver(handle),
        "execution": _render.execution(client.executions.get(handle.exec_id)),
    }


def _answered(client: Any, exec_id: str, name: str, resume: bool, wait_seconds: float, **extra: Any) -> dict[str, Any]:
    """After input or an abort: resume a suspended execution in a detached driver (unless ``resume`` is off)."""
    record = client.service.get_execution(exec_id, with_calls=False)
    suspended = record["status"] == "waiting" and record.get("driver_id") is None
    driver = _driver(client.executions.resume(exec_id, detach=True)) if resume and suspended else None
    if wait_seconds and (driver is not None or not suspended):
        settle(client, exec_id, wait_seconds)
    note = f"it stays suspended; resume it with executions_resume({exec_id!r})." if suspended and driver is None else None
    return {
        "exec_id": exec_id,
        "wait": name,
        **extra,
        "resumed": driver is not None,
        "driver": driver,
        "note": note,
        "execution": _render.execution(client.executions.get(exec_id)),
    }


@_tool_errors
def executions_statistics(
    group_by: Annotated[list[str] | None, Field(description="Dimensions: status, flow, stack.")] = None,
    flow: Annotated[str | None, Field(description="Only executions of this flow.")] = None,
    status: Annotated[str | None, Field(description="Only executions in this status.")] = None,
) -> dict[str, Any]:
    """Count executions, grouped by status, flow and/or stack (one group of everything by default)."""
    result = _client().executions.statistics(group_by=group_by or (), flow=flow, status=status)
    return _render.to_jsonable(result)


@_tool_errors
def executions_diff(
    original: ExecId,
    executions: Annotated[list[str] | None, Field(description="Executions to compare (default: its replays).")] = None,
) -> dict[str, Any]:
    """Compare an execution call by call with its replays (or the given executions): status, output digest, duration."""
    from kitaru.diff import diff

    return _render.to_jsonable(diff(original, *(executions or ()), client=_client()))


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
STARTS_WORK = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=True)
STOPS_WORK = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)
TOOLS: list[tuple[Callable[..., Any], ToolAnnotations]] = [
    (executions_list, READ_ONLY),
    (executions_get, READ_ONLY),
    (executions_latest, READ_ONLY),
    (executions_logs, READ_ONLY),
    (executions_events, READ_ONLY),
    (run, STARTS_WORK),
    (executions_input, STARTS_WORK),
    (executions_abort_wait, STOPS_WORK),
    (executions_resume, STARTS_WORK),
    (executions_resume_all, STARTS_WORK),
    (executions_retry, STARTS_WORK),
    (executions_cancel, STOPS_WORK),
    (executions_replay, STARTS_WORK),
    (artifacts_list, READ_ONLY),
    (artifacts_get, READ_ONLY),
    (stacks_list, READ_ONLY),
    (stacks_get, READ_ONLY),
    (deployments_list, READ_ONLY),
    (deployments_invoke, STARTS_WORK),
    (status, READ_ONLY),
    (executions_statistics, READ_ONLY),
    (executions_diff, READ_ONLY),
]

# Kitaru 0.21's tool names (``kitaru_<name>``), registered beside this version's for its MCP clients' configurations.
LEGACY_NAMES: dict[str, str] = {
    **{f"kitaru_{fn.__name__}": fn.__name__ for fn, _ in TOOLS if fn is not run},
    "kitaru_executions_run": "run",
}
