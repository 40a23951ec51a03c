"""``ray_backend``: flows submitted to a Ray cluster through the Jobs API (the ``ray`` backend).

The case starts its own cluster on this machine (a head and a second node, one CPU each,
each on its own ports; :class:`kitaru.backends.local_cluster.LocalRayCluster`) and a stack
on it. Both measurements run their Kitaru side and their baseline as jobs on that cluster,
with the same ``working_dir`` (this repository), interleaved.

- Submit to first checkpoint: from ``.run(stack=...)`` in this process to the first
  checkpoint starting in the cluster (its own ``time.time()``). Baseline: a bare
  ``JobSubmissionClient.submit_job`` of an entrypoint that only prints ``time.time()``,
  from the call to that line. The difference is Kitaru's driver start-up (imports,
  joining the cluster, recording the execution) and the first task. SPEC §10 asks for
  the figure beside its baseline; the target is our own.
- 200 CPU checkpoints (20 ms each, ``num_cpus=1``) spread over the two nodes, timed in
  the flow body, against the same 200 bare Ray tasks timed in a bare job's driver. Ray
  gives each job its own workers, so both sides start theirs within the timed fan-out.
  Target (SPEC §10): at most 1.25x.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import ray

import kitaru
from benchmarks._harness import REPO_ROOT, CaseResult, Options, Row, Target, fresh_home, median

NAME = "ray_backend"
CPU_SECONDS = 0.02


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


@kitaru.checkpoint
def started_at() -> float:
    return time.time()


@kitaru.flow
def first_checkpoint() -> float:
    """Returns the wall time its first checkpoint started at."""
    return started_at()


@kitaru.checkpoint(ray_options={"num_cpus": 1})
def burn(i: int) -> int:
    _burn(CPU_SECONDS)
    return i


@kitaru.flow
def burn_flow(width: int) -> list[float]:
    """Returns ``[seconds from the first submit to the last result, sum of results]``."""
    start = time.perf_counter()
    values = [future.result() for future in burn.map(list(range(width)))]
    return [time.perf_counter() - start, sum(values)]


def bare_burns(width: int) -> None:
    """The baseline driver (run as a job): ``width`` bare tasks; prints the seconds they took as JSON."""

    @ray.remote(num_cpus=1, max_retries=0)
    def bare_burn(i: int) -> int:
        _burn(CPU_SECONDS)
        return i

    ray.init(address="auto", logging_level="WARNING")
    start = time.perf_counter()
    total = sum(ray.get([bare_burn.remote(i) for i in range(width)]))
    print(json.dumps({"seconds": time.perf_counter() - start, "total": total}), flush=True)


def run(options: Options) -> CaseResult:
    from ray.job_submission import JobSubmissionClient

    from kitaru.backends.local_cluster import LocalRayCluster

    width = options.pick(200, 20)
    repetitions = options.pick(3, 1)
    os.chdir(REPO_ROOT)  # the jobs' working_dir: drivers import this module from it
    env = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "server")])}
    with LocalRayCluster(num_cpus=1, env=env) as cluster, fresh_home():
        cluster.add_node(num_cpus=1)
        kitaru.KitaruClient().stacks.create("bench", backend="ray", backend_options={"address": cluster.dashboard_url})
        jobs = JobSubmissionClient(cluster.dashboard_url)
        runtime_env = {"working_dir": str(REPO_ROOT)}
        first: dict[str, list[float]] = {"kitaru": [], "bare": []}
        fanout: dict[str, list[float]] = {"kitaru": [], "bare": []}
        for round_ in range(repetitions + 1):  # round 0 warms up (uploads, worker start-up)
            kitaru_first = _kitaru_first_checkpoint()
            bare_first = _bare_first_line(jobs, runtime_env)
            kitaru_fanout = _kitaru_fanout(width)
            bare_fanout = _bare_fanout(jobs, runtime_env, width)
            if round_:
                first["kitaru"].append(kitaru_first)
                first["bare"].append(bare_first)
                fanout["kitaru"].append(kitaru_fanout)
                fanout["bare"].append(bare_fanout)
    rows = [
        Row(NAME, "submit to first checkpoint", median(first["kitaru"]), "s", median(first["bare"]), Target("ratio", "<=", 3.0)),
        Row(
            NAME,
            f"{width} x {CPU_SECONDS * 1000:g} ms CPU over 2 nodes, wall",
            median(fanout["kitaru"]),
            "s",
            median(fanout["bare"]),
            Target("ratio", "<=", 1.25),
        ),
    ]
    details = {
        "width": width,
        "repetitions": repetitions,
        "cluster": "head + 1 node, 1 CPU each, on this machine",
        "first_checkpoint_baseline": "submit_job of `python -c 'print(time.time())'`, same working_dir, to that line",
        "fanout_baseline": f"{width} bare Ray tasks (num_cpus=1) in a bare job's driver (each job starts its own workers)",
        "samples_s": {"first_checkpoint": first, "fanout": fanout},
    }
    return CaseResult(NAME, rows, details)


def _kitaru_first_checkpoint() -> float:
    start = time.time()
    handle = first_checkpoint.run(stack="bench")
    return handle.wait(timeout=300) - start


def _bare_first_line(jobs: Any, runtime_env: dict[str, Any]) -> float:
    start = time.time()
    job = jobs.submit_job(
        entrypoint=f"{_python()} -c 'import time; print(time.time())'",
        runtime_env=runtime_env,
        submission_id=f"bare-{uuid.uuid4().hex[:8]}",
    )
    return float(_job_output(jobs, job).strip().splitlines()[-1]) - start


def _kitaru_fanout(width: int) -> float:
    seconds, total = burn_flow.run(width, stack="bench").wait(timeout=600)
    if total != sum(range(width)):
        raise RuntimeError(f"the fan-out returned {total}, expected {sum(range(width))}")
    return seconds


def _bare_fanout(jobs: Any, runtime_env: dict[str, Any], width: int) -> float:
    job = jobs.submit_job(
        entrypoint=f"{_python()} -c 'from benchmarks.ray_backend import bare_burns; bare_burns({width})'",
        runtime_env=runtime_env,
    )
    result = json.loads(_job_output(jobs, job).strip().splitlines()[-1])
    return result["seconds"]


def _job_output(jobs: Any, job: str) -> str:
    while not (status := jobs.get_job_status(job)).is_terminal():
        time.sleep(0.05)
    logs = jobs.get_job_logs(job)
    if str(status) != "SUCCEEDED":
        raise RuntimeError(f"job {job} ended {status}: {logs[-2000:]}")
    return logs


def _python() -> str:
    return sys.executable
