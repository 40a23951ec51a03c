"""Batch writes straight through the SQLite driver, with the SQL that SQLAlchemy compiles for them.

A group commit writes a handful of rows per statement, where SQLAlchemy's per-execution work
(parameter processing, result set-up) costs more than SQLite itself. Each statement is compiled
once per set of row keys; rows then go to ``sqlite3``'s ``executemany`` with their JSON columns
serialized as SQLAlchemy's ``JSON`` type does (``json.dumps``, ``None`` as ``'null'``), so what
is stored, and every rule in the SQL (upsert conditions), is the same as through SQLAlchemy.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from typing import Any

from sqlalchemy import JSON, Connection, Executable
from sqlalchemy import exc as sa_exc

__all__ = ["execute_many"]

_lock = threading.Lock()
_compiled: dict[tuple[Executable, tuple[str, ...]], _Prepared | None] = {}


@dataclasses.dataclass(frozen=True)
class _Prepared:
    sql: str
    names: tuple[str, ...]  # positional parameters, in order
    constants: dict[str, Any]  # parameters of the statement itself (upsert conditions)
    json_names: frozenset[str]


def execute_many(conn: Connection, statement: Executable, rows: list[dict[str, Any]]) -> None:
    """``conn.execute(statement, rows)``, through the driver on SQLite (SQLAlchemy elsewhere, or for rows it must complete)."""
    if conn.dialect.name != "sqlite":
        conn.execute(statement, rows)
        return
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    cursor = None
    for keys, group in groups.items():
        prepared = _prepare(conn, statement, keys)
        if prepared is None:
            conn.execute(statement, group)
            continue
        if cursor is None:
            cursor = conn.connection.driver_connection.cursor()
        try:
            cursor.executemany(prepared.sql, [_values(prepared, row) for row in group])
        except conn.dialect.loaded_dbapi.Error as exc:  # raised as SQLAlchemy would (IntegrityError and the like)
            raise sa_exc.DBAPIError.instance(prepared.sql, None, exc, conn.dialect.loaded_dbapi.Error) from exc
    if cursor is not None:
        cursor.close()


def _values(prepared: _Prepared, row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(
        json.dumps(row[name]) if name in prepared.json_names else row[name] if name in row else prepared.constants[name]
        for name in prepared.names
    )


def _prepare(conn: Connection, statement: Executable, keys: tuple[str, ...]) -> _Prepared | None:
    cache_key = (statement, keys)  # holds the statement, so its identity is never reused by another
    with _lock:
        if cache_key in _compiled:
            return _compiled[cache_key]
    compiled: Any = statement.compile(dialect=conn.dialect, column_keys=list(keys))  # type: ignore[attr-defined]
    names = tuple(compiled.positiontup or ())
    prepared: _Prepared | None = None
    if not compiled.insert_prefetch:  # no column default that SQLAlchemy computes per row
        constants = {name: compiled.binds[name].value for name in names if name not in keys}
        json_names = frozenset(name for name in keys if isinstance(compiled.binds[name].type, JSON))
        prepared = _Prepared(compiled.string, names, constants, json_names)
    with _lock:
        _compiled[cache_key] = prepared
    return prepared
