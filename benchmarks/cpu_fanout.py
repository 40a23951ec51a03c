"""``cpu_fanout``: many CPU-bound checkpoints sharing the cores.

A flow maps a checkpoint that burns 20 ms of CPU (``ray_options={"num_cpus": 1}``)
over 200 inputs and collects every result; the flow body times it. On two cores
that is about 2 s of pure work.

Baseline: the same 200 burns as bare Ray tasks with ``num_cpus=1``. Target
(SPEC §10): at most 1.25x the baseline, i.e. persisting and committing 200
outputs hides behind the work.
"""

from __future__ import annotations

import time

import ray

import kitaru
from benchmarks._fanout import measure
from benchmarks._harness import CaseResult, Options, Row, Target, fresh_home, median, warm_worker_pool

NAME = "cpu_fanout"
CPU_SECONDS = 0.02


def _burn(seconds: float) -> None:
    """Spin until this thread has used ``seconds`` of CPU (not wall) time."""
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@kitaru.checkpoint(ray_options={"num_cpus": 1})
def burn(i: int) -> int:
    _burn(CPU_SECONDS)
    return i


@ray.remote(num_cpus=1, max_retries=0)
def bare_burn(i: int) -> int:
    _burn(CPU_SECONDS)
    return i


@kitaru.flow
def burn_flow(width: int) -> list[float]:
    """Returns ``[seconds from the first submit to the last result, sum of results]``."""
    start = time.perf_counter()
    values = [future.result() for future in burn.map(list(range(width)))]
    return [time.perf_counter() - start, sum(values)]


def run(options: Options) -> CaseResult:
    width = options.pick(200, 20)
    repetitions = options.pick(3, 1)
    with fresh_home():
        warm_worker_pool(2, 1)
        samples = measure(burn_flow, bare_burn, width, repetitions)
    rows = [
        Row(
            NAME,
            f"{width} x {CPU_SECONDS * 1000:g} ms CPU (num_cpus=1), wall",
            median(samples["kitaru"]),
            "s",
            median(samples["bare"]),
            Target("ratio", "<=", 1.25),
        ),
    ]
    details = {
        "width": width,
        "cpu_seconds_each": CPU_SECONDS,
        "repetitions": repetitions,
        "baseline": f"{width} bare Ray tasks (num_cpus=1) burning {CPU_SECONDS} s of CPU",
        "samples_s": samples,
    }
    return CaseResult(NAME, rows, details)
