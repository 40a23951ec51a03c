"""Flows the backend conformance suite runs, by target (``backend_flows:NAME``) or as objects."""

from __future__ import annotations

import os
import time

from kitaru import checkpoint, flow


@checkpoint
def record(path: str, value: int) -> int:
    """Append ``value`` to ``path``: how many times a call ran is the number of lines."""
    with open(path, "a") as log:
        log.write(f"{value}\n")
    return value


@checkpoint
def hold(gate: str) -> str:
    """Block until ``gate`` exists (so a driver can be interrupted while a call runs)."""
    while not os.path.exists(gate):
        time.sleep(0.05)
    return "released"


@flow
def two_steps(log: str, gate: str) -> str:
    first = record(log, 1)
    return f"{first}:{hold(gate)}"
