"""Engines for the server's database, and bringing its schema up to date.

SQLite (embedded mode) runs in WAL mode so several processes on one
``KITARU_HOME`` read while one writes; write transactions start with
``BEGIN IMMEDIATE`` so a writer waits for the lock (``busy_timeout``) instead of
failing on a read-to-write upgrade.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from kitaru_server.revision import head_revision

__all__ = ["HEAD_REVISION", "make_engines", "upgrade_schema"]

_MIGRATIONS = Path(__file__).with_name("migrations")
_PING_AFTER_IDLE_SECONDS = 1.0
# Revisions are numbered files (NNNN_description.py), each revising the one before, so the
# head is the highest number: no Alembic import is needed to know whether to migrate.
HEAD_REVISION = head_revision(_MIGRATIONS)


def make_engines(url: str) -> tuple[Engine, Engine]:
    """``(write engine, read engine)`` for ``url``.

    Elsewhere than SQLite both share one pool: reads run in autocommit (each statement sees
    its own snapshot, as it would in a READ COMMITTED transaction, without the BEGIN and
    ROLLBACK round trips around it).
    """
    if not url.startswith("sqlite"):
        engine = create_engine(url)
        _ping_when_idle(engine)
        return engine, engine.execution_options(isolation_level="AUTOCOMMIT")
    path = url.split("///", 1)[1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return _sqlite_engine(url, immediate=True), _sqlite_engine(url, immediate=False)


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use when it sat idle long enough for the database to have
    restarted meanwhile (a dead one is replaced); one just used needs no round trip to prove it.
    """
    from sqlalchemy.exc import DisconnectionError

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info["checked_in"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        checked_in = record.info.get("checked_in")
        if checked_in is None or time.monotonic() - checked_in < _PING_AFTER_IDLE_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(str(exc)) from exc  # the pool replaces the connection and checks out again


def _sqlite_engine(url: str, *, immediate: bool) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves (see the "begin" hook)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.connection.driver_connection.execute(begin)  # straight to sqlite3: this runs for every transaction

    return engine


def upgrade_schema(engine: Engine) -> None:
    """Run the Alembic migrations up to head, unless the database is already there."""
    if _current_revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine):
        if _current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS))
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")


def _current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        try:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:  # noqa: BLE001 - no table yet means no revision
            return None


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """Serialize migrations of one SQLite file across processes (PostgreSQL: Alembic's own transaction)."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        yield
        return
    import fcntl

    with open(f"{database}.migrate.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
            with contextlib.suppress(OSError):
                os.chmod(handle.name, 0o644)
