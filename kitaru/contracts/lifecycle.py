"""Lifecycle rules every client, backend and the server apply the same way: may an execution be
continued (resume, retry), replayed, started again under its id; is a wait's input valid.

Each rule raises Kitaru's own error with one line saying what to do instead.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from kitaru.contracts.statuses import RESUMABLE_EXECUTION_STATUSES, TERMINAL_EXECUTION_STATUSES, ExecutionStatus
from kitaru.errors import KitaruStateError, KitaruUsageError, KitaruWaitValidationError

__all__ = [
    "RESUMABLE",
    "RETRYABLE",
    "cancel",
    "check_continue",
    "check_replay",
    "continue_message",
    "continue_statuses",
    "idempotency_message",
    "is_driven",
    "validate_wait_input",
]

RESUMABLE: tuple[str, ...] = tuple(sorted(RESUMABLE_EXECUTION_STATUSES))
"""What ``resume`` continues: interrupted, waiting (suspended) and cancelled executions."""
RETRYABLE: tuple[str, ...] = (ExecutionStatus.FAILED.value,)
"""What ``retry`` continues: failed executions."""
_SHOWN_SCHEMA_CHARS = 160  # a longer schema is read from the wait itself, not from every error
_LIVE = (ExecutionStatus.RUNNING, ExecutionStatus.WAITING)
_TERMINAL = TERMINAL_EXECUTION_STATUSES
CANCEL_GRACE_SECONDS = 5.0


def continue_statuses(action: str) -> tuple[str, ...]:
    """The statuses ``action`` (``resume`` or ``retry``) continues."""
    return RETRYABLE if action == "retry" else RESUMABLE


def is_driven(record: Mapping[str, Any]) -> bool:
    """Whether a live driver holds the execution (it is running or polling a wait, with a driver recorded)."""
    return bool(record.get("driver_id")) and record["status"] in _LIVE


def check_continue(record: Mapping[str, Any], allowed: Collection[str]) -> None:
    """Raise unless an execution in ``record``'s state may be continued from ``allowed`` statuses.

    Raises:
        KitaruStateError: it is completed, still driven, or in a status the action does not continue.
    """
    if record["status"] not in allowed or is_driven(record):
        exec_id = record["exec_id"]
        raise KitaruStateError(continue_message(exec_id, record, tuple(allowed)), exec_id=exec_id, status=record["status"])


def continue_message(exec_id: str, record: Mapping[str, Any], allowed: tuple[str, ...]) -> str:
    """Why ``exec_id`` cannot be continued from ``allowed`` statuses, and what to do instead."""
    status = record["status"]
    if status == "completed":
        return f"execution {exec_id!r} is already completed; there is nothing to resume or retry."
    if status in _LIVE and record.get("driver_id"):
        return (
            f"execution {exec_id!r} is still {status} (its driver holds the lease); wait for it, give input to its wait, "
            "or resume once it is interrupted."
        )
    if status == "failed":
        return f"execution {exec_id!r} failed; retry it with KitaruClient().executions.retry({exec_id!r}) instead of resuming."
    if tuple(allowed) == RETRYABLE:
        return f"execution {exec_id!r} is {status}, not failed; only failed executions are retried (resume {status} ones)."
    return f"execution {exec_id!r} is {status} and cannot be resumed."


def idempotency_message(exec_id: str, status: str) -> str:
    """Why a new run cannot take an ``exec_id`` that exists (not completed), and what to do instead."""
    if status == "failed":
        action = f"retry it with `kitaru executions retry {exec_id}`"
    elif status in RESUMABLE:
        action = f"resume it with `kitaru executions resume {exec_id}`"
    else:
        action = "wait for it with KitaruClient().executions.get(...) or choose another exec_id"
    return f"execution {exec_id!r} already exists and is {status}; {action}."


def check_replay(record: Mapping[str, Any], at: str | None = None) -> None:
    """Raise unless ``record`` may be replayed (from call ``at``, when its calls are in the record).

    Raises:
        KitaruStateError: the execution is still driven.
        KitaruUsageError: ``at`` names no call of the execution.
    """
    exec_id = record["exec_id"]
    if is_driven(record):
        raise KitaruStateError(
            f"execution {exec_id!r} is still {record['status']}; replay it once it has ended (or cancel it).",
            exec_id=exec_id,
            status=record["status"],
        )
    calls = record.get("checkpoints")
    if at is None or calls is None:
        return
    if not any(at in (c["invocation_id"], c["name"]) for c in calls):
        known = ", ".join(c["invocation_id"] for c in calls[:12]) or "none"
        raise KitaruUsageError(f"execution {exec_id!r} has no call {at!r} to replay from; its calls are: {known}.")


def validate_wait_input(schema: dict[str, Any] | None, value: Any, *, wait_name: str) -> None:
    """Check ``value`` against a wait's JSON Schema (``None``: a gate, anything goes).

    Raises:
        KitaruWaitValidationError: naming the wait, the problem and the expected shape.
    """
    if schema is None:
        return
    import jsonschema

    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as exc:
        path = "/".join(str(part) for part in exc.absolute_path)
        where = f" at {path}" if path else ""
        shape = json.dumps(schema)
        expected = f"Expected JSON matching {shape}; " if len(shape) <= _SHOWN_SCHEMA_CHARS else "See the wait's schema; "
        raise KitaruWaitValidationError(
            f"input for wait {wait_name!r} is invalid{where}: {exc.message}. {expected}the wait stays open.",
            wait=wait_name,
        ) from None


def cancel(service: Any, exec_id: str, *, grace_seconds: float = CANCEL_GRACE_SECONDS) -> dict[str, Any]:
    """Cancel an execution and return its record once it is ``cancelled``.

    A driven execution's driver is asked to stop its running calls; if it does not react
    within ``grace_seconds`` the execution is cancelled here (its lease is taken away).

    Raises:
        KitaruStateError: it ended (completed or failed) before it could be cancelled.
    """
    import time

    if service.request_cancel(exec_id) == "requested":
        deadline = time.monotonic() + grace_seconds
        while service.get_execution(exec_id, with_calls=False)["status"] not in _TERMINAL:
            if time.monotonic() > deadline:
                service.request_cancel(exec_id)  # the driver did not react: end it here
                break
            time.sleep(0.05)
    record = service.get_execution(exec_id, with_calls=False)
    if record["status"] != ExecutionStatus.CANCELLED:
        raise KitaruStateError(f"execution {exec_id!r} {record['status']} before it could be cancelled.", exec_id=exec_id)
    return record
