"""Server-sent events: rows of a growing table, from a given id, until the execution ends.

Each row is one event (``id:`` is the row id, so a client resumes with
``Last-Event-ID`` or ``?after_id=``). The stream polls the service; it sends a
comment line every ``keepalive`` seconds of silence, and an ``end`` event once
the execution is terminal and every row was sent. A client that disconnects
cancels the generator (Starlette watches the connection).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

__all__ = ["event_stream"]

_BATCH = 500


def event_stream(
    fetch: Callable[[int, int], list[dict[str, Any]]],
    finished: Callable[[], bool],
    *,
    event: str,
    after_id: int,
    poll_seconds: float,
    keepalive_seconds: float = 15.0,
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``fetch(after_id, limit)`` rows until ``finished()``."""
    return StreamingResponse(
        _events(fetch, finished, event, after_id, poll_seconds, keepalive_seconds),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _events(
    fetch: Callable[[int, int], list[dict[str, Any]]],
    finished: Callable[[], bool],
    event: str,
    after_id: int,
    poll_seconds: float,
    keepalive_seconds: float,
) -> AsyncIterator[str]:
    silent = 0.0
    while True:
        done = await run_in_threadpool(finished)  # checked before the fetch, so rows committed before the end are sent
        rows = await run_in_threadpool(fetch, after_id, _BATCH)
        for row in rows:
            after_id = row["id"]
            yield f"id: {row['id']}\nevent: {event}\ndata: {json.dumps(row, allow_nan=False)}\n\n"
        if len(rows) == _BATCH:
            continue
        if done:
            yield f"event: end\ndata: {json.dumps({'last_id': after_id})}\n\n"
            return
        if rows:
            silent = 0.0
        elif silent >= keepalive_seconds:
            yield ": keepalive\n\n"
            silent = 0.0
        await asyncio.sleep(poll_seconds)
        silent += poll_seconds
