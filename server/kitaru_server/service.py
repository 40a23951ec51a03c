"""The service layer: every operation on executions, calls, artifacts and logs.

Plain Python over SQLAlchemy Core, returning JSON-ready dicts. Embedded mode
calls it in-process; the HTTP API is a thin layer over the same methods.
Timestamps are Unix seconds (floats).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from kitaru_server import tables as t
from kitaru_server.batch import Statements, apply_batch, artifact_row, merge_execution_metadata
from kitaru_server.db import make_engines, upgrade_schema
from kitaru_server.deployments import DeploymentOperations
from kitaru_server.errors import ConflictError, NotFoundError, StateError
from kitaru_server.keys import KeyOperations
from kitaru_server.secrets import SecretOperations
from kitaru_server.stacks import StackOperations
from kitaru_server.waits import WaitOperations

__all__ = ["KitaruService", "service_for"]

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})
LIVE_STATUSES = ("running", "waiting")  # statuses a driver holds a lease in
# Built once: every run reads its execution by id several times, and building the statement costs
# as much CPU as running it on SQLite.
_KNOWN_FACTS = 100_000  # executions whose run facts a process keeps (a few hundred bytes each)
_EXECUTION_BY_ID = select(t.executions).where(t.executions.c.exec_id == bindparam("exec_id"))
_INSERT_EXECUTION = insert(t.executions).returning(*t.executions.c)
# Sets the columns its parameters name besides the two it matches on.
_DRIVEN_EXECUTION_UPDATE = update(t.executions).where(
    and_(
        t.executions.c.exec_id == bindparam("match_exec_id"),
        t.executions.c.driver_id == bindparam("match_driver_id"),
        t.executions.c.status.in_(LIVE_STATUSES),
    )
)


class KitaruService(WaitOperations, SecretOperations, StackOperations, KeyOperations, DeploymentOperations):
    """Operations on one database (SQLite or PostgreSQL, by URL)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._write, self._read = make_engines(database_url)
        upgrade_schema(self._write)
        self._statements = Statements.for_dialect(self._write.dialect.name)
        self._verified_keys = {}
        self._known_facts: dict[str, dict[str, Any]] = {}  # run_facts of executions, by id

    def ping(self) -> bool:
        """Whether the database answers (the server's readiness)."""
        try:
            with self._read.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError:
            return False
        return True

    def close(self) -> None:
        """Close the database connections (the service may still be used: they reopen on demand)."""
        self._write.dispose()
        self._read.dispose()

    # --- executions ---------------------------------------------------------------------------

    def create_execution(self, record: dict[str, Any]) -> dict[str, Any]:
        """Insert a new execution (status ``running``, leased to ``record['driver_id']``).

        Raises:
            ConflictError: an execution with this id exists already.
        """
        now = time.time()
        row = {
            "metadata": {},
            "created_at": now,
            "started_at": now,
            "status": "running",
            "run_attempt": 1,
            **record,
        }
        try:
            with self._write.begin() as conn:
                created = conn.execute(_INSERT_EXECUTION, row).mappings().one()
        except IntegrityError:
            if self._execution_exists(row["exec_id"]):
                raise ConflictError(f"execution {row['exec_id']!r} already exists") from None
            raise
        self._remember_facts(created["exec_id"], created["settings"], created["created_by"])
        return _execution_dict(created)

    def get_execution(self, exec_id: str, *, with_calls: bool = True) -> dict[str, Any]:
        """One execution, with its calls (and their attempts and artifacts) when asked.

        Raises:
            NotFoundError: no execution has this id.
        """
        with self._read.connect() as conn:
            row = conn.execute(_EXECUTION_BY_ID, {"exec_id": exec_id}).mappings().first()
            if row is None:
                raise _execution_not_found(exec_id)
            execution = _execution_dict(row)
            if with_calls:
                execution["checkpoints"] = self._calls(conn, exec_id)
        return execution

    def _execution_exists(self, exec_id: str) -> bool:
        with self._read.connect() as conn:
            return conn.execute(select(t.executions.c.exec_id).where(t.executions.c.exec_id == exec_id)).first() is not None

    def list_executions(
        self,
        *,
        flow: str | None = None,
        status: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[dict[str, Any]]:
        """Executions, newest first, optionally filtered by flow name and status."""
        query = select(t.executions).order_by(t.executions.c.created_at.desc()).limit(limit).offset(offset)
        if flow:
            query = query.where(t.executions.c.flow == flow)
        if status:
            query = query.where(_status_condition(status, time.time()))
        with self._read.connect() as conn:
            return [_execution_dict(row) for row in conn.execute(query).mappings()]

    def claim_execution(
        self, exec_id: str, driver_id: str, lease_seconds: float, *, from_statuses: Iterable[str]
    ) -> dict[str, Any]:
        """Make ``driver_id`` the execution's driver, if its status is one of ``from_statuses``.

        ``interrupted`` (a running execution whose lease lapsed) may be named among them.

        Raises:
            StateError: the execution is in another state (the message names it).
        """
        now = time.time()
        allowed = set(from_statuses)
        with self._write.begin() as conn:
            row = conn.execute(select(t.executions).where(t.executions.c.exec_id == exec_id)).mappings().first()
            if row is None:
                raise _execution_not_found(exec_id)
            status = _effective_status(row, now)
            held = row["driver_id"] is not None and row["lease_expires_at"] is not None and row["lease_expires_at"] >= now
            if status not in allowed or held:
                raise StateError(f"execution {exec_id!r} is {status}", status=status)
            run_attempt = row["run_attempt"] + (1 if status == "failed" else 0)
            conn.execute(
                update(t.executions)
                .where(t.executions.c.exec_id == exec_id)
                .values(
                    status="running",
                    driver_id=driver_id,
                    lease_expires_at=now + lease_seconds,
                    ended_at=None,
                    failure=None,
                    run_attempt=run_attempt,
                    cancel_requested=False,
                )
            )
        return self.get_execution(exec_id, with_calls=False)

    def renew_lease(self, exec_id: str, driver_id: str, lease_seconds: float) -> bool:
        """Extend the driver's lease; ``False`` if the execution is no longer this driver's."""
        values = {"match_exec_id": exec_id, "match_driver_id": driver_id, "lease_expires_at": time.time() + lease_seconds}
        with self._write.begin() as conn:
            return conn.execute(_DRIVEN_EXECUTION_UPDATE, values).rowcount == 1

    def set_live_status(self, exec_id: str, driver_id: str, status: str) -> bool:
        """Switch a driven execution between ``running`` and ``waiting`` (its driver polls a wait)."""
        with self._write.begin() as conn:
            return (
                conn.execute(
                    update(t.executions)
                    .where(
                        and_(
                            t.executions.c.exec_id == exec_id,
                            t.executions.c.driver_id == driver_id,
                            t.executions.c.status.in_(LIVE_STATUSES),
                        )
                    )
                    .values(status=status)
                ).rowcount
                == 1
            )

    def finish_execution(
        self,
        exec_id: str,
        driver_id: str,
        status: str,
        *,
        result: dict[str, Any] | None = None,
        failure: dict[str, Any] | None = None,
    ) -> bool:
        """Record the execution's end; ``False`` if ``driver_id`` no longer owns it."""
        values: dict[str, Any] = {"status": status, "ended_at": time.time(), "lease_expires_at": None}
        if result is not None:
            values["result"] = result
        if failure is not None:
            values["failure"] = failure
        with self._write.begin() as conn:
            changed = conn.execute(
                _DRIVEN_EXECUTION_UPDATE, {"match_exec_id": exec_id, "match_driver_id": driver_id, **values}
            ).rowcount
            if changed and result is not None:
                conn.execute(self._statements.insert_artifact, [_result_artifact(exec_id, result)])
        return changed == 1

    def record_continuation(self, exec_id: str, principal: dict[str, Any] | None, action: str) -> None:
        """Record who continued the execution (``continued_by``, and an ``execution.continued`` event)."""
        now = time.time()
        by = None if principal is None else {**principal, "action": action, "at": now}
        with self._write.begin() as conn:
            conn.execute(update(t.executions).where(t.executions.c.exec_id == exec_id).values(continued_by=by))
            conn.execute(
                insert(t.events).values(
                    exec_id=exec_id,
                    timestamp=now,
                    kind="execution.continued",
                    invocation_id=None,
                    payload={"action": action, "by": principal},
                )
            )

    def run_facts(self, exec_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """What the API checks a runtime's request against: ``{exec_id: {exec_id, storage_url, created_by}}``
        of the executions that exist among ``exec_ids``.

        These never change once an execution is recorded (and executions are never deleted), so each
        execution's are read once per process: a runtime asks with every batch it commits.
        """
        facts = {}
        for exec_id in exec_ids:
            known = self._known_facts.get(exec_id)
            if known is not None:
                facts[exec_id] = known
        unknown = [exec_id for exec_id in exec_ids if exec_id not in facts]
        if unknown:
            columns = (t.executions.c.exec_id, t.executions.c.settings, t.executions.c.created_by)
            with self._read.connect() as conn:
                for row in conn.execute(select(*columns).where(t.executions.c.exec_id.in_(unknown))):
                    facts[row.exec_id] = self._remember_facts(row.exec_id, row.settings, row.created_by)
        return facts

    def _remember_facts(self, exec_id: str, settings: dict[str, Any] | None, created_by: Any) -> dict[str, Any]:
        if len(self._known_facts) >= _KNOWN_FACTS:
            self._known_facts.clear()
        facts = {"exec_id": exec_id, "storage_url": (settings or {}).get("storage_url"), "created_by": created_by}
        self._known_facts[exec_id] = facts
        return facts

    def update_execution_metadata(self, exec_id: str, fields: dict[str, Any]) -> None:
        """Merge ``fields`` into the execution's metadata."""
        with self._write.begin() as conn:
            if not merge_execution_metadata(conn, exec_id, fields):
                raise _execution_not_found(exec_id)

    # --- checkpoint calls ---------------------------------------------------------------------

    def existing_calls(self, exec_id: str) -> dict[str, dict[str, Any]]:
        """Every call of the execution, by invocation id, with ``attempt_count`` (used to resume)."""
        attempt_count = (
            select(func.count())
            .select_from(t.attempts)
            .where(t.attempts.c.call_id == t.checkpoint_calls.c.call_id)
            .scalar_subquery()
        )
        with self._read.connect() as conn:
            rows = conn.execute(
                select(t.checkpoint_calls, attempt_count.label("attempt_count")).where(t.checkpoint_calls.c.exec_id == exec_id)
            ).mappings()
            return {row["invocation_id"]: dict(row) for row in rows}

    def find_cached_output(self, cache_key: str) -> dict[str, Any] | None:
        """The output of the newest completed call with ``cache_key``, if any."""
        with self._read.connect() as conn:
            row = conn.execute(
                select(t.checkpoint_calls.c.output, t.checkpoint_calls.c.call_id)
                .where(and_(t.checkpoint_calls.c.cache_key == cache_key, t.checkpoint_calls.c.status == "completed"))
                .order_by(t.checkpoint_calls.c.created_at.desc())
                .limit(1)
            ).first()
        return {"output": row.output, "call_id": row.call_id} if row else None

    def apply(self, operations: Sequence[dict[str, Any]]) -> None:
        """Apply a batch of runtime operations in one transaction (a group commit).

        Operations (``op`` key): ``call_started``, ``attempt_finished``, ``logs``, ``events``,
        ``metadata`` (see :mod:`kitaru_server.batch`). Each is idempotent.
        """
        if not operations:
            return
        with self._write.begin() as conn:
            apply_batch(conn, self._statements, list(operations))

    # --- artifacts ----------------------------------------------------------------------------

    def list_artifacts(
        self, *, exec_id: str | None = None, name: str | None = None, kind: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[dict[str, Any]]:
        """Artifacts, newest first, optionally by execution, name and kind."""
        query = (
            select(t.artifacts).order_by(t.artifacts.c.created_at.desc(), t.artifacts.c.artifact_id).limit(limit).offset(offset)
        )
        for column, value in ((t.artifacts.c.exec_id, exec_id), (t.artifacts.c.name, name), (t.artifacts.c.kind, kind)):
            if value is not None:
                query = query.where(column == value)
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_artifact(self, artifact_id: str) -> dict[str, Any]:
        """One artifact by id. Raises NotFoundError."""
        with self._read.connect() as conn:
            row = conn.execute(select(t.artifacts).where(t.artifacts.c.artifact_id == artifact_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"artifact {artifact_id!r} not found; list artifacts with KitaruClient().artifacts.list().")
        return dict(row)

    def find_artifact(self, exec_id: str, name: str) -> dict[str, Any]:
        """The artifact ``name`` (a save() name or an invocation id) of an execution."""
        with self._read.connect() as conn:
            if conn.execute(select(t.executions.c.exec_id).where(t.executions.c.exec_id == exec_id)).first() is None:
                raise _execution_not_found(exec_id)
            row = (
                conn.execute(select(t.artifacts).where(and_(t.artifacts.c.exec_id == exec_id, t.artifacts.c.name == name)))
                .mappings()
                .first()
            )
        if row is None:
            raise NotFoundError(
                f"execution {exec_id!r} has no artifact named {name!r}; artifacts are named by save() names "
                "or by invocation ids (see KitaruClient().artifacts.list(exec_id=...))."
            )
        return dict(row)

    # --- logs and events ----------------------------------------------------------------------

    def get_logs(
        self,
        exec_id: str,
        *,
        invocation_id: str | None = None,
        source: str | None = None,
        limit: int | None = None,
        after_id: int = 0,
    ) -> list[dict[str, Any]]:
        """Log entries in the order they were written."""
        query = select(t.logs).where(and_(t.logs.c.exec_id == exec_id, t.logs.c.id > after_id)).order_by(t.logs.c.id)
        if invocation_id is not None:
            query = query.where(t.logs.c.invocation_id == invocation_id)
        if source is not None:
            query = query.where(t.logs.c.source == source)
        if limit is not None:
            query = query.limit(limit)
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def get_events(self, exec_id: str, *, after_id: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        """Events of an execution in the order they were recorded."""
        query = (
            select(t.events)
            .where(and_(t.events.c.exec_id == exec_id, t.events.c.id > after_id))
            .order_by(t.events.c.id)
            .limit(limit)
        )
        with self._read.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def count_executions(self) -> int:
        """How many executions are recorded."""
        with self._read.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(t.executions)).scalar_one())

    def execution_counts(self) -> dict[str, int]:
        """How many executions are in each status (``interrupted`` derived from lapsed leases)."""
        now = time.time()
        lapsed = and_(t.executions.c.status.in_(LIVE_STATUSES), t.executions.c.lease_expires_at < now)
        query = select(t.executions.c.status, lapsed.label("lapsed"), func.count()).group_by(t.executions.c.status, lapsed)
        counts: dict[str, int] = {}
        with self._read.connect() as conn:
            for status, is_lapsed, count in conn.execute(query):
                key = "interrupted" if is_lapsed else status
                counts[key] = counts.get(key, 0) + int(count)
        return counts

    # --- helpers ------------------------------------------------------------------------------

    def _calls(self, conn: Connection, exec_id: str) -> list[dict[str, Any]]:
        calls = [
            dict(row)
            for row in conn.execute(
                select(t.checkpoint_calls).where(t.checkpoint_calls.c.exec_id == exec_id).order_by(t.checkpoint_calls.c.seq)
            ).mappings()
        ]
        by_id = {call["call_id"]: call for call in calls}
        for call in calls:
            call["attempts"] = []
            call["artifacts"] = []
        if not calls:
            return calls
        for row in conn.execute(
            select(t.attempts).where(t.attempts.c.call_id.in_(by_id)).order_by(t.attempts.c.call_id, t.attempts.c.number)
        ).mappings():
            by_id[row["call_id"]]["attempts"].append(dict(row))
        by_invocation = {call["invocation_id"]: call for call in calls}
        for row in conn.execute(select(t.artifacts).where(t.artifacts.c.exec_id == exec_id)).mappings():
            call = by_invocation.get(row["invocation_id"])
            if call is not None:
                call["artifacts"].append(dict(row))
        return calls


def _result_artifact(exec_id: str, meta: dict[str, Any]) -> dict[str, Any]:
    return artifact_row(exec_id, None, "__result__", "output", meta, None)


def _execution_not_found(exec_id: str) -> NotFoundError:
    return NotFoundError(
        f"execution {exec_id!r} not found; list executions with KitaruClient().executions.list() or `kitaru executions list`.",
        exec_id=exec_id,
    )


def _status_condition(status: str, now: float) -> Any:
    lease = t.executions.c.lease_expires_at
    if status == "interrupted":
        return and_(t.executions.c.status.in_(LIVE_STATUSES), lease < now)
    if status in LIVE_STATUSES:
        return and_(t.executions.c.status == status, or_(lease.is_(None), lease >= now))
    return t.executions.c.status == status


def _effective_status(row: Any, now: float) -> str:
    """``interrupted`` is derived: a driven execution whose driver's lease lapsed."""
    lease = row["lease_expires_at"]
    if row["status"] in LIVE_STATUSES and lease is not None and lease < now:
        return "interrupted"
    return row["status"]


def _execution_dict(row: Any) -> dict[str, Any]:
    execution = dict(row)
    execution["status"] = _effective_status(row, time.time())
    return execution


_services: dict[str, KitaruService] = {}
_services_lock = threading.Lock()


def service_for(database_url: str) -> KitaruService:
    """The process's :class:`KitaruService` for ``database_url`` (created once)."""
    with _services_lock:
        service = _services.get(database_url)
        if service is None:
            service = _services[database_url] = KitaruService(database_url)
        return service
