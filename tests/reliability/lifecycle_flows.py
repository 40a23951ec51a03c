"""Scripts that end right after ``.run()``, as a short user script does.

    python lifecycle_flows.py SCENARIO EXEC_ID MARKER_DIR

``quick``: a checkpoint that takes a moment; ``gate``: a flow waiting for input;
``slow``: a checkpoint that runs until MARKER_DIR/release exists (for Ctrl-C).
Each writes MARKER_DIR/started once its flow body runs.
"""

import sys
import time
from pathlib import Path

from kitaru import checkpoint, flow, wait


@checkpoint
def pause(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


@checkpoint
def until_released(marker_dir: str) -> str:
    while not Path(marker_dir, "release").exists():
        time.sleep(0.05)
    return "released"


@flow
def quick(marker_dir: str) -> str:
    Path(marker_dir, "started").touch()
    return pause(1.0)


@flow
def gate(marker_dir: str) -> str:
    Path(marker_dir, "started").touch()
    answer = wait(schema=str, name="approve", question="Go?", timeout=600)
    return f"answer: {answer}"


@flow
def slow(marker_dir: str) -> str:
    Path(marker_dir, "started").touch()
    return until_released(marker_dir)


if __name__ == "__main__":
    scenario, exec_id, marker_dir = sys.argv[1:4]
    {"quick": quick, "gate": gate, "slow": slow}[scenario].run(marker_dir, exec_id=exec_id)
