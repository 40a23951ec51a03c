"""Durable waits for input, suspension, and cancellation requests (part of the service layer).

The races are settled in single transactions: an answer and a suspension
serialize, so an input that arrives while the driver suspends is either seen by
the driver or finds the execution suspended (and resumes it); two answers to
one wait: exactly one wins.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import and_, bindparam, insert, select, update

from kitaru.contracts.lifecycle import validate_wait_input
from kitaru_server import tables as t
from kitaru_server.errors import ConflictError, NotFoundError, StateError

# A driver polls this four times a second: built once, not per poll.
_CANCEL_REQUESTED = select(t.executions.c.cancel_requested).where(t.executions.c.exec_id == bindparam("exec_id"))


class WaitOperations:
    """Mixed into :class:`~kitaru_server.service.KitaruService` (uses its engines)."""

    _write: Any
    _read: Any

    def open_wait(self, exec_id: str, driver_id: str, record: dict[str, Any]) -> dict[str, Any]:
        """Record a pending wait (idempotent: an existing wait of that name is returned) and mark the execution waiting."""
        now = time.time()
        with self._write.begin() as conn:
            existing = (
                conn.execute(select(t.waits).where(and_(t.waits.c.exec_id == exec_id, t.waits.c.name == record["name"])))
                .mappings()
                .first()
            )
            if existing is not None:
                if existing["status"] == "pending":  # a resumed driver reaches the same wait again
                    _mark_waiting(conn, exec_id, driver_id)
                return dict(existing)
            row = {"exec_id": exec_id, "status": "pending", "created_at": now, "metadata": {}, **record}
            conn.execute(insert(t.waits).values(**row))
            if row["status"] == "pending":
                _mark_waiting(conn, exec_id, driver_id)
            conn.execute(
                insert(t.events).values(
                    exec_id=exec_id,
                    timestamp=now,
                    kind="wait.opened",
                    invocation_id=None,
                    payload={"wait": record["name"], "question": record.get("question")},
                )
            )
            return row

    def get_wait(self, exec_id: str, name: str) -> dict[str, Any]:
        """One wait of an execution. Raises NotFoundError naming the pending waits."""
        with self._read.connect() as conn:
            row = (
                conn.execute(select(t.waits).where(and_(t.waits.c.exec_id == exec_id, t.waits.c.name == name))).mappings().first()
            )
        if row is None:
            pending = [w["name"] for w in self.list_waits(exec_id, status="pending")]
            raise NotFoundError(
                f"execution {exec_id!r} has no wait named {name!r}; "
                + (f"its pending waits are {pending}." if pending else "it has no pending wait."),
                exec_id=exec_id,
            )
        return dict(row)

    def list_waits(self, exec_id: str, *, status: str | None = None) -> list[dict[str, Any]]:
        """The execution's waits in the order they were opened."""
        query = select(t.waits).where(t.waits.c.exec_id == exec_id).order_by(t.waits.c.seq)
        if status is not None:
            query = query.where(t.waits.c.status == status)
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def settle_wait(self, exec_id: str, name: str, *, status: str, value: Any = None) -> dict[str, Any]:
        """Answer (``answered``) or abort (``aborted``) a pending wait; exactly one caller wins.

        Returns the execution as it is after the change (a ``waiting`` execution with no
        ``driver_id`` is suspended: the caller resumes it).

        Raises:
            NotFoundError: no such wait.
            ConflictError: the wait was already answered or aborted.
        """
        now = time.time()
        with self._write.begin() as conn:
            changed = conn.execute(
                update(t.waits)
                .where(and_(t.waits.c.exec_id == exec_id, t.waits.c.name == name, t.waits.c.status == "pending"))
                .values(status=status, value=value, answered_at=now)
            ).rowcount
            if changed:
                conn.execute(
                    insert(t.events).values(
                        exec_id=exec_id, timestamp=now, kind=f"wait.{status}", invocation_id=None, payload={"wait": name}
                    )
                )
                execution = conn.execute(select(t.executions).where(t.executions.c.exec_id == exec_id)).mappings().first()
        if not changed:
            current = self.get_wait(exec_id, name)
            raise ConflictError(
                f"wait {name!r} of execution {exec_id!r} is already {current['status']}; its input cannot change.",
                exec_id=exec_id,
            )
        return dict(execution)

    def answer_wait(self, exec_id: str, name: str, value: Any) -> dict[str, Any]:
        """Validate ``value`` against the wait's schema, then answer it (see :meth:`settle_wait`).

        Raises:
            NotFoundError: no such wait.
            KitaruWaitValidationError: ``value`` does not match the schema (the wait stays open).
            ConflictError: the wait was already answered or aborted.
        """
        validate_wait_input(self.get_wait(exec_id, name)["schema"], value, wait_name=name)
        return self.settle_wait(exec_id, name, status="answered", value=value)

    def suspend_execution(self, exec_id: str, driver_id: str, wait_name: str) -> bool:
        """Release the driver of an execution parked on ``wait_name``; ``False`` if the wait was settled meanwhile."""
        with self._write.begin() as conn:
            status = conn.execute(
                select(t.waits.c.status).where(and_(t.waits.c.exec_id == exec_id, t.waits.c.name == wait_name))
            ).scalar()
            if status != "pending":
                return False
            return (
                conn.execute(
                    update(t.executions)
                    .where(and_(t.executions.c.exec_id == exec_id, t.executions.c.driver_id == driver_id))
                    .values(status="waiting", driver_id=None, lease_expires_at=None)
                ).rowcount
                == 1
            )

    def request_cancel(self, exec_id: str) -> str:
        """Cancel an execution: at once if no driver runs it (``"cancelled"``), else ask its driver (``"requested"``)."""
        now = time.time()
        with self._write.begin() as conn:
            row = conn.execute(select(t.executions).where(t.executions.c.exec_id == exec_id)).mappings().first()
            if row is None:
                raise NotFoundError(
                    f"execution {exec_id!r} not found; list executions with `kitaru executions list`.", exec_id=exec_id
                )
            if row["status"] in ("completed", "failed", "cancelled"):
                raise StateError(
                    f"execution {exec_id!r} is already {row['status']}; there is nothing to cancel.",
                    exec_id=exec_id,
                    status=row["status"],
                )
            driven = row["driver_id"] is not None and row["lease_expires_at"] is not None and row["lease_expires_at"] >= now
            if driven:
                conn.execute(update(t.executions).where(t.executions.c.exec_id == exec_id).values(cancel_requested=True))
                return "requested"
            # Pending waits stay open: a resumed execution asks for the same input again.
            conn.execute(
                update(t.executions)
                .where(t.executions.c.exec_id == exec_id)
                .values(status="cancelled", ended_at=now, driver_id=None, lease_expires_at=None, cancel_requested=False)
            )
            return "cancelled"

    def cancel_requested(self, exec_id: str) -> bool:
        with self._read.connect() as conn:
            return bool(conn.execute(_CANCEL_REQUESTED, {"exec_id": exec_id}).scalar())


def _mark_waiting(conn: Any, exec_id: str, driver_id: str) -> None:
    conn.execute(
        update(t.executions)
        .where(and_(t.executions.c.exec_id == exec_id, t.executions.c.driver_id == driver_id))
        .values(status="waiting")
    )
