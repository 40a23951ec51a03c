"""``resume``: continuing a 100-call flow whose driver was SIGKILLed after 90 calls.

A subprocess driver (``benchmarks._resume_driver``) joins this run's Ray cluster
and ``KITARU_HOME`` with a 1 s lease and runs the chain flow, which SIGKILLs its
own process just before call 91. Once the execution reads ``interrupted`` (its
lease lapsed), this process times ``KitaruClient().executions.resume(id).wait()``
(Ray is already initialised, so ``ray.init`` is excluded). Every checkpoint call
appends to a counter file named after its input, so the number of finished
calls that ran again is counted, not inferred.

Targets (SPEC §10): 0 finished calls re-executed; resume in at most 0.5 s.
Baseline: a fresh, uninterrupted run of the same 100-call flow in this process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

import ray

import kitaru
from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, fresh_home, median, timed
from kitaru.testing import wait_for

NAME = "resume"
KILL_AT_ENV = "KITARU_BENCH_KILL_AT"


@kitaru.checkpoint
def step(x: int, counter_dir: str) -> int:
    with Path(counter_dir, str(x)).open("a") as counter:
        counter.write("x\n")
    return x + 1


@kitaru.flow
def interruptible_chain(length: int, counter_dir: str) -> int:
    """``x = step(x)`` ``length`` times; the process dies before call ``$KITARU_BENCH_KILL_AT + 1`` when that is set."""
    kill_at = os.environ.get(KILL_AT_ENV)
    x = 0
    for _ in range(length):
        if kill_at is not None and x == int(kill_at):
            os.kill(os.getpid(), signal.SIGKILL)
        x = step(x, counter_dir)
    return x


def _interrupt(home: Path, length: int, kill_at: int, counter_dir: str) -> str:
    """Run the flow in a subprocess that kills itself after ``kill_at`` calls; returns the exec_id once interrupted."""
    exec_id = str(uuid.uuid4())
    env = {
        **os.environ,
        "KITARU_HOME": str(home),
        "KITARU_RAY_ADDRESS": ray.get_runtime_context().gcs_address,
        "RAY_AUTH_MODE": "disabled",
        "KITARU_LEASE_SECONDS": "1",
        "KITARU_CACHE": "0",
        KILL_AT_ENV: str(kill_at),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    driver = subprocess.run(
        [sys.executable, "-m", "benchmarks._resume_driver", exec_id, str(length), counter_dir],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if driver.returncode != -signal.SIGKILL:
        raise RuntimeError(f"the subprocess driver exited with {driver.returncode}, not SIGKILL:\n{driver.stderr[-3000:]}")
    client = kitaru.KitaruClient()
    wait_for(lambda: client.executions.get(exec_id).status == "interrupted", timeout=30, message="status interrupted")
    return exec_id


def _resume_once(home: Path, length: int, kill_at: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-counters-") as counter_dir:
        exec_id = _interrupt(home, length, kill_at, counter_dir)
        client = kitaru.KitaruClient()
        finished = [_input_of(c.invocation_id) for c in client.executions.get(exec_id).checkpoints if c.status == "completed"]
        before = _counts(counter_dir, length)
        seconds, result = timed(lambda: client.executions.resume(exec_id).wait())
        after = _counts(counter_dir, length)
    if result != length:
        raise RuntimeError(f"the resumed flow returned {result}, expected {length}")
    reran = [x for x in finished if after[x] > before[x]]
    return {
        "seconds": seconds,
        "finished_before_resume": len(finished),
        "ran_before_kill": sum(1 for c in before if c),
        "re_executed_finished_calls": len(reran),
        "never_ran": sum(1 for c in after if c == 0),
    }


def _input_of(invocation_id: str) -> int:
    """The ``x`` a call of ``step`` received: invocation ids are ``step``, ``step_2``, ``step_3``, ..."""
    return 0 if invocation_id == "step" else int(invocation_id.rsplit("_", 1)[1]) - 1


def _counts(counter_dir: str, length: int) -> list[int]:
    def count(x: int) -> int:
        path = Path(counter_dir, str(x))
        return len(path.read_text().splitlines()) if path.exists() else 0

    return [count(x) for x in range(length)]


def _fresh_run_seconds(length: int) -> float:
    with tempfile.TemporaryDirectory(prefix="kitaru-bench-counters-") as counter_dir:
        seconds, _ = timed(lambda: interruptible_chain.run(length, counter_dir).wait())
    return seconds


def run(options: Options) -> CaseResult:
    length, kill_at = options.pick((100, 90), (20, 18))
    repetitions = options.pick(3, 1)
    trials: list[dict[str, Any]] = []
    fresh: list[float] = []
    with fresh_home() as home:
        _resume_once(home, length, kill_at)  # warm-up: the subprocess path and the resume path
        _fresh_run_seconds(length)
        for _ in range(repetitions):
            trials.append(_resume_once(home, length, kill_at))
            fresh.append(_fresh_run_seconds(length))
    rows = [
        Row(
            NAME,
            f"finished calls re-executed ({length}-call flow killed after {kill_at})",
            max(t["re_executed_finished_calls"] for t in trials),
            "calls",
            None,
            Target("value", "==", 0),
        ),
        Row(
            NAME,
            "resume + wait, excluding ray.init",
            median([t["seconds"] for t in trials]),
            "s",
            median(fresh),
            Target("value", "<=", 0.5, "s"),
        ),
    ]
    details = {
        "length": length,
        "kill_at": kill_at,
        "repetitions": repetitions,
        "trials": trials,
        "fresh_run_s": fresh,
        "baseline": f"a fresh uninterrupted run of the same {length}-call flow",
    }
    return CaseResult(NAME, rows, details)
