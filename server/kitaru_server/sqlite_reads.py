"""Reads of an embedded SQLite database through the standard library's driver.

A short-lived process that only reads (``kitaru executions list``) would spend most of
its time importing SQLAlchemy. These reads return exactly the service's rows (the same
columns, JSON decoded, booleans as ``bool``, ``interrupted`` derived from the lease),
and are used only on a database already at this code's schema revision: anything else
goes through :class:`kitaru_server.KitaruService`, which migrates it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from typing import Any

from kitaru_server.revision import HEAD_REVISION

__all__ = ["SQLiteReads", "open_reads"]

LIVE_STATUSES = ("running", "waiting")  # as in the service: statuses a driver holds a lease in
EXECUTION_JSON_COLUMNS = frozenset(
    {"flow_blob", "inputs", "result", "failure", "metadata", "settings", "created_by", "continued_by"}
)
EXECUTION_BOOL_COLUMNS = frozenset({"cancel_requested"})


def open_reads(database_url: str) -> SQLiteReads | None:
    """Reads of the SQLite database at ``database_url``, or ``None`` when the service must be used.

    That is: another database, a database that does not exist yet, or one at another schema revision.
    The connection only reads, but opens read-write: SQLite needs that to read a database in WAL mode.
    """
    if not database_url.startswith("sqlite:///") or "?" in database_url:
        return None
    path = database_url.split("///", 1)[1]
    if not path or path == ":memory:":
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30, check_same_thread=False)
    except sqlite3.Error:
        return None
    try:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        revision = None
    if revision is None or revision[0] != HEAD_REVISION:
        conn.close()
        return None
    return SQLiteReads(conn)


class SQLiteReads:
    """The service's read operations this module offers, on one open SQLite connection."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()  # one connection, used by one thread at a time

    def list_executions(
        self, *, flow: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[dict[str, Any]]:
        """As :meth:`kitaru_server.KitaruService.list_executions`."""
        now = time.time()
        where: list[str] = []
        params: list[Any] = []
        if flow:
            where.append("flow = ?")
            params.append(flow)
        if status == "interrupted":
            where.append("status IN (?, ?) AND lease_expires_at < ?")
            params += [*LIVE_STATUSES, now]
        elif status in LIVE_STATUSES:
            where.append("status = ? AND (lease_expires_at IS NULL OR lease_expires_at >= ?)")
            params += [status, now]
        elif status:
            where.append("status = ?")
            params.append(status)
        sql = "SELECT * FROM executions"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC LIMIT ? OFFSET ?"
        with self._lock:
            cursor = self._conn.execute(sql, [*params, limit, offset])
            names = [column[0] for column in cursor.description]
            rows = cursor.fetchall()
        return [_execution(dict(zip(names, row, strict=True)), now) for row in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def _execution(row: dict[str, Any], now: float) -> dict[str, Any]:
    for name in EXECUTION_JSON_COLUMNS:
        value = row.get(name)
        row[name] = None if value is None else json.loads(value)
    for name in EXECUTION_BOOL_COLUMNS:
        row[name] = bool(row[name])
    lease = row["lease_expires_at"]
    if row["status"] in LIVE_STATUSES and lease is not None and lease < now:
        row["status"] = "interrupted"
    return row
