"""A script joined to the warm local Ray of its ``KITARU_HOME``, as a user runs one.

    python warm_loss_flows.py run COUNTER_DIR EXEC_ID   # start the flow and wait for it
    python warm_loss_flows.py resume EXEC_ID            # resume it and wait for it

The flow is a chain of slow checkpoints, each counting its runs in COUNTER_DIR; the
second one also waits until COUNTER_DIR/gate exists, so the test takes the Ray away
while it runs. Prints the flow's result as the last line of stdout.
"""

import os
import sys
import time

from kitaru import KitaruClient, checkpoint, flow
from kitaru.testing import count_calls

STEPS = 4
HELD = 1  # the call in flight when the Ray goes away


@checkpoint
def step(counter_dir: str, index: int, value: int) -> int:
    count_calls(counter_dir, f"step_{index}")
    time.sleep(0.3)
    while index == HELD and not os.path.exists(os.path.join(counter_dir, "gate")):
        time.sleep(0.05)
    return value + 1


@flow
def chain(counter_dir: str) -> int:
    value = 0
    for index in range(STEPS):
        value = step(counter_dir, index, value)
    return value


if __name__ == "__main__":
    if sys.argv[1] == "run":
        handle = chain.run(sys.argv[2], exec_id=sys.argv[3])
    else:
        handle = KitaruClient().executions.resume(sys.argv[2])
    print(handle.wait(timeout=240), flush=True)
