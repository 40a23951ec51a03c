"""A script run against the warm local Ray: ``python warm_flows.py``.

Prints one JSON line: what the checkpoint saw (an environment variable, its working
directory, its pid) and the execution's Ray links.
"""

from __future__ import annotations

import json
import os

from kitaru import KitaruClient, checkpoint, flow


@checkpoint
def observe() -> dict:
    return {"mark": os.environ.get("KITARU_TEST_MARK"), "cwd": os.getcwd(), "pid": os.getpid()}


@flow
def observed() -> dict:
    return observe()


if __name__ == "__main__":
    handle = observed.run()
    seen = handle.wait(timeout=120)
    execution = KitaruClient().executions.get(handle.exec_id)
    print(json.dumps({"seen": seen, "driver_pid": os.getpid(), "metadata": execution.metadata}), flush=True)
