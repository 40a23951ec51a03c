"""Plain SQLite reads (what a CLI query uses on an embedded database) return exactly the service's rows."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import time

import pytest
from kitaru_server import service_for, tables
from kitaru_server.sqlite_reads import EXECUTION_BOOL_COLUMNS, EXECUTION_JSON_COLUMNS, open_reads
from sqlalchemy import JSON, Boolean


@pytest.fixture
def database_url(tmp_path):
    return f"sqlite:///{tmp_path / 'kitaru.db'}"


def _seed(service, count: int) -> None:
    now = time.time()
    for i in range(count):
        live = i % 4 == 0
        service.create_execution(
            {
                "exec_id": f"e-{i}",
                "flow": ("alpha", "beta")[i % 2],
                "flow_ref": "m:f",
                "status": ("running", "waiting")[i % 8 == 4] if live else ("completed", "failed", "cancelled")[i % 3],
                "created_at": now - count + i,
                "inputs": {"i": i, "nested": [1, None, "x"]},
                "settings": {"home": "/h"},
                "driver_id": "d" if live else None,
                # Half of the live ones hold a lapsed lease: they read as interrupted.
                "lease_expires_at": (now - 60 if i % 12 == 0 else now + 600) if live else None,
                "failure": {"message": "boom"} if i % 3 == 1 and not live else None,
            }
        )


def test_reads_match_the_service_for_every_filter(database_url):
    service = service_for(database_url)
    _seed(service, 24)
    reads = open_reads(database_url)
    assert reads is not None
    for query in (
        {},
        {"limit": 5},
        {"limit": 5, "offset": 7},
        {"flow": "alpha"},
        {"status": "completed"},
        {"status": "interrupted"},
        {"status": "running"},
        {"status": "waiting"},
        {"flow": "beta", "status": "failed", "limit": 2},
    ):
        assert reads.list_executions(**query) == service.list_executions(**query), query
    assert {row["status"] for row in reads.list_executions()} >= {"interrupted", "running", "waiting", "completed"}


def test_the_column_types_decoded_are_the_tables(database_url):
    assert EXECUTION_JSON_COLUMNS == {c.name for c in tables.executions.c if isinstance(c.type, JSON)}
    assert EXECUTION_BOOL_COLUMNS == {c.name for c in tables.executions.c if isinstance(c.type, Boolean)}


def test_a_database_the_service_must_prepare_is_not_read_plainly(database_url, tmp_path):
    assert open_reads(database_url) is None  # does not exist yet, and is not created
    assert not (tmp_path / "kitaru.db").exists()
    service_for(database_url)
    with sqlite3.connect(tmp_path / "kitaru.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert open_reads(database_url) is None  # an older schema: the service migrates it
    assert open_reads("postgresql+psycopg://u@h/db") is None


def test_executions_list_imports_no_sqlalchemy(kitaru_home):
    from kitaru.config import resolve_settings

    _seed(service_for(resolve_settings().database_url), 3)
    check = (
        "import sys\nfrom kitaru.cli import app\ntry:\n    app(['executions', 'list'])\nexcept SystemExit:\n    pass\n"
        "print('SQLALCHEMY' if 'sqlalchemy' in sys.modules else 'NO-SQLALCHEMY', file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert "e-2" in done.stdout and done.stderr.strip().endswith("NO-SQLALCHEMY"), done.stderr
