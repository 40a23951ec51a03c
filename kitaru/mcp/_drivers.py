"""Waiting on detached drivers for the MCP tools (SPEC §3.8: MCP always starts ``python -m kitaru.runtime ...``).

The tools start drivers through the client with ``detach=True`` (the ``process``
backend), so the execution outlives the tool call and the MCP server never
starts Ray itself. With ``wait_seconds`` a tool also waits until the execution
stops running (terminal, or waiting for input).
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["settle"]


def settle(client: Any, exec_id: str, wait_seconds: float) -> None:
    """Poll, at most ``wait_seconds``, until the execution stops running: terminal, suspended, or with a wait pending."""
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        record = client.service.get_execution(exec_id, with_calls=False)
        live = record["status"] in ("pending", "running") or (record["status"] == "waiting" and record["driver_id"] is not None)
        if not live or time.monotonic() >= deadline:
            return
        if client.service.list_waits(exec_id, status="pending"):  # it needs input: nothing more happens until then
            return
        time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
        delay = min(delay * 1.5, 0.5)
