"""Crash injection: SIGKILL the driver, a Ray worker or the runtime actor, then check the invariants.

After every crash (and a ``resume`` where the driver died):
- the result equals the fault-free one;
- every call committed before the crash ran exactly once (counter files);
- storage holds no partial or corrupt object, and every committed output exists.

The number of trials is ``--crash-trials`` (default 24): half kill the driver
(a subprocess joined to the shared Ray session), a quarter a Ray worker, a
quarter the runtime actor.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from kitaru import KitaruClient, checkpoint, flow
from kitaru.testing import count_calls, kill_process, wait_for

pytestmark = pytest.mark.crash
SCRIPT = Path(__file__).with_name("crash_flows.py")


def pytest_generate_tests(metafunc):
    trials = metafunc.config.getoption("--crash-trials")
    kinds = [("driver", "driver", "worker", "actor")[i % 4] for i in range(trials)]
    if "driver_trial" in metafunc.fixturenames:
        metafunc.parametrize("driver_trial", [i for i, kind in enumerate(kinds) if kind == "driver"])
    if "process_trial" in metafunc.fixturenames:
        trials = [(kind, i) for i, kind in enumerate(kinds) if kind != "driver"]
        metafunc.parametrize("process_trial", trials, ids=[f"{kind}-{i}" for kind, i in trials])


def counters(directory: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in directory.iterdir()}


def assert_storage_is_whole(home: Path, execution) -> None:
    objects = home / "storage" / "objects"
    for path in objects.rglob("*"):
        if path.is_file():
            assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, f"partial or corrupt object {path}"
    for call in execution.checkpoints:
        if call.status == "completed":
            assert call.output is not None and Path(call.output.uri.removeprefix("file://")).is_file()


def run_driver_until_killed(home: Path, gcs_address: str, scenario: str, counter_dir: Path, rng: random.Random) -> str:
    exec_id = f"crash-{uuid.uuid4().hex[:8]}"
    if rng.random() < 0.3:
        kill_after, kill_at = "0", str(rng.randrange(0, 8 if scenario == "chain" else 1))
    else:
        kill_after, kill_at = f"{rng.uniform(0.001, 0.3 if scenario == 'chain' else 0.06):.3f}", "-1"
    env = {**os.environ, "KITARU_HOME": str(home), "KITARU_RAY_ADDRESS": gcs_address, "KITARU_LEASE_SECONDS": "1"}
    process = subprocess.run(
        [sys.executable, str(SCRIPT), scenario, exec_id, str(counter_dir), kill_after, kill_at],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert process.returncode == -9, f"the driver was not killed (rc={process.returncode}):\n{process.stderr[-3000:]}"
    return exec_id


def test_driver_crash_then_resume(driver_trial, ray_session, kitaru_home, tmp_path):
    index = driver_trial
    rng = random.Random(index)
    scenario = "chain" if index % 8 == 0 else rng.choice(["chain", "fanout"])
    counter_dir = tmp_path / "counters"
    counter_dir.mkdir()
    exec_id = run_driver_until_killed(kitaru_home, ray_session, scenario, counter_dir, rng)
    client = KitaruClient()
    wait_for(lambda: client.executions.get(exec_id).status in ("interrupted", "completed"), timeout=30, message="lease lapse")
    before = client.executions.get(exec_id)
    committed_before = {c.invocation_id for c in before.checkpoints if c.status == "completed"}
    if before.status == "interrupted":
        handle = client.executions.resume(exec_id)
        result = handle.wait(timeout=120)
    else:
        result = before.result()
    from crash_flows import EXPECTED  # noqa: PLC0415 - the script's module, for the fault-free result

    assert result == EXPECTED[scenario]()
    after = client.executions.get(exec_id)
    assert after.status == "completed"
    runs = counters(counter_dir)
    for call in after.checkpoints:
        name = _counter_name(call, runs)
        assert runs.get(name, 0) >= 1
        if call.invocation_id in committed_before:
            assert runs[name] == 1, f"{call.invocation_id} was committed before the crash but ran {runs[name]} times"
    assert_storage_is_whole(kitaru_home, after)


def _counter_name(call, runs):
    """Counter files are named by the step's own name argument (step_3, leaf_5, combine)."""
    if call.name == "combine":
        return "combine"
    index = 0 if call.invocation_id == "step" else int(call.invocation_id.rsplit("_", 1)[1]) - 1
    return f"step_{index}" if f"step_{index}" in runs else f"leaf_{index}"


# --- worker and runtime-actor crashes (in this process; no resume needed) ----------------------


@checkpoint(retries=2, retry_delay=0.01)
def leaf(counter_dir, index, doomed):
    runs = count_calls(counter_dir, f"leaf_{index}")
    if index == doomed and runs == 1:
        kill_process(os.getpid())  # this kills the Ray worker running the attempt
    time.sleep(0.05)
    return index * 10


@checkpoint
def gather(values):
    return sum(values)


@flow
def fanout_in_process(counter_dir, width, doomed):
    futures = [leaf.submit(counter_dir, i, doomed) for i in range(width)]
    return gather(futures)


def test_worker_or_actor_crash(process_trial, ray_session, kitaru_home, tmp_path):
    kind, index = process_trial
    home = kitaru_home
    rng = random.Random(1000 + index)
    counter_dir = tmp_path / "counters"
    counter_dir.mkdir()
    width = 8
    doomed = rng.randrange(width) if kind == "worker" else -1
    handle = fanout_in_process.run(str(counter_dir), width, doomed, cache=False)
    if kind == "actor":
        import ray

        from kitaru.runtime._ray import runtime_actor

        pid = ray.get(runtime_actor().pid.remote())
        killer = threading.Timer(rng.uniform(0.0, 0.2), kill_process, args=(pid,))
        killer.start()
    assert handle.wait(timeout=120) == sum(i * 10 for i in range(width))
    if kind == "actor":
        killer.join()
        new_pid = wait_for(lambda: ray.get(runtime_actor().pid.remote()), timeout=30)
        assert new_pid != pid, "the runtime actor was not restarted after its SIGKILL"
    execution = KitaruClient().executions.get(handle.exec_id)
    runs = counters(counter_dir)
    for call in execution.checkpoints:
        if call.name == "leaf":
            leaf_index = 0 if call.invocation_id == "leaf" else int(call.invocation_id.rsplit("_", 1)[1]) - 1
            expected_runs = 2 if leaf_index == doomed else 1
            assert runs[f"leaf_{leaf_index}"] == expected_runs
            if leaf_index == doomed:
                assert [a.status for a in call.attempts] == ["failed", "completed"]
                assert call.attempts[0].error["origin"] == "runtime"
    assert_storage_is_whole(home, execution)
