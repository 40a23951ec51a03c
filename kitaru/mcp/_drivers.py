"""Detached drivers for the MCP tools (SPEC §3.8: MCP always starts ``python -m kitaru.runtime ...``).

A tool returns once the driver has taken over (as the CLI does, through
:mod:`kitaru.runtime._detached`), so the execution outlives the tool call and the
MCP server never starts Ray itself. With ``wait_seconds`` a tool also waits
until the execution stops running (terminal, or waiting for input).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from kitaru.runtime._detached import continue_detached, spawn, wait_started

__all__ = ["settle", "start_driver"]


def start_driver(
    arguments: Sequence[str], *, label: str, new_exec_id: str | None = None, before: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """Start ``python -m kitaru.runtime ARGUMENTS`` detached; returns its pid and log once it holds the executions.

    ``new_exec_id``: a new execution (run, replay), started once it exists. ``before``: the records of
    executions to continue (resume, retry), started once this driver has claimed each.
    Raises the driver's own error (a :class:`~kitaru.KitaruUsageError` for a bad target or selector) if it exits first.
    """
    from kitaru._service import connect_service
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    service = connect_service(settings.service_url, settings.api_key)
    if before:  # a rival driver that took one first is an error naming it
        driver = continue_detached(service, list(arguments), before, label=label)
    else:
        driver = spawn(list(arguments), label=label)
    if new_exec_id is not None:
        wait_started(driver, service, [new_exec_id], lambda record: True)
    return {"pid": driver.process.pid, "log": str(driver.log)}


def settle(client: Any, exec_id: str, wait_seconds: float) -> None:
    """Poll, at most ``wait_seconds``, until the execution stops running: terminal, suspended, or with a wait pending."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        record = client._service.get_execution(exec_id, with_calls=False)
        live = record["status"] in ("pending", "running") or (record["status"] == "waiting" and record["driver_id"] is not None)
        if not live or time.monotonic() >= deadline:
            return
        if client._service.list_waits(exec_id, status="pending"):  # it needs input: nothing more happens until then
            return
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
