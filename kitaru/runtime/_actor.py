"""The runtime actor: commits checkpoint records for the executions of the drivers on its node.

One detached actor per node serves every driver there (its start-up would otherwise
be part of every run's fixed cost). Operations carry their own service URL and key,
so drivers of different homes share it. It is restarted by Ray if it dies, and every
operation it applies is idempotent, so Ray may replay its in-flight calls.

Values are persisted by the attempt's own task (see :mod:`kitaru.runtime._attempt`),
on the node where they were produced: deserialising them here would need every
driver's code importable in this one shared process.
"""

from __future__ import annotations

import os
from typing import Any

from kitaru.runtime._commit import GroupCommitter, finished_operation


class RuntimeActor:
    """Async Ray actor wrapping a :class:`GroupCommitter`."""

    def __init__(self) -> None:
        self._committer = GroupCommitter()

    async def commit(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations``; returns once they are committed."""
        await self._committer.commit(service_url, api_key, operations)

    async def commit_outcome(
        self, service_url: str, api_key: str | None, record: dict[str, Any], is_last: bool, outcome: dict[str, Any]
    ) -> dict[str, Any]:
        """Commit one attempt's outcome (straight from its Ray task); returns what the driver needs of it."""
        await self._committer.commit(service_url, api_key, [finished_operation(record, outcome, is_last)])
        return {key: outcome[key] for key in ("status", "started_at", "ended_at", "output", "error")}

    async def record(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations`` with the next batch, without waiting for it."""
        self._committer.record(service_url, api_key, operations)

    async def pid(self) -> int:
        return os.getpid()
