"""Runs started from short-lived threads (a web handler, a thread pool) keep Ray alive.

Ray's processes die with the thread that called ``ray.init``; the runtime must start
Ray on a thread that lives as long as the process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def test_runs_from_short_lived_threads_one_after_another_and_at_once(tmp_path):
    env = {**os.environ, "KITARU_WARM_RAY": "0", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, str(HERE / "thread_flows.py"), str(tmp_path / "home")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["results"] == [4 * x + 2 for x in range(8)]
    assert all(code is None for codes in report["exited"].values() for code in codes), report["exited"]
