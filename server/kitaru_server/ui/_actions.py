"""What the UI's buttons do: cancel through the service; resume, retry and replay in detached drivers; answer waits.

Each returns a small JSON-ready dict; errors are Kitaru's own (the API's error
handlers turn them into ``{"error", "message"}`` with a 4xx status, which the
page shows next to the button).
"""

from __future__ import annotations

import types
import uuid
from typing import Any

from kitaru.errors import KitaruStateError, KitaruUsageError
from kitaru_server.ui._drivers import start_driver

__all__ = ["answer_wait", "cancel", "continue_execution", "replay"]


def _executions(service: Any) -> Any:
    """The client's executions namespace over this server's service (its cancel and input logic, written once)."""
    from kitaru.client._executions import Executions

    return Executions(types.SimpleNamespace(_service=service))  # type: ignore[arg-type]


def cancel(service: Any, exec_id: str) -> dict[str, Any]:
    """Cancel and return once the execution is ``cancelled`` (its driver stops its running calls)."""
    execution = _executions(service).cancel(exec_id)
    return {"exec_id": exec_id, "status": execution.status}


def continue_execution(service: Any, exec_id: str, action: str, *, server_url: str, api_key: str | None) -> dict[str, Any]:
    """``resume`` (interrupted, suspended or cancelled) or ``retry`` (failed) in a detached driver.

    Raises:
        KitaruStateError: the execution is in a state this action does not continue (the message says which does).
    """
    from kitaru.runtime._executions import RESUMABLE, _continue_message, _driven

    allowed = ("failed",) if action == "retry" else RESUMABLE
    record = service.get_execution(exec_id, with_calls=False)
    if record["status"] not in allowed or _driven(record):
        raise KitaruStateError(_continue_message(exec_id, record, allowed), exec_id=exec_id, status=record["status"])
    before = record.get("driver_id")
    started = start_driver(
        service,
        [action, exec_id],
        exec_id,
        lambda r: bool(r.get("driver_id")) and r.get("driver_id") != before,
        server_url=server_url,
        api_key=api_key,
    )
    return {"exec_id": exec_id, "action": action, "pid": started.pid, "log": started.log}


def replay(
    service: Any,
    exec_id: str,
    *,
    at: str,
    output: Any = ...,
    flow_overrides: dict[str, Any] | None = None,
    server_url: str,
    api_key: str | None,
) -> dict[str, Any]:
    """Replay ``exec_id`` from ``at`` as a new execution in a detached driver; ``output`` (when given) overrides ``at``'s output.

    Raises:
        KitaruUsageError: ``at`` names no call of the execution.
        KitaruStateError: the execution is still driven.
    """
    import json

    record = service.get_execution(exec_id)
    if record["status"] in ("running", "waiting") and record.get("driver_id"):
        raise KitaruStateError(
            f"execution {exec_id!r} is still {record['status']}; replay it once it has ended (or cancel it).",
            exec_id=exec_id,
            status=record["status"],
        )
    calls = record.get("checkpoints") or []
    if not any(at in (c["invocation_id"], c["name"]) for c in calls):
        known = ", ".join(c["invocation_id"] for c in calls[:12]) or "none"
        raise KitaruUsageError(f"execution {exec_id!r} has no call {at!r} to replay from; its calls are: {known}.")
    spec: dict[str, Any] = {"flow_overrides": flow_overrides or None}
    if output is not ...:
        spec["invocation_overrides"] = {at: {"output": output}}
    new_id = str(uuid.uuid4())
    started = start_driver(
        service,
        ["replay", exec_id, "--exec-id", new_id, "--at", at, "--spec", json.dumps(spec)],
        new_id,
        lambda _record: True,
        server_url=server_url,
        api_key=api_key,
    )
    return {
        "exec_id": new_id,
        "original_exec_id": exec_id,
        "url": f"/executions/{new_id}",
        "pid": started.pid,
        "log": started.log,
    }


def answer_wait(service: Any, exec_id: str, wait: str, value: Any, *, server_url: str, api_key: str | None) -> dict[str, Any]:
    """Answer a pending wait (validated against its schema: 422 when invalid); a suspended execution is resumed detached."""
    _executions(service).input(exec_id, wait=wait, value=value, resume=False)
    record = service.get_execution(exec_id, with_calls=False)
    result: dict[str, Any] = {"exec_id": exec_id, "wait": wait, "resumed": False}
    if record["status"] == "waiting" and record.get("driver_id") is None:
        try:
            started = start_driver(
                service, ["resume", exec_id], exec_id, lambda r: bool(r.get("driver_id")), server_url=server_url, api_key=api_key
            )
        except KitaruStateError:
            return result  # another client resumed it first
        result.update(resumed=True, pid=started.pid, log=started.log)
    return result
