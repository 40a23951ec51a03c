"""The load generator of ``server_load``, run as its own process: ``python -m benchmarks._load_driver CONFIG_JSON``.

Open loop: request ``i`` is sent at ``start + i / rate`` whether or not earlier
ones have answered (at most ``max_in_flight`` outstanding), so a slow server
cannot slow the offered load down. Prints one JSON object: counts, errors and
per-request latencies (send to response, and scheduled time to response).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from typing import Any


async def _one(
    client: Any, request: tuple[str, str, dict[str, Any] | None], scheduled: float, out: dict[str, Any], gate: asyncio.Semaphore
) -> None:
    method, path, body = request
    async with gate:
        sent = time.perf_counter()
        try:
            response = await client.request(method, path, json=body)
            status = response.status_code
        except Exception as exc:  # noqa: BLE001 - every failure is counted, none stops the load
            status = type(exc).__name__
        done = time.perf_counter()
    if status == 200:
        out["latency"].append(done - sent)
        out["scheduled_latency"].append(done - scheduled)
    else:
        out["errors"][str(status)] = out["errors"].get(str(status), 0) + 1


def _requests(config: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    rng = random.Random(7)
    ids = config["exec_ids"]
    total = int(config["rate"] * config["seconds"])
    chosen = []
    for i in range(total):
        if config.get("health_only"):
            chosen.append(("GET", "/health", None))
            continue
        roll, exec_id = rng.random(), rng.choice(ids)
        if roll < 0.40:
            chosen.append(("GET", "/api/v1/executions?limit=50", None))
        elif roll < 0.60:
            chosen.append(("GET", "/api/v1/executions?status=failed&limit=20", None))
        elif roll < 0.85:
            chosen.append(("GET", f"/api/v1/executions/{exec_id}", None))
        elif roll < 0.95:
            chosen.append(("GET", f"/api/v1/executions/{exec_id}/events?limit=100", None))
        else:
            entry = {"exec_id": exec_id, "timestamp": time.time(), "kind": "progress", "payload": {"i": i}}
            chosen.append(("POST", "/api/v1/batches", {"operations": [{"op": "events", "entries": [entry]}]}))
    return chosen


async def _main(config: dict[str, Any]) -> dict[str, Any]:
    import httpx

    requests = _requests(config)
    out: dict[str, Any] = {"latency": [], "scheduled_latency": [], "errors": {}}
    gate = asyncio.Semaphore(config.get("max_in_flight", 256))
    limits = httpx.Limits(max_connections=config.get("max_in_flight", 256), max_keepalive_connections=64)
    headers = {"Authorization": f"Bearer {config['key']}"}
    async with httpx.AsyncClient(base_url=config["url"], headers=headers, limits=limits, timeout=30.0) as client:
        await client.get("/health")  # open a connection before the clock starts
        start = time.perf_counter() + 0.1
        tasks = []
        for i, request in enumerate(requests):
            scheduled = start + i / config["rate"]
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_one(client, request, scheduled, out, gate)))
        await asyncio.gather(*tasks)
        out["elapsed"] = time.perf_counter() - start
    out["sent"] = len(requests)
    return out


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(json.loads(sys.argv[1])))))
