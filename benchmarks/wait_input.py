"""``wait_input``: latency from ``executions.input(...)`` to the flow body continuing past its ``wait()``.

Live: the driver is polling the wait when the input arrives. Suspended: the wait
timed out, the driver exited and released its resources; the input resumes the
execution in this process (a new driver re-runs the flow body, reusing the
committed call before the wait). The flow body returns ``time.time()`` taken
right after ``wait()`` returns; latency = that minus the moment ``input`` was
called.

No baseline applies; the targets are this project's own: live ≤ 0.25 s,
suspended ≤ 1 s.
"""

from __future__ import annotations

import time

import kitaru
from benchmarks._harness import CaseResult, Options, Row, Target, fresh_home, median
from kitaru.testing import wait_for

NAME = "wait_input"


@kitaru.checkpoint
def before() -> int:
    return 1


@kitaru.flow
def gated(timeout: float) -> float:
    before()
    kitaru.wait(schema=bool, name="go", timeout=timeout)
    return time.time()


def _latency(timeout: float, *, suspended: bool) -> float:
    client = kitaru.KitaruClient()
    handle = gated.run(timeout)
    wait_for(lambda: client.executions.pending_waits(handle.exec_id), timeout=60)
    if suspended:
        wait_for(lambda: not handle._driver.thread.is_alive(), timeout=60)
    else:
        time.sleep(0.3)  # let the driver settle into its slowest poll interval
    sent = time.time()
    resumed = client.executions.input(handle.exec_id, wait="go", value=True)
    continued_at = (resumed or handle).wait(timeout=60)
    return continued_at - sent


def run(options: Options) -> CaseResult:
    repetitions = options.pick(7, 2)
    live, suspended = [], []
    with fresh_home():
        _latency(60, suspended=False)  # warm-up
        for _ in range(repetitions):
            live.append(_latency(60, suspended=False))
            suspended.append(_latency(0.05, suspended=True))
    rows = [
        Row(NAME, "input -> flow continues (live driver)", median(live), "s", None, Target("value", "<=", 0.25, "s")),
        Row(NAME, "input -> flow continues (suspended, resumed)", median(suspended), "s", None, Target("value", "<=", 1.0, "s")),
    ]
    return CaseResult(NAME, rows, {"repetitions": repetitions, "live_seconds": live, "suspended_seconds": suspended})
