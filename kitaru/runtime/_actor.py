"""The runtime actor: stores checkpoint outputs and commits their records, for every driver on its node.

One detached actor per node serves every driver there (its start-up would otherwise
be part of every run's fixed cost). A checkpoint's task ends as soon as its value is
in Ray's object store; the actor then stores the output the task handed over (see
:mod:`kitaru.runtime._handoff`), commits the attempt's record, and only then answers
the driver, which releases the value (durable before visible).

The driver asks the actor of its own node. When the task ran on another node, that
actor passes the write on to the actor of the task's node, so values never cross
nodes to be persisted.

Operations carry their own service URL, key and storage, so drivers of different
homes share one actor. Ray restarts it if it dies and replays its in-flight calls:
writes are content-addressed and atomic, commits idempotent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
from typing import Any

from kitaru.errors import FailureOrigin, KitaruBackendError
from kitaru.runtime._attempt import describe_error
from kitaru.runtime._commit import GroupCommitter, finished_operation
from kitaru.runtime._handoff import write_output
from kitaru.storage import SerializationError, Storage, open_storage

_WRITERS = 8  # outputs of concurrent calls are written in parallel
_STORAGES = 32  # storage connections kept (one per storage URL, options and service)


class RuntimeActor:
    """Async Ray actor: writes handed-over outputs and group-commits attempts' records."""

    def __init__(self) -> None:
        import ray

        self._committer = GroupCommitter()
        self._node_id = ray.get_runtime_context().get_node_id()
        self._writers = concurrent.futures.ThreadPoolExecutor(_WRITERS, thread_name_prefix="kitaru-write")
        self._storages: dict[str, Storage] = {}
        self._peers: dict[str, Any] = {}

    async def commit(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations``; returns once they are committed."""
        await self._committer.commit(service_url, api_key, operations)

    async def finish_attempt(
        self,
        settings: dict[str, Any],
        record: dict[str, Any],
        is_last: bool,
        outcome: dict[str, Any],
        refs: list[Any] | None = None,
    ) -> dict[str, Any]:
        """Store the output an attempt's task handed over, then commit the attempt; returns what the driver needs.

        ``refs`` holds the task's value and payload ObjectRefs, nested so that Ray does
        not fetch them here: they are read on the task's own node. An output left in the
        object store needs them; without them the answer is ``{"needs_refs": True}`` and
        nothing is committed. A write that fails turns the attempt into a failed one
        (nothing half-stored is committed).
        """
        if outcome["status"] == "completed":
            if refs is None and outcome["handoff"]["source"] != "inline":
                return {"needs_refs": True}
            outcome = await self._with_output(settings, outcome, refs)
        operation = finished_operation(record, outcome, is_last)
        await self._committer.commit(settings["service_url"], settings.get("api_key"), [operation])
        return {key: outcome[key] for key in ("status", "started_at", "ended_at", "output", "error")}

    async def write_output(self, settings: dict[str, Any], handoff: dict[str, Any], refs: list[Any] | None) -> dict[str, Any]:
        """Store one handed-over output from this node's object store; returns its record."""
        value_ref, payload_ref = refs or (None, None)
        source = None
        if handoff["source"] == "value":
            source = await value_ref
        elif handoff["source"] == "payload":
            source = await payload_ref
        storage = self._storage(settings)
        if handoff["source"] == "inline" and storage.is_local:  # a small local file: a thread hop would cost more
            return write_output(storage, handoff, source)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writers, write_output, storage, handoff, source)

    async def record(self, service_url: str, api_key: str | None, operations: list[dict[str, Any]]) -> None:
        """Apply ``operations`` with the next batch, without waiting for it."""
        self._committer.record(service_url, api_key, operations)

    async def pid(self) -> int:
        return os.getpid()

    async def _with_output(self, settings: dict[str, Any], outcome: dict[str, Any], refs: list[Any] | None) -> dict[str, Any]:
        import ray

        handoff = outcome.pop("handoff")
        node_id = outcome.get("ray_node_id") or self._node_id
        try:
            if handoff["source"] == "inline" or node_id == self._node_id:
                output = await self.write_output(settings, handoff, refs)
            else:
                output = await self._peer(node_id).write_output.remote(settings, handoff, refs)
        except SerializationError as exc:
            return _failed(outcome, exc, FailureOrigin.USER_CODE)
        except KitaruBackendError as exc:
            return _failed(outcome, exc, FailureOrigin.BACKEND)
        except ray.exceptions.RayError as exc:  # the value was lost with its node: the attempt may run again
            return _failed(outcome, exc, FailureOrigin.RUNTIME)
        return {**outcome, "output": output}

    def _storage(self, settings: dict[str, Any]) -> Storage:
        key = json.dumps(
            [settings["storage_url"], settings["storage_options"], settings["service_url"], settings.get("api_key")],
            sort_keys=True,
            default=str,
        )
        storage = self._storages.get(key)
        if storage is None:
            if len(self._storages) >= _STORAGES:
                self._storages.pop(next(iter(self._storages)))
            storage = self._storages[key] = open_storage(
                settings["storage_url"],
                settings["storage_options"],
                service_url=settings["service_url"],
                api_key=settings.get("api_key"),
            )
        return storage

    def _peer(self, node_id: str) -> Any:
        peer = self._peers.get(node_id)
        if peer is None:
            from kitaru.runtime._ray import runtime_actor_on

            peer = self._peers[node_id] = runtime_actor_on(node_id)
        return peer


def _failed(outcome: dict[str, Any], exc: BaseException, origin: FailureOrigin) -> dict[str, Any]:
    return {**outcome, "status": "failed", "output": None, "error": describe_error(exc, origin)}
