"""One driver process of the ``scale`` case: ``python -m benchmarks._scale_driver kitaru|bare N``.

Joins the Ray at ``KITARU_RAY_ADDRESS`` and runs N no-op calls at once (a flow mapping a
no-op checkpoint, or N bare Ray tasks). Prints one JSON line: seconds and this
process's peak RSS in MiB.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time

import kitaru


@kitaru.checkpoint
def noop(i: int) -> int:
    return i


@kitaru.flow
def mapped(n: int) -> float:
    start = time.perf_counter()
    total = sum(future.result() for future in noop.map(list(range(n))))
    assert total == n * (n - 1) // 2
    return time.perf_counter() - start


def bare(n: int) -> float:
    import ray

    ray.init(address=os.environ["KITARU_RAY_ADDRESS"], logging_level="WARNING")

    @ray.remote(num_cpus=0.1, max_retries=0)
    def bare_noop(i: int) -> int:
        return i

    ray.get([bare_noop.remote(i) for i in range(200)])  # the same warm-up as the flow's first calls get
    start = time.perf_counter()
    assert sum(ray.get([bare_noop.remote(i) for i in range(n)])) == n * (n - 1) // 2
    return time.perf_counter() - start


if __name__ == "__main__":
    n = int(sys.argv[2])
    seconds = mapped.run(n, cache=False).wait() if sys.argv[1] == "kitaru" else bare(n)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_mib}), flush=True)
