"""The floor of a joined run: a fresh process that imports Ray, joins a running Ray and runs one task.

``python -m benchmarks._bare_joined`` with ``KITARU_BENCH_RAY_ADDRESS`` set; prints one JSON line:
when its task started (``time.time()`` in the worker).
"""

from __future__ import annotations

import json
import logging
import os
import time

import ray


@ray.remote(num_cpus=0.1)
def first() -> float:
    return time.time()


if __name__ == "__main__":
    ray.init(address=os.environ["KITARU_BENCH_RAY_ADDRESS"], logging_level=logging.WARNING)
    print(json.dumps({"checkpoint_started": ray.get(first.remote())}), flush=True)
