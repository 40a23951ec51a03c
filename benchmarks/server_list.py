"""``server_list``: listing and filtering executions with 100 000 rows, on SQLite and on PostgreSQL.

Rows are inserted in bulk with the service's own engine (20 flows; statuses
mostly completed, some failed, running, interrupted, waiting, cancelled), then
``ANALYZE`` runs as autovacuum would. Measured: the p50 of the service's
``list_executions`` (the first page of 50) with no filter, by flow, by status,
by flow and status, and ``interrupted`` (derived from lapsed leases); and the
same listing over HTTP (``GET /api/v1/executions``, a uvicorn server on
loopback, auth on). Baseline: the bare SQL of the first page on the same
database. Target (SPEC §10): p50 ≤ 20 ms on both databases. PostgreSQL comes
from the machine's binaries (``kitaru_server.testing.local_postgres``); without
them its rows are left out (said in the JSON).
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks._harness import CaseResult, Options, Row, Target

NAME = "server_list"
TARGET = Target("value", "<=", 20.0, "ms")
FLOWS = [f"flow_{i:02d}" for i in range(20)]
# (status, share, lease offset in seconds: None = no lease, negative = lapsed)
MIX = [
    ("completed", 0.80, None),
    ("failed", 0.08, None),
    ("running", 0.03, 3600.0),
    ("running", 0.03, -3600.0),
    ("waiting", 0.03, 3600.0),
    ("cancelled", 0.03, None),
]


def run(options: Options) -> CaseResult:
    rows_count = options.pick(100_000, 10_000)
    repetitions = options.pick(60, 15)
    rows: list[Row] = []
    details: dict[str, Any] = {"executions": rows_count, "repetitions": repetitions, "samples_ms": {}}
    for database, url_factory in _databases(details):
        with url_factory() as url:
            rows += _measure(database, url, rows_count, repetitions, details)
    return CaseResult(NAME, rows, details)


def _databases(details: dict[str, Any]) -> list[tuple[str, Callable[[], Any]]]:
    from kitaru_server.testing import postgres_binaries

    databases: list[tuple[str, Callable[[], Any]]] = [("sqlite", _sqlite_url)]
    if postgres_binaries() is not None:
        databases.append(("postgresql", _postgres_url))
    else:
        details["postgresql"] = "skipped: PostgreSQL's initdb/pg_ctl were not found"
    return databases


@contextlib.contextmanager
def _sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-db-") as tmp:
        yield f"sqlite:///{Path(tmp, 'kitaru.db')}"


@contextlib.contextmanager
def _postgres_url() -> Iterator[str]:
    from kitaru_server.testing import local_postgres

    with local_postgres() as server:
        yield server.create_database()


def seed(service: Any, count: int) -> list[str]:
    """Insert ``count`` executions in bulk; returns their ids (oldest first)."""
    from kitaru_server import tables as t
    from sqlalchemy import insert, text

    now = time.time()
    ids, batch = [], []
    weights = [share for _, share, _ in MIX]
    thresholds = [sum(weights[: i + 1]) for i in range(len(weights))]
    with service._write.begin() as conn:
        for i in range(count):
            fraction = (i * 7919 % count) / count  # a deterministic spread of statuses over time
            status, _, lease = MIX[next(k for k, bound in enumerate(thresholds) if fraction < bound)]
            exec_id = str(uuid.UUID(int=i + 1))
            created = now - (count - i)
            ids.append(exec_id)
            batch.append(
                {
                    "exec_id": exec_id,
                    "flow": FLOWS[i % len(FLOWS)],
                    "flow_ref": f"app.flows:{FLOWS[i % len(FLOWS)]}",
                    "status": status,
                    "created_at": created,
                    "started_at": created,
                    "ended_at": None if lease is not None else created + 1,
                    "inputs": {"preview": {"x": i}},
                    "metadata": {},
                    "settings": {"storage_url": "file:///tmp/storage"},
                    "driver_id": "driver" if lease is not None else None,
                    "lease_expires_at": now + lease if lease is not None else None,
                    "run_attempt": 1,
                    "cancel_requested": False,
                }
            )
            if len(batch) == 5000:
                conn.execute(insert(t.executions), batch)
                batch = []
        if batch:
            conn.execute(insert(t.executions), batch)
    with service._write.begin() as conn:
        conn.execute(text("ANALYZE"))
    return ids


def _measure(database: str, url: str, count: int, repetitions: int, details: dict[str, Any]) -> list[Row]:
    import httpx
    from kitaru_server import KitaruService
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread
    from sqlalchemy import text

    service = KitaruService(url)
    started = time.perf_counter()
    seed(service, count)
    details[f"{database}_seed_s"] = round(time.perf_counter() - started, 2)
    key = service.create_api_key("bench", admin=True)["key"]

    def bare() -> None:
        with service._read.connect() as conn:
            conn.execute(text("SELECT * FROM executions ORDER BY created_at DESC LIMIT 50")).fetchall()

    queries: dict[str, Callable[[], Any]] = {
        "newest 50": lambda: service.list_executions(limit=50),
        "by flow": lambda: service.list_executions(flow="flow_07", limit=50),
        "by status (failed)": lambda: service.list_executions(status="failed", limit=50),
        "by flow and status": lambda: service.list_executions(flow="flow_07", status="failed", limit=50),
        "interrupted (lapsed leases)": lambda: service.list_executions(status="interrupted", limit=50),
    }
    baseline = _p50(bare, repetitions, details, f"{database}: bare SQL first page")
    rows = [
        Row(NAME, f"{database}: list {name}, p50", _p50(fn, repetitions, details, f"{database}: {name}"), "ms", baseline, TARGET)
        for name, fn in queries.items()
    ]
    with (
        serve_in_thread(create_app(service=service)) as base_url,
        httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"}) as http,
    ):

        def over_http() -> None:
            http.get("/api/v1/executions", params={"status": "failed", "flow": "flow_07", "limit": 50}).raise_for_status()

        value = _p50(over_http, repetitions, details, f"{database}: HTTP GET filtered")
        rows.append(Row(NAME, f"{database}: GET /api/v1/executions?flow&status, p50", value, "ms", baseline, TARGET))
    service.close()
    return rows


def _p50(fn: Callable[[], Any], repetitions: int, details: dict[str, Any], label: str) -> float:
    fn()  # warm-up: caches, prepared plans, connection pool
    samples = []
    for _ in range(repetitions):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    details["samples_ms"][label] = [round(s, 3) for s in samples]
    return statistics.median(samples)
