"""What the two fan-out cases share: time a fan-out flow and the same bare Ray tasks, interleaved.

A fan-out flow takes ``width`` and returns ``[seconds from the first submit to
the last result, sum of the results]``; the bare remote function takes ``i`` and
returns it.
"""

from __future__ import annotations

from typing import Any

import ray

from benchmarks._harness import timed


def _flow_seconds(flow: Any, width: int) -> tuple[float, float]:
    """``(fan-out seconds in the flow body, end-to-end seconds)`` of one execution."""
    end_to_end, (seconds, total) = timed(lambda: flow.run(width).wait())
    if total != sum(range(width)):
        raise RuntimeError(f"the fan-out returned {total}, expected {sum(range(width))}")
    return seconds, end_to_end


def _bare_seconds(remote_function: Any, width: int) -> float:
    seconds, _ = timed(lambda: ray.get([remote_function.remote(i) for i in range(width)]))
    return seconds


def measure(flow: Any, remote_function: Any, width: int, repetitions: int) -> dict[str, list[float]]:
    """Warm up once, then ``repetitions`` rounds of Kitaru then bare Ray; returns every sample in seconds."""
    _flow_seconds(flow, width)
    _bare_seconds(remote_function, width)
    samples: dict[str, list[float]] = {"kitaru": [], "kitaru_end_to_end": [], "bare": []}
    for _ in range(repetitions):
        seconds, end_to_end = _flow_seconds(flow, width)
        samples["kitaru"].append(seconds)
        samples["kitaru_end_to_end"].append(end_to_end)
        samples["bare"].append(_bare_seconds(remote_function, width))
    return samples
