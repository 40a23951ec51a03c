"""What the UI's buttons do: cancel through the service; resume, retry, replay and the resume after
an answer through the app's launcher; answer waits.

The launcher (:class:`kitaru.contracts.launch.Launcher`) is handed to the app by
whatever starts the server (``kitaru server start`` hands it the client's, which
starts a detached ``python -m kitaru.runtime`` driver on the server's machine
for a local stack); the server itself starts no process. Without a launcher
these actions answer 501. Each returns a small JSON-ready dict; errors are
Kitaru's own (the API's error handlers turn them into ``{"error", "message"}``
with a 4xx status, which the page shows next to the button).
"""

from __future__ import annotations

import uuid
from typing import Any

from kitaru.contracts import lifecycle
from kitaru.contracts.launch import ExecutionSpec, LaunchAction, Launcher
from kitaru.errors import KitaruFeatureNotAvailableError, KitaruStateError

__all__ = ["answer_wait", "cancel", "continue_execution", "replay"]

NO_LAUNCHER = (
    "this server has no launcher, so it cannot start drivers (resume, retry, replay); "
    "start it with `kitaru server start`, or run the action from a client (`kitaru executions ...`)."
)


def cancel(service: Any, exec_id: str) -> dict[str, Any]:
    """Cancel and return once the execution is ``cancelled`` (its driver stops its running calls)."""
    record = lifecycle.cancel(service, exec_id)
    return {"exec_id": exec_id, "status": record["status"]}


def continue_execution(
    service: Any, launcher: Launcher | None, exec_id: str, action: str, *, server_url: str, api_key: str | None
) -> dict[str, Any]:
    """``resume`` (interrupted, suspended or cancelled) or ``retry`` (failed) on the execution's stack.

    Raises:
        KitaruStateError: the execution is in a state this action does not continue (the message says which does).
        KitaruFeatureNotAvailableError: the server has no launcher.
    """
    record = service.get_execution(exec_id, with_calls=False)
    lifecycle.check_continue(record, lifecycle.continue_statuses(action))
    submission = _require(launcher).launch(_spec(LaunchAction(action), exec_id, record, server_url, api_key))
    return {"exec_id": exec_id, "action": action, **_details(submission.details)}


def replay(
    service: Any,
    launcher: Launcher | None,
    exec_id: str,
    *,
    at: str,
    output: Any = ...,
    flow_overrides: dict[str, Any] | None = None,
    server_url: str,
    api_key: str | None,
) -> dict[str, Any]:
    """Replay ``exec_id`` from ``at`` as a new execution; ``output`` (when given) overrides ``at``'s output.

    Raises:
        KitaruUsageError: ``at`` names no call of the execution.
        KitaruStateError: the execution is still driven.
        KitaruFeatureNotAvailableError: the server has no launcher.
    """
    record = service.get_execution(exec_id)
    lifecycle.check_replay(record, at)
    options: dict[str, Any] = {"at": at, "flow_overrides": flow_overrides or None}
    if output is not ...:
        options["invocation_overrides"] = {at: {"output": output}}
    new_id = str(uuid.uuid4())
    spec = _spec(LaunchAction.REPLAY, new_id, record, server_url, api_key, source_exec_id=exec_id, replay=options)
    submission = _require(launcher).launch(spec)
    return {"exec_id": new_id, "original_exec_id": exec_id, "url": f"/executions/{new_id}", **_details(submission.details)}


def answer_wait(
    service: Any, launcher: Launcher | None, exec_id: str, wait: str, value: Any, *, server_url: str, api_key: str | None
) -> dict[str, Any]:
    """Answer a pending wait (validated against its schema: 422 when invalid); a suspended execution is resumed."""
    record = service.answer_wait(exec_id, wait, value)
    result: dict[str, Any] = {"exec_id": exec_id, "wait": wait, "resumed": False}
    if record["status"] == "waiting" and record.get("driver_id") is None and launcher is not None:
        try:
            submission = launcher.launch(_spec(LaunchAction.RESUME, exec_id, record, server_url, api_key))
        except KitaruStateError:
            return result  # another client resumed it first
        result.update(resumed=True, **_details(submission.details))
    return result


def _spec(
    action: LaunchAction, exec_id: str, record: dict[str, Any], server_url: str, api_key: str | None, **fields: Any
) -> ExecutionSpec:
    """What to start: the driver reports to this server (its URL, the caller's key) on the execution's stack."""
    return ExecutionSpec(
        action=action,
        exec_id=exec_id,
        stack=record.get("stack") or "default",
        server_url=server_url.rstrip("/"),
        api_key=api_key,
        **fields,
    )


def _require(launcher: Launcher | None) -> Launcher:
    if launcher is None:
        raise KitaruFeatureNotAvailableError(NO_LAUNCHER)
    return launcher


def _details(details: Any) -> dict[str, Any]:
    """The JSON-ready part of a submission's details (a detached driver's pid and log)."""
    return {key: value for key, value in dict(details).items() if isinstance(value, str | int | float | bool)}
