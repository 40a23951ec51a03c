"""Runtime operations (call started, attempt finished, logs, events), applied as one batch.

A batch is a group commit: each kind of row is written with one prepared
``INSERT … ON CONFLICT`` executed for the whole batch. Every operation is
idempotent (replaying a batch after a crash changes nothing), and a committed
call (completed, cached, replayed, overridden) never changes again.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

from sqlalchemy import Connection, Executable, and_, or_, select, update

from kitaru.errors import KitaruUsageError
from kitaru_server import tables as t
from kitaru_server.prepared import execute_many

MAX_EXECUTION_METADATA_BYTES = 1024 * 1024  # an execution's merged metadata, as JSON
DONE_CALL_STATUSES = ("completed", "cached", "replayed", "overridden")


@dataclasses.dataclass(frozen=True)
class Statements:
    """The prepared upserts for one SQL dialect (SQLite and PostgreSQL share the syntax)."""

    upsert_call: Executable
    upsert_started_call: Executable
    upsert_attempt: Executable
    insert_artifact: Executable
    insert_log: Executable
    insert_event: Executable

    @classmethod
    def for_dialect(cls, dialect: str) -> Statements:
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        calls = insert(t.checkpoint_calls)
        attempts = insert(t.attempts)
        settled = and_(*(t.checkpoint_calls.c.status != status for status in DONE_CALL_STATUSES))
        return cls(
            # A "started" record may reach the database after the outcome of the same attempt
            # (it is only sent for slow calls, through another queue): it never undoes an outcome
            # that ended after it started. Its created_at parameter carries the attempt's start.
            upsert_started_call=calls.on_conflict_do_update(
                index_elements=["call_id"],
                set_={"status": calls.excluded.status, "ended_at": None},
                where=and_(
                    settled,
                    or_(t.checkpoint_calls.c.ended_at.is_(None), t.checkpoint_calls.c.ended_at < calls.excluded.created_at),
                ),
            ),
            upsert_call=calls.on_conflict_do_update(
                index_elements=["call_id"],
                set_={
                    "status": calls.excluded.status,
                    "metadata": calls.excluded.metadata,
                    "output": calls.excluded.output,
                    "ended_at": calls.excluded.ended_at,
                },
                where=settled,
            ),
            upsert_attempt=attempts.on_conflict_do_update(
                index_elements=["call_id", "number"],
                set_={
                    "status": attempts.excluded.status,
                    "started_at": attempts.excluded.started_at,  # the worker's start, not the driver's announcement
                    "ended_at": attempts.excluded.ended_at,
                    "error": attempts.excluded.error,
                    "ray_task_id": attempts.excluded.ray_task_id,
                    "ray_node_id": attempts.excluded.ray_node_id,
                    "worker_pid": attempts.excluded.worker_pid,
                },
                where=t.attempts.c.status == "running",
            ),
            insert_artifact=insert(t.artifacts).on_conflict_do_nothing(index_elements=["exec_id", "name"]),
            insert_log=insert(t.logs),
            insert_event=insert(t.events),
        )


@dataclasses.dataclass
class _Rows:
    calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    started_calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    attempts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    artifacts: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    logs: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    events: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    metadata: list[tuple[str, dict[str, Any]]] = dataclasses.field(default_factory=list)


def apply_batch(conn: Connection, statements: Statements, operations: list[dict[str, Any]]) -> None:
    """Write every operation of the batch on ``conn`` (inside the caller's transaction)."""
    rows = _Rows()
    for operation in operations:
        _COLLECTORS[operation["op"]](rows, operation)
    for statement, params in (
        (statements.upsert_started_call, rows.started_calls),
        (statements.upsert_call, rows.calls),
        (statements.upsert_attempt, rows.attempts),
        (statements.insert_artifact, rows.artifacts),
        (statements.insert_log, rows.logs),
        (statements.insert_event, rows.events),
    ):
        if params:
            execute_many(conn, statement, params)
    for exec_id, fields in rows.metadata:
        merge_execution_metadata(conn, exec_id, fields)


def merge_execution_metadata(conn: Connection, exec_id: str, fields: dict[str, Any]) -> bool:
    """Merge ``fields`` into an execution's metadata; ``False`` if there is no such execution.

    Raises:
        KitaruUsageError: the merged metadata would exceed :data:`MAX_EXECUTION_METADATA_BYTES`.
    """
    current = conn.execute(select(t.executions.c.metadata).where(t.executions.c.exec_id == exec_id)).first()
    if current is None:
        return False
    merged = {**(current[0] or {}), **fields}
    size = len(json.dumps(merged, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8", "surrogatepass"))
    if size > MAX_EXECUTION_METADATA_BYTES:
        raise KitaruUsageError(
            f"execution {exec_id!r}'s metadata would grow to {size} bytes, over the limit of {MAX_EXECUTION_METADATA_BYTES}; "
            "store large values as artifacts (kitaru.save) and keep metadata small."
        )
    conn.execute(update(t.executions).where(t.executions.c.exec_id == exec_id).values(metadata=merged))
    return True


def _call_row(op: dict[str, Any], status: str, *, ended: bool) -> dict[str, Any]:
    return {
        "call_id": op["call_id"],
        "exec_id": op["exec_id"],
        "invocation_id": op["invocation_id"],
        "seq": op["seq"],
        "name": op["name"],
        "checkpoint_type": op.get("checkpoint_type"),
        "status": status,
        "cache_key": op.get("cache_key"),
        "output": op.get("output"),
        "metadata": op.get("metadata") or {},
        "parent_call_ids": op.get("parent_call_ids") or [],
        "original_call_id": op.get("original_call_id"),
        "inputs": op.get("inputs"),
        "created_at": op.get("created_at") or time.time(),
        "ended_at": (op.get("ended_at") or time.time()) if ended else None,
    }


def _attempt_row(op: dict[str, Any], status: str) -> dict[str, Any]:
    return {
        "call_id": op["call_id"],
        "number": op["attempt"],
        "status": status,
        "started_at": op.get("started_at"),
        "ended_at": op.get("ended_at"),
        "error": op.get("error"),
        "ray_task_id": op.get("ray_task_id"),
        "ray_node_id": op.get("ray_node_id"),
        "worker_pid": op.get("worker_pid"),
    }


def artifact_row(
    exec_id: str, invocation_id: str, name: str, kind: str, meta: dict[str, Any], tags: list[str] | None
) -> dict[str, Any]:
    return {
        "artifact_id": uuid.uuid4().hex,
        "exec_id": exec_id,
        "invocation_id": invocation_id,
        "name": name,
        "kind": kind,
        "uri": meta["uri"],
        "digest": meta.get("digest") or meta["sha256"],
        "digest_algorithm": (meta.get("digest_algorithm") or "blake3") if meta.get("digest") else "sha256",
        "size": meta["size"],
        "serializer": meta["serializer"],
        "type_path": meta["type_path"],
        "tags": tags or [],
        "created_at": time.time(),
    }


def _collect_started(rows: _Rows, op: dict[str, Any]) -> None:
    rows.started_calls.append({**_call_row(op, "running", ended=False), "created_at": op.get("started_at") or time.time()})
    if op.get("attempt"):
        rows.attempts.append(_attempt_row({**op, "ended_at": None, "error": None}, "running"))
    rows.events.extend(op.get("events", ()))


def _collect_finished(rows: _Rows, op: dict[str, Any]) -> None:
    """One attempt's outcome; the final one settles the call (and commits its output)."""
    final = op.get("final", True)
    rows.calls.append(_call_row(op, op["status"] if final else "running", ended=final))
    if op.get("attempt"):
        rows.attempts.append(_attempt_row(op, op["status"]))
    if op.get("output") is not None:
        rows.artifacts.append(artifact_row(op["exec_id"], op["invocation_id"], op["invocation_id"], "output", op["output"], None))
    for artifact in op.get("artifacts", ()):
        rows.artifacts.append(
            artifact_row(
                op["exec_id"],
                op["invocation_id"],
                artifact["name"],
                artifact.get("kind", "saved"),
                artifact["meta"],
                artifact.get("tags"),
            )
        )
    rows.logs.extend(op.get("logs", ()))
    rows.events.extend(op.get("events", ()))


_COLLECTORS = {
    "call_started": _collect_started,
    "attempt_finished": _collect_finished,
    "logs": lambda rows, op: rows.logs.extend(op["entries"]),
    "events": lambda rows, op: rows.events.extend(op["entries"]),
    "metadata": lambda rows, op: rows.metadata.append((op["exec_id"], op["fields"])),
}
