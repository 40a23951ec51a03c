"""A script that starts runs only from short-lived threads: ``python thread_flows.py HOME``.

Prints one JSON line: the results, and whether Ray's own processes are still alive.
"""

from __future__ import annotations

import concurrent.futures
import json
import sys
import threading

from kitaru import checkpoint, flow
from kitaru.testing import isolated_home


@checkpoint
def double(x: int) -> int:
    return 2 * x


@flow
def doubled(x: int) -> int:
    return double(x) + double(x + 1)


def run_in_thread(x: int) -> int:
    return doubled.run(x).wait(timeout=60)


def main(home: str) -> None:
    results: list[int] = []
    with isolated_home(home):
        for x in range(3):  # one after another, each from a thread that ends right after
            thread = threading.Thread(target=lambda x=x: results.append(run_in_thread(x)))
            thread.start()
            thread.join()
        with concurrent.futures.ThreadPoolExecutor(4) as pool:  # at once, from a pool that then goes away
            results.extend(pool.map(run_in_thread, range(3, 7)))
        import ray

        node = ray._private.worker._global_node
        exited = {name: [info.process.poll() for info in infos] for name, infos in node.all_processes.items()}
        results.append(doubled.run(7).wait(timeout=60))
    print(json.dumps({"results": results, "exited": exited}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
