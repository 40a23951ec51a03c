"""Flows submitted to a Ray cluster by the ``ray`` backend's tests (imported by module path in the job)."""

import os
import time

import numpy as np
import ray

from kitaru import checkpoint, flow
from kitaru.testing import count_calls


def _node() -> str:
    return ray.get_runtime_context().get_node_id()


@checkpoint
def add(x: int, y: int) -> int:
    return x + y


@checkpoint(ray_options={"resources": {"gpu_node": 1}})
def on_gpu_node(x: int) -> int:
    print(f"gpu checkpoint on node {_node()}")
    return x * 10


GPU_ARRAY_ITEMS = 512 * 1024  # 4 MiB: left in that node's object store, for that node's runtime actor to store


@checkpoint(ray_options={"resources": {"gpu_node": 1}})
def gpu_array(x: int) -> np.ndarray:
    return np.full(GPU_ARRAY_ITEMS, float(x))


@flow
def placement(x: int) -> int:
    """add → a checkpoint that only the node offering ``gpu_node`` can run → add; and a large array made on that node."""
    array = gpu_array.submit(x)
    result = add(on_gpu_node(add(x, 1)), 2)
    assert float(array.result()[-1]) == x
    return result


@checkpoint(timeout=3, ray_options={"resources": {"no_such_node": 1}})
def nowhere() -> int:
    return 1


@flow
def unplaceable() -> int:
    """A checkpoint asking for a resource no node has."""
    return nowhere()


@checkpoint
def slow_step(counter_dir: str, name: str, value: int, gate: str) -> int:
    """Counts its runs; blocks while the file ``gate`` is absent (the test holds the flow mid-way)."""
    count_calls(counter_dir, name)
    while gate and not os.path.exists(gate):
        time.sleep(0.1)
    return value + 1


@flow
def chain(counter_dir: str, gate: str, steps: int = 5, hold_at: int = 3) -> int:
    """``steps`` calls in a row; the call ``hold_at`` waits for ``gate``."""
    value = 0
    for index in range(steps):
        value = slow_step(counter_dir, f"step_{index}", value, gate if index == hold_at else "")
    return value


@flow
def sleeper(seconds: float) -> str:
    """Sleeps in the flow body (a job to cancel)."""
    time.sleep(seconds)
    return "woke"
