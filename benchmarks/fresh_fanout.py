"""``fresh_fanout``: the first I/O fan-out of a fresh process (cold Ray workers).

A new process runs one execution mapping a 0.5 s sleep over 20 inputs
(``benchmarks/_fresh_fanout.py``); the flow body times the fan-out. Each
concurrent call needs a Ray worker process, and a fresh driver has none yet.
Measured joined to the warm local Ray (the default) and with a private
``ray.init``. Baseline: a fresh process running the same 20 sleeps as bare Ray
tasks on the warm local Ray. Target (SPEC §10): ≤ 1.0 s joined.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, last_json_line, median

NAME = "fresh_fanout"


def _fresh(home: Path, *args: str, **env: str) -> float:
    environment = {
        **os.environ,
        "KITARU_HOME": str(home),
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server"), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    environment.pop("KITARU_RAY_ADDRESS", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks._fresh_fanout", *args],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the fresh fan-out failed:\n{done.stderr[-3000:]}")
    return last_json_line(done.stdout)["seconds"]


def run(options: Options) -> CaseResult:
    from kitaru.runtime import warm as warm_ray

    repetitions = options.pick(3, 1)
    samples: dict[str, list[float]] = {"joined": [], "private": [], "bare_joined": []}
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-") as tmp:
        home = Path(tmp, "warm")
        warm = warm_ray.start(home, origin="run")
        try:
            _fresh(home, "kitaru", KITARU_WARM_RAY="1")  # the warm Ray's own start-up is not a fan-out's
            for _ in range(repetitions):
                samples["joined"].append(_fresh(home, "kitaru", KITARU_WARM_RAY="1"))
                samples["bare_joined"].append(_fresh(home, "bare", warm.gcs_address))
        finally:
            warm_ray.stop(home)
        for index in range(repetitions):
            samples["private"].append(_fresh(Path(tmp, f"private-{index}"), "kitaru", KITARU_WARM_RAY="0"))
    bare = median(samples["bare_joined"])
    rows = [
        Row(NAME, "first fan-out of a fresh process, 20 x 0.5 s, joined", median(samples["joined"]), "s", bare,
            Target("value", "<=", 1.0, "s")),
        Row(NAME, "first fan-out of a fresh process, 20 x 0.5 s, private ray.init", median(samples["private"]), "s", bare,
            Target("value", "<=", 1.0, "s")),
    ]  # fmt: skip
    details: dict[str, Any] = {
        "repetitions": repetitions,
        "baseline": "a fresh process's 20 bare Ray tasks (num_cpus=0.1) on the warm local Ray",
        "samples_seconds": samples,
    }
    return CaseResult(NAME, rows, details)
