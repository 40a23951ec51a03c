"""Group commit: operations arriving together are applied in one database transaction."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import time
from typing import Any

_COMMIT_THREADS = 8  # services (databases, servers) with a commit thread kept open


def event(record: dict[str, Any], kind: str, *, timestamp: float | None = None, **payload: Any) -> dict[str, Any]:
    """An event row about the call described by ``record``."""
    return {
        "exec_id": record["exec_id"],
        "timestamp": timestamp or time.time(),
        "kind": kind,
        "invocation_id": record["invocation_id"],
        "payload": payload,
    }


def finished_operation(record: dict[str, Any], outcome: dict[str, Any], is_last: bool) -> dict[str, Any]:
    """The ``attempt_finished`` operation for one attempt's outcome (see :mod:`kitaru_server.batch`)."""
    error = outcome["error"]
    attempt = record["attempt"]
    return {
        **record,
        "op": "attempt_finished",
        "final": outcome["status"] == "completed" or is_last,
        "status": outcome["status"],
        "started_at": outcome["started_at"],
        "ended_at": outcome["ended_at"],
        "output": outcome["output"],
        "error": {k: v for k, v in error.items() if k != "pickled"} if error else None,
        "metadata": outcome["metadata"],
        "artifacts": outcome["artifacts"],
        "logs": outcome["logs"],
        **{key: outcome.get(key) for key in ("ray_task_id", "ray_node_id", "worker_pid")},
        "events": [
            event(record, "checkpoint.started", timestamp=outcome["started_at"], attempt=attempt),
            *outcome["events"],
            event(
                record,
                "checkpoint.returned" if error is None else "checkpoint.failed",
                timestamp=outcome["ended_at"],
                attempt=attempt,
            ),
        ],
    }


class GroupCommitter:
    """Applies batches of service operations; concurrent callers share a transaction.

    Runs on an asyncio loop; the database work happens on one dedicated thread per
    service (a database or a server) so the loop keeps accepting work while a
    transaction is open, and a server riding out an outage holds up only its own commits.
    """

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str | None], list[tuple[list[dict[str, Any]], asyncio.Future[None] | None]]] = {}
        self._flushing: set[tuple[str, str | None]] = set()
        self._executors: collections.OrderedDict[tuple[str, str | None], concurrent.futures.ThreadPoolExecutor] = (
            collections.OrderedDict()
        )

    async def commit(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations``; returns once they are durable."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._enqueue((service_url, api_key), operations, future)
        await future

    def record(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations`` soon, without waiting (must be called on the loop)."""
        self._enqueue((service_url, api_key), operations, None)

    def _enqueue(
        self, target: tuple[str, str | None], operations: list[dict[str, Any]], future: asyncio.Future[None] | None
    ) -> None:
        self._queues.setdefault(target, []).append((operations, future))
        if target not in self._flushing:
            self._flushing.add(target)
            asyncio.ensure_future(self._flush(target))

    def _executor(self, target: tuple[str, str | None]) -> concurrent.futures.ThreadPoolExecutor:
        """The commit thread of ``target``, kept across batches (the least recently used beyond a few ends)."""
        executor = self._executors.get(target)
        if executor is None:
            while len(self._executors) >= _COMMIT_THREADS:
                stale, idle = next(iter(self._executors.items()))
                if stale in self._flushing:
                    break
                self._executors.pop(stale)
                idle.shutdown(wait=False)
            executor = self._executors[target] = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="kitaru-commit"
            )
        self._executors.move_to_end(target)
        return executor

    async def _flush(self, target: tuple[str, str | None]) -> None:
        from kitaru._service import connect_service

        loop = asyncio.get_running_loop()
        try:
            while self._queues.get(target):
                batch = self._queues.pop(target)
                operations = [op for ops, _ in batch for op in ops]
                try:
                    await loop.run_in_executor(self._executor(target), connect_service(*target).apply, operations)
                except Exception as exc:  # noqa: BLE001 - handed to every waiter of the batch
                    for _, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in batch:
                        if future is not None and not future.done():
                            future.set_result(None)
        finally:
            self._flushing.discard(target)
