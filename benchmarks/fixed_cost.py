"""``fixed_cost``: what a fresh ``python script.py`` pays before its first checkpoint runs.

Each sample is a new process running a one-checkpoint flow
(``benchmarks/_one_checkpoint.py``) in a fresh ``KITARU_HOME``. Measured:

- fixed cost: from starting the process to the checkpoint starting in its worker;
- wall time of the whole script.

Three ways to get Ray, in the same run: a private ``ray.init`` per process
(``KITARU_WARM_RAY=0``, the baseline); the first run of a home, which starts the
warm local Ray in the background and joins it; later runs, which join it.
Targets (SPEC §10): joined fixed cost ≤ 1.5 s; the second run of a script ≤ 2.0 s wall.
Beside the joined runs, the floor Ray sets (details, ``bare``): a fresh process that
imports Ray, joins the same warm Ray and runs one task (``benchmarks/_bare_joined.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, last_json_line, median

NAME = "fixed_cost"


def one_script(home: Path, module: str = "benchmarks._one_checkpoint", **env: str) -> dict[str, float]:
    """Run the one-checkpoint script (or ``module``) in a new process; its fixed cost and wall time in seconds."""
    environment = {
        **os.environ,
        "KITARU_HOME": str(home),
        "KITARU_CACHE": "0",  # every run executes its checkpoint (a cache hit would return the first run's time)
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server"), os.environ.get("PYTHONPATH", "")]),
        **env,
    }
    for inherited in ("KITARU_RAY_ADDRESS", "RAY_ADDRESS"):
        environment.pop(inherited, None)
    started = time.time()
    done = subprocess.run(
        [sys.executable, "-m", module],
        capture_output=True,
        text=True,
        env=environment,
        cwd=REPO_ROOT,
        timeout=300,
    )
    wall = time.time() - started
    if done.returncode != 0:
        raise RuntimeError(f"the one-checkpoint script failed:\n{done.stderr[-3000:]}")
    checkpoint_started = last_json_line(done.stdout)["checkpoint_started"]
    return {"fixed": checkpoint_started - started, "wall": wall}


def run(options: Options) -> CaseResult:
    from kitaru.runtime import warm as warm_ray

    repetitions = options.pick(3, 1)
    samples: dict[str, list[dict[str, float]]] = {"private": [], "first": [], "joined": [], "bare": []}
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-") as tmp:
        for index in range(repetitions):
            samples["private"].append(one_script(Path(tmp, f"private-{index}"), KITARU_WARM_RAY="0"))
        home = Path(tmp, "warm")
        try:
            samples["first"].append(one_script(home, KITARU_WARM_RAY="1"))
            warm = warm_ray.status(home)
            for _ in range(repetitions):
                samples["joined"].append(one_script(home, KITARU_WARM_RAY="1"))
                if warm is not None:
                    bare = one_script(home, "benchmarks._bare_joined", KITARU_BENCH_RAY_ADDRESS=warm.gcs_address)
                    samples["bare"].append(bare)
        finally:
            warm_ray.stop(home)
    fixed = {key: [s["fixed"] for s in values] for key, values in samples.items()}
    wall = {key: [s["wall"] for s in values] for key, values in samples.items()}
    private_fixed, private_wall = median(fixed["private"]), median(wall["private"])
    rows = [
        Row(
            NAME,
            "fixed cost, joined to the warm local Ray (process start to first checkpoint)",
            median(fixed["joined"]),
            "s",
            private_fixed,
            Target("value", "<=", 1.5, "s"),
        ),
        Row(
            NAME,
            "one-checkpoint script, second run (wall)",
            median(wall["joined"]),
            "s",
            private_wall,
            Target("value", "<=", 2.0, "s"),
        ),
        Row(
            NAME,
            "one-checkpoint script, first run: starts the warm Ray (wall)",
            wall["first"][0],
            "s",
            private_wall,
            Target("ratio", "<=", 2.0),
        ),
    ]
    details: dict[str, Any] = {
        "repetitions": repetitions,
        "baseline": "a private ray.init per process (KITARU_WARM_RAY=0)",
        "bare": "a fresh process importing Ray, joining the same warm Ray and running one task",
        "median_fixed_seconds": {key: median(values) for key, values in fixed.items() if values},
        "median_wall_seconds": {key: median(values) for key, values in wall.items() if values},
        "samples": samples,
    }
    return CaseResult(NAME, rows, details)
