"""What each page shows, read from the service: plain dicts for the templates."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from markupsafe import Markup

from kitaru_server.ui._dag import render_dag
from kitaru_server.ui._format import ACTIVE, TERMINAL
from kitaru_server.ui._forms import wait_fields
from kitaru_server.ui._preview import preview
from kitaru_server.ui._timeline import timeline

__all__ = ["EXECUTION_STATUSES", "PAGE_SIZE", "call_context", "execution_context", "executions_context", "stacks_context"]

PAGE_SIZE = 50
EXECUTION_STATUSES = ("pending", "running", "waiting", "interrupted", "completed", "failed", "cancelled")
_RESUMABLE = ("interrupted", "waiting", "cancelled")
_SECRET_WORDS = ("secret", "password", "token", "key", "credential", "sas", "signature")


def executions_context(
    service: Any, *, flow: str | None, status: str | None, offset: int, limit: int = PAGE_SIZE
) -> dict[str, Any]:
    """One page of executions (newest first) with the filters, the counts by status and the paging links."""
    rows = service.list_executions(flow=flow or None, status=status or None, limit=limit + 1, offset=offset)
    now = time.time()
    executions = [{**row, "suspended": _suspended(row)} for row in rows[:limit]]
    counts = service.execution_counts()
    return {
        "executions": executions,
        "flow": flow or "",
        "status": status or "",
        "offset": offset,
        "limit": limit,
        "has_next": len(rows) > limit,
        "flows": sorted({row["flow"] for row in executions}),
        "counts": [(s, counts.get(s, 0)) for s in EXECUTION_STATUSES if counts.get(s)],
        "total": sum(counts.values()),
        "statuses": EXECUTION_STATUSES,
        "live": any(row["status"] in ACTIVE for row in executions) or offset == 0,
        "now": now,
    }


def execution_context(service: Any, exec_id: str) -> dict[str, Any]:
    """Everything the execution page shows but the logs (which stream)."""
    now = time.time()
    record = service.get_execution(exec_id)
    calls = record.pop("checkpoints")
    waits = service.list_waits(exec_id)
    status = record["status"]
    driven = bool(record.get("driver_id")) and status in ("running", "waiting")
    pending = [
        {"wait": w, "form_id": f"wait-{i}", "fields": Markup(wait_fields(w["schema"], f"wait-{i}"))}
        for i, w in enumerate(waits)
        if w["status"] == "pending"
    ]
    metadata = dict(record.get("metadata") or {})
    return {
        "e": record,
        "now": now,
        "calls": calls,
        "call_counts": sorted(Counter(c["status"] for c in calls).items()),
        "waits": waits,
        "pending": pending,
        "waits_key": ",".join(f"{w['name']}:{w['status']}" for w in waits),
        "suspended": _suspended(record),
        "active": status not in TERMINAL,
        "dag": Markup(render_dag(calls, now=now)),
        "timeline": timeline(record, calls, waits, now=now),
        "inputs": (record.get("inputs") or {}).get("preview") or {},
        "result": preview(record.get("result")) if status == "completed" else None,
        "metadata": {k: v for k, v in metadata.items() if k != "dashboard_url"},
        "dashboard_url": _dashboard(metadata),
        "actions": {
            "resume": status in _RESUMABLE and not driven,
            "retry": status == "failed",
            "cancel": status in ("pending", "running", "waiting", "interrupted"),
            "replay": bool(calls) and not driven,
        },
    }


def call_context(service: Any, exec_id: str, invocation_id: str) -> dict[str, Any] | None:
    """One call's details (attempts, output preview, metadata, LLM calls, neighbours); ``None`` if there is no such call."""
    record = service.get_execution(exec_id)
    calls = record["checkpoints"]
    call = next((c for c in calls if c["invocation_id"] == invocation_id), None)
    if call is None:
        return None
    by_id = {c["call_id"]: c for c in calls}
    metadata = dict(call.get("metadata") or {})
    llm_calls = metadata.pop("llm_calls", None) or []
    output = preview(call.get("output")) if call["status"] not in ("pending", "running", "failed", "cancelled") else None
    driven = bool(record.get("driver_id")) and record["status"] in ("running", "waiting")
    return {
        "e": record,
        "c": call,
        "now": time.time(),
        "parents": [by_id[p]["invocation_id"] for p in call.get("parent_call_ids") or [] if p in by_id],
        "children": [c["invocation_id"] for c in calls if call["call_id"] in (c.get("parent_call_ids") or [])],
        "output": output,
        "override_text": output["text"] if output and output.get("kind") == "json" else "",
        "metadata": metadata,
        "llm_calls": llm_calls,
        "artifacts": [a for a in call.get("artifacts") or [] if a["name"] != invocation_id],
        "can_replay": not driven,
        "job_page": _dashboard(record.get("metadata") or {}),
    }


def stacks_context(service: Any) -> dict[str, Any]:
    """The stored stacks (option values that look like credentials masked)."""
    stacks = [
        {
            **s,
            "storage_options": _masked(s.get("storage_options") or {}),
            "backend_options": _masked(s.get("backend_options") or {}),
        }
        for s in service.list_stacks()
    ]
    return {"stacks": stacks}


def _masked(options: dict[str, Any]) -> dict[str, Any]:
    """Options with the values of secret-looking keys (``secret``, ``password``, ``token``, ``key``...) replaced."""

    def mask(key: str, value: Any) -> Any:
        if isinstance(value, dict):
            return _masked(value)
        return "••••••" if value and any(word in key.lower() for word in _SECRET_WORDS) else value

    return {key: mask(str(key), value) for key, value in options.items()}


def _suspended(record: dict[str, Any]) -> bool:
    """A waiting execution whose driver has exited (input resumes it)."""
    return record["status"] == "waiting" and not record.get("driver_id")


def _dashboard(metadata: dict[str, Any]) -> str | None:
    url = metadata.get("dashboard_url")
    return url if isinstance(url, str) and url.startswith(("http://", "https://")) else None
