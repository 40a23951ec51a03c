"""The timeline of an execution: one row per call (a bar per attempt) and per wait, on a shared time axis."""

from __future__ import annotations

from typing import Any

from kitaru_server.ui._format import duration

__all__ = ["timeline"]

_MIN_WIDTH = 0.35  # percent: an instant call stays visible
_TICKS = 5


def timeline(
    execution: dict[str, Any], calls: list[dict[str, Any]], waits: list[dict[str, Any]], *, now: float
) -> dict[str, Any]:
    """Rows (``label``, ``status``, ``segments`` placed in percent of the axis) and the axis ``ticks``."""
    start = execution.get("started_at") or execution["created_at"]
    moments = [execution.get("ended_at") or now]
    moments += [c.get("ended_at") or now for c in calls] + [w.get("answered_at") or now for w in waits]
    end = max([start + 1e-3, *[m for m in moments if m is not None]])
    if execution["status"] in ("completed", "failed", "cancelled") and execution.get("ended_at"):
        end = max(execution["ended_at"], start + 1e-3)
    span = end - start

    def place(begin: float | None, finish: float | None) -> tuple[float, float]:
        begin = min(max(begin if begin is not None else start, start), end)
        finish = min(max(finish if finish is not None else now, begin), end)
        left = (begin - start) / span * 100
        return round(left, 3), round(max((finish - begin) / span * 100, _MIN_WIDTH), 3)

    rows = []
    for call in calls:
        attempts = call.get("attempts") or []
        segments = []
        first_start = attempts[0].get("started_at") if attempts else None
        if first_start is not None and call.get("created_at") is not None and first_start > call["created_at"]:
            left, width = place(call["created_at"], first_start)
            took = duration(call["created_at"], first_start)
            segments.append(
                {
                    "left": left,
                    "width": min(width, 100 - left),
                    "status": "queued",
                    "title": f"waiting for its inputs and a worker: {took}",
                }
            )
        for attempt in attempts:
            left, width = place(attempt.get("started_at"), attempt.get("ended_at"))
            took = duration(attempt.get("started_at"), attempt.get("ended_at"), now=now)
            title = f"attempt {attempt['number']}: {attempt['status']}, {took}"
            segments.append({"left": left, "width": min(width, 100 - left), "status": attempt["status"], "title": title})
        if not segments:  # reused without running (cached, replayed, overridden), or not started yet
            left, width = place(call.get("created_at"), call.get("ended_at") or call.get("created_at"))
            segments.append({"left": left, "width": min(width, 100 - left), "status": call["status"], "title": call["status"]})
        rows.append(
            {
                "kind": "call",
                "label": call["invocation_id"],
                "status": call["status"],
                "segments": segments,
                "duration": duration(call.get("created_at"), call.get("ended_at"), now=now),
            }
        )
    for wait in waits:
        left, width = place(wait.get("created_at"), wait.get("answered_at"))
        rows.append(
            {
                "kind": "wait",
                "label": wait["name"],
                "status": _wait_status(wait),
                "segments": [
                    {
                        "left": left,
                        "width": min(width, 100 - left),
                        "status": _wait_status(wait),
                        "title": f"wait {wait['name']}: {wait['status']}",
                    }
                ],
                "duration": duration(wait.get("created_at"), wait.get("answered_at"), now=now),
            }
        )
    rows.sort(key=lambda row: row["segments"][0]["left"])  # stable: calls that start together keep their order
    ticks = [
        {"left": round(i * 100 / (_TICKS - 1), 3), "label": duration(start, start + span * i / (_TICKS - 1))}
        for i in range(_TICKS)
    ]
    return {"rows": rows, "ticks": ticks}


def _wait_status(wait: dict[str, Any]) -> str:
    return {"pending": "waiting", "answered": "completed", "aborted": "cancelled"}.get(wait["status"], wait["status"])
