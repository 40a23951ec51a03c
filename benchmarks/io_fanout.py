"""``io_fanout``: many I/O-bound checkpoints running at once.

A flow maps a checkpoint that sleeps 0.5 s (standing in for a model call) over
20 inputs with ``.map(...)`` and collects every result; the flow body times it.
Checkpoints reserve ``num_cpus=0.1`` by default, so all 20 run concurrently on
two cores. Target (SPEC §10): the whole fan-out in at most 0.8 s.

Baseline: the same 20 sleeps as bare Ray tasks with ``num_cpus=0.1``. Both run on
a pool of already-started Ray workers (see ``warm_worker_pool``): a cold pool
measures Ray's process start-up, not Kitaru.
"""

from __future__ import annotations

import time

import ray

import kitaru
from benchmarks._fanout import measure
from benchmarks._harness import CaseResult, Options, Row, Target, fresh_home, median, warm_worker_pool

NAME = "io_fanout"
SLEEP_SECONDS = 0.5
NUM_CPUS = 0.1  # Kitaru's default for a checkpoint


@kitaru.checkpoint
def nap(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i


@ray.remote(num_cpus=NUM_CPUS, max_retries=0)
def bare_nap(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i


@kitaru.flow
def fanout_flow(width: int) -> list[float]:
    """Returns ``[seconds from the first submit to the last result, sum of results]``."""
    start = time.perf_counter()
    values = [future.result() for future in nap.map(list(range(width)))]
    return [time.perf_counter() - start, sum(values)]


def run(options: Options) -> CaseResult:
    width = options.pick(20, 8)
    repetitions = options.pick(3, 1)
    with fresh_home():
        warm_worker_pool(width, NUM_CPUS)
        samples = measure(fanout_flow, bare_nap, width, repetitions)
    rows = [
        Row(
            NAME,
            f"{width} x sleep {SLEEP_SECONDS:g} s via .map(), wall",
            median(samples["kitaru"]),
            "s",
            median(samples["bare"]),
            Target("value", "<=", 0.8, "s"),
        ),
    ]
    details = {
        "width": width,
        "sleep_seconds": SLEEP_SECONDS,
        "repetitions": repetitions,
        "baseline": f"{width} bare Ray tasks (num_cpus={NUM_CPUS}) sleeping {SLEEP_SECONDS} s",
        "samples_s": samples,
    }
    return CaseResult(NAME, rows, details)
