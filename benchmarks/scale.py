"""``scale``: how cost grows with the number of calls.

1. One flow mapping N no-op checkpoints (N = 10 000), in its own driver process joined
   to the benchmark's Ray: calls/s against the same N bare Ray tasks from another fresh
   driver, and each driver's peak RSS.
2. 1 000 executions of 10 no-op calls each, back to back in this process: committed
   calls/s, on SQLite (embedded) and on PostgreSQL (through a Kitaru server on loopback),
   against the same 1 000 × 10 bare Ray tasks. Targets (SPEC §10): ≥ 1 000 committed
   calls/s, ≤ 1.5× the bare-Ray time.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import ray

import kitaru
from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, fresh_home, last_json_line

NAME = "scale"


@kitaru.checkpoint
def noop(i: int) -> int:
    return i


@kitaru.flow
def ten_calls(width: int) -> int:
    return sum(future.result() for future in noop.map(list(range(width))))


@ray.remote(num_cpus=0.1, max_retries=0)
def bare_noop(i: int) -> int:
    return i


def _driver(kind: str, n: int) -> dict[str, float]:
    from kitaru.config import resolve_settings

    environment = {
        **os.environ,
        "KITARU_HOME": resolve_settings().home,  # the case's fresh home, never the user's
        "KITARU_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server"), os.environ.get("PYTHONPATH", "")]),
    }
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._scale_driver", kind, str(n)],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {kind} driver failed:\n{done.stderr[-3000:]}")
    return last_json_line(done.stdout)


def _executions(count: int, width: int) -> float:
    ten_calls.run(width).wait()  # warm-up: workers, the runtime actor, the database
    start = time.perf_counter()
    for _ in range(count):
        if ten_calls.run(width).wait() != width * (width - 1) // 2:
            raise RuntimeError("an execution returned a wrong sum")
    return time.perf_counter() - start


def _bare_executions(count: int, width: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        ray.get([bare_noop.remote(i) for i in range(width)])
    return time.perf_counter() - start


@contextlib.contextmanager
def _on_postgresql() -> Iterator[bool]:
    """This process connected to a Kitaru server over a fresh PostgreSQL database (``False``: not installed)."""
    from kitaru_server.testing import local_postgres, postgres_binaries

    if postgres_binaries() is None:
        yield False
        return
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    from kitaru.client._http import close_http_services

    with local_postgres() as server, fresh_home():
        service = service_for(server.create_database())
        key = service.create_api_key("bench", kind="service_account", admin=True)["key"]
        with serve_in_thread(create_app(service=service, auth=True)) as url:
            previous = {name: os.environ.get(name) for name in ("KITARU_SERVER_URL", "KITARU_API_KEY")}
            os.environ.update(KITARU_SERVER_URL=url, KITARU_API_KEY=key)
            try:
                yield True
            finally:
                close_http_services()
                for name, value in previous.items():
                    if value is None:
                        os.environ.pop(name, None)
                    else:
                        os.environ[name] = value


def run(options: Options) -> CaseResult:
    n = options.pick(10_000, 1_000)
    count, width = options.pick(1_000, 50), 10
    with fresh_home():
        mapped = _driver("kitaru", n)
        bare = _driver("bare", n)
    bare_seconds = _bare_executions(count, width)
    with fresh_home():
        sqlite_seconds = _executions(count, width)
    with _on_postgresql() as available:
        postgres_seconds = _executions(count, width) if available else None
    calls = count * width
    rows = [
        Row(NAME, f"{n} mapped no-op checkpoints in one flow (calls/s)", n / mapped["seconds"], "calls/s",
            n / bare["seconds"], Target("ratio", ">=", 0.5)),
        Row(NAME, f"driver peak RSS, {n} mapped checkpoints", mapped["peak_rss_mib"], "MiB", bare["peak_rss_mib"],
            Target("ratio", "<=", 2.0)),
        Row(NAME, f"{count} executions x {width} calls, SQLite (committed calls/s)", calls / sqlite_seconds, "calls/s",
            calls / bare_seconds, Target("value", ">=", 1000, "calls/s")),
        Row(NAME, f"{count} executions x {width} calls, SQLite, time vs bare Ray", sqlite_seconds, "s", bare_seconds,
            Target("ratio", "<=", 1.5)),
    ]  # fmt: skip
    if postgres_seconds is not None:
        rows += [
            Row(NAME, f"{count} executions x {width} calls, PostgreSQL via the server (committed calls/s)",
                calls / postgres_seconds, "calls/s", calls / bare_seconds, Target("value", ">=", 1000, "calls/s")),
            Row(NAME, f"{count} executions x {width} calls, PostgreSQL, time vs bare Ray", postgres_seconds, "s",
                bare_seconds, Target("ratio", "<=", 1.5)),
        ]  # fmt: skip
    details: dict[str, Any] = {
        "mapped_calls": n,
        "executions": count,
        "calls_per_execution": width,
        "mapped": mapped,
        "bare_mapped": bare,
        "seconds": {"bare": bare_seconds, "sqlite": sqlite_seconds, "postgresql": postgres_seconds},
    }
    return CaseResult(NAME, rows, details)
