"""``cli_list``: ``kitaru executions list`` against a database of 1 000 executions.

Times the installed ``kitaru`` console script (``python -m kitaru.cli`` when it is
not on PATH) in a subprocess, median of 7, interleaved with ``python -c pass``
(the interpreter's own start-up). Target (SPEC §10): at most 0.5 s wall (Kitaru
0.21 took 4.6 s). A separate run checks that the command imported no Ray: a
query command never starts (or imports) Ray.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, fresh_home, median, timed

NAME = "cli_list"
_NO_RAY_CHECK = (
    "import sys\nfrom kitaru.cli import app\ntry:\n    app(['executions', 'list'])\nexcept SystemExit:\n    pass\n"
    "print('RAY-IMPORTED' if 'ray' in sys.modules else 'NO-RAY', file=sys.stderr)"
)


def _command() -> list[str]:
    script = Path(sys.executable).with_name("kitaru")
    if script.exists():
        return [str(script), "executions", "list"]
    found = shutil.which("kitaru")
    return (
        [found, "executions", "list"]
        if found
        else [sys.executable, "-c", "from kitaru.cli import main; main()", "executions", "list"]
    )


def _seed(count: int) -> None:
    """``count`` finished executions, written straight through the service layer (no flow needs to run)."""
    from kitaru_server import service_for

    from kitaru.config import resolve_settings

    settings = resolve_settings()
    service = service_for(settings.database_url)
    now = time.time()
    for i in range(count):
        service.create_execution(
            {
                "exec_id": f"bench-{i:05d}",
                "flow": f"flow_{i % 7}",
                "flow_ref": f"bench:flow_{i % 7}",
                "status": ("completed", "failed", "cancelled")[i % 3],
                "created_at": now - count + i,
                "started_at": now - count + i,
                "ended_at": now - count + i + 0.5,
                "inputs": {"preview": {"x": i}},
                "settings": settings.for_workers(),
                "driver_id": None,
                "lease_expires_at": None,
            }
        )


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=True, env=os.environ.copy())


def run(options: Options) -> CaseResult:
    count = options.pick(1000, 200)
    repetitions = options.pick(7, 3)
    command = _command()
    with fresh_home():
        _seed(count)
        listed = _run([*command, "-o", "json"]).stdout
        shown = len(json.loads(listed))
        _run(command)  # warm-up: the file system cache
        samples: dict[str, list[float]] = {"kitaru executions list": [], "pass": []}
        for _ in range(repetitions):
            samples["kitaru executions list"].append(timed(_run, command)[0])
            samples["pass"].append(timed(_run, [sys.executable, "-c", "pass"])[0])
        ray_check = subprocess.run(
            [sys.executable, "-c", _NO_RAY_CHECK], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        )
    rows = [
        Row(
            NAME,
            f"kitaru executions list ({count} executions), wall",
            median(samples["kitaru executions list"]),
            "s",
            median(samples["pass"]),
            Target("value", "<=", 0.5, "s"),
        ),
        Row(NAME, "ray imported by executions list", "RAY-IMPORTED" in ray_check.stderr, "", None, Target("value", "==", False)),
    ]
    details = {
        "executions": count,
        "rows_shown": shown,
        "command": command,
        "repetitions": repetitions,
        "baseline": 'python -c "pass"',
        "samples_s": samples,
    }
    return CaseResult(NAME, rows, details)
