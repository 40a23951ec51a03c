"""Flows for crash-injection tests, run as a script so each driver is its own process.

    python crash_flows.py SCENARIO EXEC_ID COUNTER_DIR KILL_AFTER_SECONDS [KILL_AT_CALL]

The driver is SIGKILLed ``KILL_AFTER_SECONDS`` after its first committed call (by a
timer thread) or, with ``KILL_AT_CALL``, by the flow body just before that call.
Every checkpoint appends to a counter file per invocation, so the test can
prove which calls ran more than once. The flows live in ``__main__``, so
resuming them from another process exercises their stored cloudpickle copy.
"""

import os
import sys
import threading
import time

from kitaru import KitaruClient, checkpoint, flow
from kitaru.testing import count_calls, kill_process, wait_for


@checkpoint
def step(counter_dir, name, value, pause):
    count_calls(counter_dir, name)
    time.sleep(pause)
    return value + 1


@checkpoint
def combine(counter_dir, values):
    count_calls(counter_dir, "combine")
    return sum(values)


def crash_here(driver_pid):
    """Kill the original driver; a resumed run (another process) passes through."""
    if os.getpid() == driver_pid:
        kill_process(driver_pid)


@flow
def chain(counter_dir, length, kill_at_call, driver_pid):
    value = 0
    for index in range(length):
        if index == kill_at_call:
            crash_here(driver_pid)
        value = step(counter_dir, f"step_{index}", value, 0.03)
    return value


@flow
def fanout(counter_dir, width, kill_at_call, driver_pid):
    futures = [step.submit(counter_dir, f"leaf_{i}", i * 10, 0.05 + 0.02 * (i % 3)) for i in range(width)]
    if kill_at_call == 0:
        crash_here(driver_pid)
    return combine(counter_dir, futures)


EXPECTED = {"chain": lambda: 12, "fanout": lambda: sum(i * 10 + 1 for i in range(8))}
ARGUMENTS = {"chain": 12, "fanout": 8}


def main() -> None:
    scenario, exec_id, counter_dir, kill_after = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    kill_at_call = int(sys.argv[5]) if len(sys.argv) > 5 else -1
    target = {"chain": chain, "fanout": fanout}[scenario]
    handle = target.run(counter_dir, ARGUMENTS[scenario], kill_at_call, os.getpid(), exec_id=exec_id, cache=False)
    if kill_after > 0:
        # Start the clock once work is being committed, so the kill lands mid-flow, not during start-up.
        client = KitaruClient()
        wait_for(
            lambda: any(c.status == "completed" for c in client.executions.get(exec_id).checkpoints), timeout=60, interval=0.005
        )
        threading.Timer(kill_after, kill_process, args=(os.getpid(),)).start()
    handle.wait(timeout=120)
    time.sleep(60)  # a kill that landed after the end is still a kill, never a clean exit


if __name__ == "__main__":
    main()
