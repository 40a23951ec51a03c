"""A whole one-checkpoint script, as a user runs it: ``python -m benchmarks._one_checkpoint``.

Prints one JSON line: when its checkpoint started (``time.time()`` in the worker).
"""

from __future__ import annotations

import json
import time

from kitaru import checkpoint, flow


@checkpoint
def first() -> float:
    return time.time()


@flow
def one() -> float:
    return first()


if __name__ == "__main__":
    print(json.dumps({"checkpoint_started": one.run().wait()}), flush=True)
