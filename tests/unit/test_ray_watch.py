"""The watch on a joined warm Ray, without Ray: a listening socket stands in for the head's GCS port.

A process whose head stops answering releases the executions it drives (without asking the dead
Ray to cancel anything), says how to resume them and exits with status 75; a process that left
that Ray is not affected. The drivers here are stand-ins recording how they were released (the
real release is covered with a real warm Ray in ``tests/reliability/test_warm_ray_loss.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from kitaru.runtime._ray_watch import RAY_LOST_EXIT_CODE

SCRIPT = textwrap.dedent(
    """
    import socket, sys, time
    from kitaru.runtime import _exit
    from kitaru.runtime._ray_watch import watch_ray

    class Driver:
        driver_id = exec_id = "exec-1"
        service = None

        def abandon(self, *, cancel_tasks=True):
            print(f"released cancel_tasks={cancel_tasks}", flush=True)

    head = socket.create_server(("127.0.0.1", 0))
    _exit.track(Driver())
    joined = sys.argv[1] == "joined"
    watch_ray(f"127.0.0.1:{head.getsockname()[1]}", "the test head", still_joined=lambda: joined)
    time.sleep(1.0)  # it answers: nothing happens
    print("head gone", flush=True)
    head.close()
    time.sleep(60 if joined else 2.5)  # the watch gives up on a head after about 1.5 s
    print("still running", flush=True)
    _exit.untrack(Driver())
    """
)


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, env=env, timeout=60)


def test_a_head_that_goes_away_releases_the_executions_and_exits():
    result = _run("joined")
    assert result.returncode == RAY_LOST_EXIT_CODE, result.stderr
    assert result.stdout.splitlines() == ["head gone", "released cancel_tasks=False"]
    assert "kitaru: the test head went away" in result.stderr
    assert "`kitaru executions resume exec-1` continues it" in result.stderr


def test_a_process_that_left_that_ray_is_not_affected():
    result = _run("left")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["head gone", "still running"]
    assert "went away" not in result.stderr
