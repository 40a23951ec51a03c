"""The subprocess driver of the ``resume`` case: ``python -m benchmarks._resume_driver EXEC_ID LENGTH COUNTER_DIR``.

It runs :func:`benchmarks.resume.interruptible_chain`, which SIGKILLs this process
part-way (``KITARU_BENCH_KILL_AT``); the flow lives in an importable module so the
benchmark process can resume it by import path.
"""

from __future__ import annotations

import sys

from benchmarks.resume import interruptible_chain


def main(exec_id: str, length: str, counter_dir: str) -> None:
    interruptible_chain.run(int(length), counter_dir, exec_id=exec_id).wait()


if __name__ == "__main__":
    main(*sys.argv[1:])
