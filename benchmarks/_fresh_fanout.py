"""The first fan-out of a fresh process: ``python -m benchmarks._fresh_fanout kitaru|bare [GCS_ADDRESS]``.

``kitaru``: one execution mapping a 0.5 s sleep over 20 inputs (Ray as Kitaru picks it; cache off, as
every run of the case shares one home);
``bare``: the same 20 sleeps as bare Ray tasks on the cluster at ``GCS_ADDRESS``.
Prints one JSON line: the fan-out's seconds (from the first submit to the last result).
"""

from __future__ import annotations

import json
import sys
import time

import kitaru

WIDTH = 20
SLEEP_SECONDS = 0.5


@kitaru.checkpoint
def nap(i: int) -> int:
    time.sleep(SLEEP_SECONDS)
    return i


@kitaru.flow
def fan_out(width: int) -> float:
    start = time.perf_counter()
    results = [future.result() for future in nap.map(list(range(width)))]
    assert sum(results) == sum(range(width))
    return time.perf_counter() - start


def bare(address: str) -> float:
    import ray

    ray.init(address=address, logging_level="WARNING")

    @ray.remote(num_cpus=0.1, max_retries=0)
    def bare_nap(i: int) -> int:
        time.sleep(SLEEP_SECONDS)
        return i

    start = time.perf_counter()
    ray.get([bare_nap.remote(i) for i in range(WIDTH)])
    return time.perf_counter() - start


if __name__ == "__main__":
    seconds = fan_out.run(WIDTH, cache=False).wait() if sys.argv[1] == "kitaru" else bare(sys.argv[2])
    print(json.dumps({"seconds": seconds}), flush=True)
