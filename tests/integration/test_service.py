"""The service conformance suite: every implementation of :class:`kitaru.contracts.service.Service`
(the embedded service on SQLite and on PostgreSQL, and the HTTP client of a server) keeps the same
records, leases and idempotent batches; and the database-only facts (migrations, two processes)."""

import subprocess
import sys
import time

import pytest
from kitaru_server import KitaruService
from kitaru_server.db import HEAD_REVISION
from sqlalchemy import create_engine, inspect, text

from kitaru.errors import KitaruConflictError, KitaruNotFoundError, KitaruStateError


@pytest.fixture(params=["sqlite", "postgresql", "http"])
def service(request, tmp_path):
    """Each implementation of the service protocol; ``http`` is the client of a server over SQLite (auth on)."""
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    from kitaru.client._http import HttpService
    from kitaru.contracts.service import Service

    if request.param == "postgresql":
        server = request.getfixturevalue("postgres")
        url = server.create_database()
        embedded = KitaruService(url)
        assert isinstance(embedded, Service)
        yield embedded
        embedded.close()
        server.drop_database(url)
        return
    embedded = KitaruService(f"sqlite:///{tmp_path / 'kitaru.db'}")
    if request.param == "sqlite":
        yield embedded
        embedded.close()
        return
    key = embedded.create_api_key("conformance", kind="service_account", admin=True)["key"]
    with serve_in_thread(create_app(service=embedded, auth=True, storage_url=STORAGE)) as server_url:
        http = HttpService(server_url, key)
        assert isinstance(http, Service)
        yield http
        http.close()
    embedded.close()


@pytest.fixture
def store(database_url):
    """The embedded service on each database (for what only a database shows)."""
    service = KitaruService(database_url)
    yield service
    service.close()


STORAGE = "file:///srv/kitaru-storage"  # the server's default stack's storage; executions name it


def new_execution(service, exec_id="e1", lease=30.0, **extra):
    return service.create_execution(
        {
            "exec_id": exec_id,
            "flow": "f",
            "flow_ref": "m:f",
            "settings": {"storage_url": STORAGE},
            "driver_id": "d1",
            "lease_expires_at": time.time() + lease,
            **extra,
        }
    )


def finished_call(exec_id="e1", call_id="c1", invocation_id="step", attempt=1, status="completed", final=True, output=None):
    output = output or {
        "uri": f"{STORAGE}/objects/ab/{'ab' * 32}",
        "sha256": "ab" * 32,
        "size": 1,
        "serializer": "json",
        "type_path": "builtins:int",
    }
    return {
        "op": "attempt_finished",
        "exec_id": exec_id,
        "call_id": call_id,
        "invocation_id": invocation_id,
        "seq": 0,
        "name": "step",
        "attempt": attempt,
        "status": status,
        "final": final,
        "started_at": 1.0,
        "ended_at": 2.0,
        "output": output if status == "completed" else None,
        "error": None if status == "completed" else {"type": "ValueError"},
        "metadata": {"k": attempt},
        "logs": [
            {
                "exec_id": exec_id,
                "timestamp": 1.5,
                "level": "INFO",
                "message": "hi",
                "source": "step",
                "invocation_id": invocation_id,
                "attempt": attempt,
            }
        ],
        "events": [],
        "artifacts": [],
    }


def test_schema_is_created_by_migrations(tmp_path):
    url = f"sqlite:///{tmp_path / 'm.db'}"
    KitaruService(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD_REVISION
    assert {"executions", "checkpoint_calls", "attempts", "artifacts", "logs", "events"} <= set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_create_get_list(service):
    new_execution(service, "e1")
    new_execution(service, "e2")
    assert service.get_execution("e1")["status"] == "running"
    assert [e["exec_id"] for e in service.list_executions()] == ["e2", "e1"]
    assert service.list_executions(flow="other") == []
    with pytest.raises(KitaruConflictError):
        new_execution(service, "e1")


def test_unknown_execution_error_names_it(service):
    with pytest.raises(KitaruNotFoundError, match="'nope'"):
        service.get_execution("nope")


def test_lapsed_lease_reads_as_interrupted_and_can_be_claimed(service):
    new_execution(service, "e1", lease=-1)
    assert service.get_execution("e1")["status"] == "interrupted"
    assert [e["exec_id"] for e in service.list_executions(status="interrupted")] == ["e1"]
    assert service.list_executions(status="running") == []
    assert not service.renew_lease("e1", "someone-else", 30)
    service.claim_execution("e1", "d2", 30, from_statuses=["interrupted"])
    assert service.get_execution("e1")["status"] == "running"
    with pytest.raises(KitaruStateError):
        service.claim_execution("e1", "d3", 30, from_statuses=["interrupted"])


def test_batches_are_idempotent_and_committed_calls_never_change(service):
    new_execution(service)
    batch = [finished_call(attempt=1, status="failed", final=False), finished_call(attempt=2)]
    service.apply(batch)
    service.apply(batch)  # a replayed batch (after a crash) changes nothing
    service.apply([finished_call(attempt=3, status="failed")])  # a late failure cannot undo a commit
    [call] = service.get_execution("e1")["checkpoints"]
    assert call["status"] == "completed"
    assert [(a["number"], a["status"]) for a in call["attempts"]] == [(1, "failed"), (2, "completed"), (3, "failed")]
    assert [a["name"] for a in call["artifacts"]] == ["step"]
    assert len(service.get_logs("e1")) == 5
    assert service.existing_calls("e1")["step"]["attempt_count"] == 3


def test_finish_requires_the_current_driver(service):
    new_execution(service)
    assert not service.finish_execution("e1", "not-the-driver", "completed")
    assert service.finish_execution("e1", "d1", "failed", failure={"type": "ValueError"})
    assert service.get_execution("e1")["status"] == "failed"


def test_two_processes_see_the_same_executions(tmp_path, store):
    service = store
    url = service.database_url
    code = (
        "import time; from kitaru_server import KitaruService; "
        f"KitaruService({url!r}).create_execution({{'exec_id': 'from-child', 'flow': 'f', 'flow_ref': 'm:f', 'settings': {{}}}})"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert service.get_execution("from-child")["flow"] == "f"


def test_head_revision_is_the_alembic_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from kitaru_server.db import _MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_a_late_started_record_never_undoes_an_outcome(service):
    new_execution(service)
    failed = finished_call(status="failed", final=True)
    service.apply([failed])
    late = {
        "op": "call_started",
        "exec_id": "e1",
        "call_id": "c1",
        "invocation_id": "step",
        "seq": 0,
        "name": "step",
        "attempt": 1,
        "started_at": failed["started_at"] + 0.5,
    }
    service.apply([late])
    assert service.get_execution("e1")["checkpoints"][0]["status"] == "failed"
    service.apply([{**late, "attempt": 2, "started_at": failed["ended_at"] + 10}])  # a later run (retry) does start it again
    assert service.get_execution("e1")["checkpoints"][0]["status"] == "running"


def test_batches_store_through_the_sqlite_driver_what_sqlalchemy_stores(tmp_path, monkeypatch):
    """On SQLite a batch goes straight to the driver with SQLAlchemy's compiled SQL: every row reads as SQLAlchemy's own."""
    from kitaru_server import batch, prepared

    def apply(database: str) -> dict[str, list[tuple]]:
        service = KitaruService(f"sqlite:///{tmp_path / database}")
        new_execution(service)
        started = {**finished_call(call_id="c2", invocation_id="step_2"), "op": "call_started"}
        started["events"] = [
            {"exec_id": "e1", "timestamp": 3.0, "kind": "checkpoint.started", "invocation_id": "step_2", "payload": {"a": None}}
        ]
        saved = {"name": "report", "meta": finished_call()["output"], "tags": ["x", "é"]}
        service.apply(
            [
                finished_call(attempt=1, status="failed", final=False),
                {**finished_call(attempt=2), "artifacts": [saved]},
                started,
                {"op": "logs", "entries": finished_call()["logs"]},
                {"op": "events", "entries": started["events"]},
                {"op": "metadata", "exec_id": "e1", "fields": {"progress": 0.5}},
            ]
        )
        service.apply([finished_call(attempt=3, status="failed")])  # a late failure cannot undo a commit
        volatile = {"artifact_id", "created_at"}  # a fresh id, and the time of writing where the batch gave none
        tables = {}
        with service._write.connect() as conn:
            for table in ("checkpoint_calls", "attempts", "artifacts", "logs", "events"):
                rows = conn.exec_driver_sql(f"SELECT * FROM {table}").mappings().all()
                tables[table] = sorted(repr({k: v for k, v in row.items() if k not in volatile}) for row in rows)
            tables["metadata"] = [conn.exec_driver_sql("SELECT metadata FROM executions").scalar_one()]
        service.close()
        return tables

    through_driver = apply("driver.db")
    monkeypatch.setattr(batch, "execute_many", lambda conn, statement, rows: conn.execute(statement, rows))
    through_sqlalchemy = apply("sqlalchemy.db")
    assert prepared._compiled  # the first run did use the driver path
    assert through_driver == through_sqlalchemy
    assert len(through_driver["attempts"]) == 4 and len(through_driver["artifacts"]) == 2


@pytest.mark.usefixtures("postgres")  # the machine's PostgreSQL binaries (a missing one skips, or fails under CI)
def test_pooled_connections_outlive_a_postgresql_restart(monkeypatch):
    """A pooled connection idle long enough for the database to restart is checked before use and replaced:
    reads and writes after a restart work at once."""
    import kitaru_server.db
    from kitaru_server.testing import local_postgres

    monkeypatch.setattr(kitaru_server.db, "_PING_AFTER_IDLE_SECONDS", 0.0)  # every pooled connection counts as idle
    with local_postgres() as server:
        service = KitaruService(server.create_database())
        try:
            new_execution(service, "before")
            server.restart()
            assert service.get_execution("before", with_calls=False)["status"] == "running"
            new_execution(service, "after")
            assert service.count_executions() == 2
        finally:
            service.close()
