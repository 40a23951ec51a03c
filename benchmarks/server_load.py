"""``server_load``: the server under a sustained 200 requests/s for 30 s, p99 latency on loopback.

``kitaru server start`` (uvicorn, 2 workers, SQLite in WAL mode, auth on) over
1 000 executions; the load comes from a separate process
(:mod:`benchmarks._load_driver`), open loop at a fixed rate: 40 % newest-50
listings, 20 % status-filtered listings, 25 % single executions with their
calls, 10 % event pages, 5 % runtime batches (writes). Latency is send to
response as the client sees it; the latency from each request's scheduled time
(which also counts any lag of the load generator) is in the JSON. Baseline: the
same rate on ``/health`` (the framework and network alone), for a third of the
time. Targets (SPEC §10): every request answered at the offered rate, p99 ≤ 100 ms.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target

NAME = "server_load"
RATE = 200.0


def run(options: Options) -> CaseResult:
    from kitaru_server import KitaruService, process
    from kitaru_server.testing import free_port

    from benchmarks.server_list import seed

    seconds = options.pick(30.0, 5.0)
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-server-") as tmp:
        home = Path(tmp, "home")
        home.mkdir()
        database_url = f"sqlite:///{home / 'kitaru.db'}"
        service = KitaruService(database_url)
        exec_ids = seed(service, options.pick(1000, 200))
        service.close()
        state = process.start(home=home, port=free_port(), workers=2, database_url=database_url)
        try:
            config = {"url": state.url, "key": state.admin_key, "rate": RATE, "exec_ids": exec_ids}
            baseline = _drive({**config, "seconds": max(seconds / 3, 2.0), "health_only": True})
            load = _drive({**config, "seconds": seconds})
        finally:
            process.stop(home=home)
    achieved = (load["sent"] - sum(load["errors"].values())) / load["elapsed"]
    rows = [
        Row(
            NAME,
            f"answered requests/s (offered {RATE:g}/s for {seconds:g} s)",
            achieved,
            "req/s",
            None,
            Target("value", ">=", RATE * 0.97),
        ),
        Row(NAME, "failed requests", sum(load["errors"].values()), "", None, Target("value", "==", 0)),
        Row(
            NAME,
            "latency p50",
            _pct(load["latency"], 50),
            "ms",
            _pct(baseline["latency"], 50),
            Target("value", "<=", 100.0, "ms"),
        ),
        Row(
            NAME,
            "latency p99",
            _pct(load["latency"], 99),
            "ms",
            _pct(baseline["latency"], 99),
            Target("value", "<=", 100.0, "ms"),
        ),
    ]
    details = {
        "offered_rate": RATE,
        "seconds": seconds,
        "workers": 2,
        "sent": load["sent"],
        "errors": load["errors"],
        "elapsed_s": round(load["elapsed"], 3),
        "p99_from_schedule_ms": _pct(load["scheduled_latency"], 99),
        "p999_ms": _pct(load["latency"], 99.9),
        "max_ms": max(load["latency"], default=0) * 1000,
        "baseline": {
            "endpoint": "/health",
            "p50_ms": _pct(baseline["latency"], 50),
            "p99_ms": _pct(baseline["latency"], 99),
            "errors": baseline["errors"],
        },
    }
    return CaseResult(NAME, rows, details)


def _drive(config: dict[str, Any]) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks._load_driver", json.dumps(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=config["seconds"] + 120,
    )
    return json.loads(completed.stdout)


def _pct(samples: list[float], percentile: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(percentile / 100 * len(ordered)) - 1))
    return ordered[index] * 1000 if percentile != 50 else statistics.median(ordered) * 1000
