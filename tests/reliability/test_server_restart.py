"""A remote flow keeps running while its server is killed (SIGKILL) and restarted on the same port.

A real server process (``kitaru server start`` on SQLite) records a flow of sequential checkpoints;
the server is killed mid-flow (a call running, its commit and the lease renewals then retrying),
stays down longer than the driver's lease, and is restarted on the same port. The flow finishes
with the fault-free result, and counter files prove each committed call ran exactly once.
"""

import os
import signal
import time
from pathlib import Path

from kitaru_server import process

import kitaru
from conftest import free_port
from kitaru import KitaruClient, checkpoint, flow
from kitaru.client._http import close_http_services
from kitaru.testing import count_calls, wait_for

STEPS = 10


@checkpoint
def slow_square(counter_dir: str, i: int) -> int:
    count_calls(counter_dir, f"square_{i}")
    time.sleep(0.3)
    return i * i


@flow
def squares(counter_dir: str, n: int) -> int:
    return sum(slow_square(counter_dir, i) for i in range(n))


def counted(directory: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in directory.iterdir()}


def test_a_flow_finishes_through_a_server_restart(ray_session, kitaru_home, tmp_path, monkeypatch):
    counters = tmp_path / "counters"
    counters.mkdir()
    port = free_port()
    server = process.start(port=port)  # auth on; the database and the default stack's storage of this home
    monkeypatch.setenv("KITARU_SERVER_URL", server.url)
    monkeypatch.setenv("KITARU_API_KEY", server.admin_key)
    kitaru.connect(server.url, api_key=server.admin_key)
    try:
        handle = squares.run(str(counters), STEPS)
        wait_for(lambda: len(counted(counters)) >= 3, timeout=60, message="three calls ran")
        os.killpg(server.pid, signal.SIGKILL)
        wait_for(lambda: not process.status().running, message="the server gone")
        time.sleep(3)  # the outage, longer than the 2 s lease: the runtime's requests keep retrying meanwhile
        restarted = process.start(port=port)  # at once, on the same port
        assert restarted.url == server.url
        assert handle.wait(timeout=180) == sum(i * i for i in range(STEPS))
        assert counted(counters) == {f"square_{i}": 1 for i in range(STEPS)}  # nothing lost, nothing repeated
        execution = KitaruClient().executions.get(handle.exec_id)
        assert execution.status == "completed"
        assert [(c.invocation_id, c.status, len(c.attempts)) for c in execution.checkpoints] == [
            ("slow_square" if i == 0 else f"slow_square_{i + 1}", "completed", 1) for i in range(STEPS)
        ]
    finally:
        if process.status().running:
            process.stop()
        close_http_services()
