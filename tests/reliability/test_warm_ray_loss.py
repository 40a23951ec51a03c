"""The warm local Ray a driver joined goes away mid-run: the execution is interrupted, and resumes.

A script (``python warm_loss_flows.py``, a process of its own) joins the warm local Ray of
the test's ``KITARU_HOME``. Once its first call is committed and the second one runs, the
warm Ray goes away: every process of its head is SIGKILLed (its process group and every
descendant), as a crash would; or a user runs ``kitaru down``. The driver process releases
its execution at once and exits, saying how to resume it; ``resume`` (a second script)
starts a new warm Ray and completes the execution, re-running only the call that was in
flight. Each warm Ray is stopped by its own process group, never by ``ray stop``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import psutil
import pytest

from conftest import free_port
from kitaru import KitaruClient
from kitaru.runtime import warm as warm_ray
from kitaru.runtime._ray_watch import RAY_LOST_EXIT_CODE
from kitaru.testing import wait_for

SCRIPT = Path(__file__).with_name("warm_loss_flows.py")
# Ray itself ends a driver whose head is gone only after a minute, and its lease lapses 30 s after
# that: a driver that noticed nothing would still hold the execution when this passes.
RELEASED_WITHIN_SECONDS = 30


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "KITARU_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(sys.path),
        "KITARU_WARM_RAY": "1",
        "KITARU_LEASE_SECONDS": "30",  # the default: only the driver's own release makes it interrupted in time
    }


def _kitaru(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru.cli", *args], capture_output=True, text=True, env=_env(home), timeout=240
    )


def _counts(counters: Path) -> dict[str, int]:
    return {path.name: len(path.read_text().splitlines()) for path in sorted(counters.glob("step_*"))}


def _alive(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _head_processes(warm: warm_ray.WarmRay) -> list[psutil.Process]:
    """The warm Ray's supervisor and everything it started (GCS, raylet, dashboard, agents, workers)."""
    supervisor = psutil.Process(warm.pid)
    return [supervisor, *supervisor.children(recursive=True)]


def _left_running(warm: warm_ray.WarmRay, processes: list[psutil.Process]) -> list[str]:
    """What still runs of ``warm``: its processes, or any process naming its GCS (a node or worker of it)."""
    left = [" ".join(p.cmdline())[:120] for p in processes if _alive(p)]
    for process in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if any(warm.gcs_address in part for part in process.info["cmdline"] or []) and _alive(process):
                left.append(" ".join(process.info["cmdline"])[:120])
    return left


def _kill(warm: warm_ray.WarmRay) -> list[psutil.Process]:
    """SIGKILL every process of the warm Ray's head, as a crash would; returns what was killed."""
    processes = _head_processes(warm)
    os.killpg(warm.pid, signal.SIGKILL)
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    return processes


@contextlib.contextmanager
def _warm_rays_stopped(home: Path):
    try:
        yield
    finally:
        left = warm_ray.status(home)  # the one resume started
        if left is not None:
            _kill(left)


def _start_and_hold(home: Path, counters: Path) -> tuple[subprocess.Popen[str], str]:
    """Start the script; return once its first call is committed and the second one runs."""
    exec_id = f"warm-loss-{uuid.uuid4().hex[:8]}"
    driver = subprocess.Popen(
        [sys.executable, str(SCRIPT), "run", str(counters), exec_id],
        env=_env(home),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (counters / "step_1").exists() or driver.poll() is not None, timeout=180, message="the second call")
    assert driver.poll() is None, driver.communicate()[1][-3000:]
    calls = KitaruClient().executions.get(exec_id).checkpoints
    assert [call.status for call in calls][:1] == ["completed"]
    return driver, exec_id


def _assert_released(driver: subprocess.Popen[str], exec_id: str) -> None:
    """The driver noticed its Ray is gone: it released the execution and exited, saying how to resume it."""
    _, stderr = driver.communicate(timeout=RELEASED_WITHIN_SECONDS)
    assert driver.returncode == RAY_LOST_EXIT_CODE, stderr[-3000:]
    assert "went away" in stderr, stderr[-3000:]
    assert f"`kitaru executions resume {exec_id}`" in stderr, stderr[-3000:]
    assert KitaruClient().executions.get(exec_id).status == "interrupted"


def _assert_resumes(home: Path, counters: Path, exec_id: str, gone: warm_ray.WarmRay) -> None:
    (counters / "gate").touch()
    resumed = subprocess.run(
        [sys.executable, str(SCRIPT), "resume", exec_id], capture_output=True, text=True, env=_env(home), timeout=240
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert resumed.stdout.strip().splitlines()[-1] == "4"  # the fault-free result
    assert KitaruClient().executions.get(exec_id).status == "completed"
    # the committed call ran once; only the call in flight when the Ray went away ran again
    assert _counts(counters) == {"step_0": 1, "step_1": 2, "step_2": 1, "step_3": 1}
    again = warm_ray.status(home)
    assert again is not None and again.pid != gone.pid  # resume started a new warm Ray


@pytest.mark.crash
def test_a_crashed_warm_ray_leaves_its_driver_interrupted_and_resume_completes_it(kitaru_home, tmp_path):
    counters = tmp_path / "counters"
    counters.mkdir()
    with _warm_rays_stopped(kitaru_home):
        driver, exec_id = _start_and_hold(kitaru_home, counters)
        try:
            warm = warm_ray.status(kitaru_home)
            assert warm is not None and warm.origin == "run"  # the run started it and joined it
            processes = _kill(warm)
            _assert_released(driver, exec_id)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.communicate()
        assert warm_ray.status(kitaru_home) is None
        wait_for(lambda: not _left_running(warm, processes), timeout=30, message="the killed Ray gone")

        _assert_resumes(kitaru_home, counters, exec_id, warm)
        assert not _left_running(warm, processes)


def test_kitaru_down_mid_run_names_the_interrupted_execution_and_resume_completes_it(kitaru_home, tmp_path):
    counters = tmp_path / "counters"
    counters.mkdir()
    with _warm_rays_stopped(kitaru_home):
        up = _kitaru(kitaru_home, "up", "--no-server", "--port", str(free_port()), "--dashboard-port", str(free_port()))
        assert up.returncode == 0, up.stderr
        warm = warm_ray.status(kitaru_home)
        assert warm is not None and warm.origin == "up"
        driver, exec_id = _start_and_hold(kitaru_home, counters)
        try:
            processes = _head_processes(warm)
            down = _kitaru(kitaru_home, "down")
            assert down.returncode == 0, down.stderr
            assert f"Stopped the warm local Ray (pid {warm.pid}" in down.stdout
            # the user is told which execution stopping it interrupted, and how to continue it
            assert (
                f"Execution {exec_id} was running on it and is interrupted; `kitaru executions resume {exec_id}` continues it."
            ) in down.stdout, down.stdout
            _assert_released(driver, exec_id)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.communicate()
        wait_for(lambda: not _left_running(warm, processes), timeout=5, message="the stopped Ray's processes gone")

        _assert_resumes(kitaru_home, counters, exec_id, warm)
