"""The warm local Ray: ``kitaru up``/``down``/``status``, runs joining it, and the one a run starts by itself.

Every test stops what it started by its process group (never ``ray stop``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import free_port
from kitaru.runtime import warm as warm_ray
from kitaru.testing import wait_for

HERE = Path(__file__).parent


def _env(home: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "KITARU_HOME": str(home), "PYTHONPATH": os.pathsep.join(sys.path), **extra}


def _kitaru(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kitaru.cli", *args], capture_output=True, text=True, env=_env(home, **extra), timeout=240
    )


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def _stopped_afterwards(home: Path):
    try:
        yield
    finally:
        warm_ray.stop(home)
        with contextlib.suppress(Exception):
            from kitaru_server import process

            if process.status(home=home).running:
                process.stop(home=home)


def test_up_status_run_down(tmp_path):
    home = tmp_path / "home"
    with _stopped_afterwards(home):
        started = _kitaru(
            home, "up", "--port", str(free_port()), "--dashboard-port", str(free_port()), "--server-port", str(free_port()),
            "--no-auth", "-o", "json",
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        up = json.loads(started.stdout)
        assert up["started"] and up["ray"]["dashboard_url"].startswith("http://127.0.0.1:")
        assert up["server"]["url"].startswith("http://127.0.0.1:")

        status = json.loads(_kitaru(home, "status", "-o", "json").stdout)
        assert status["ray"]["gcs_address"] == up["ray"]["gcs_address"]
        assert status["server"]["url"] == up["server"]["url"]
        again = _kitaru(home, "up", "-o", "json")
        assert again.returncode == 0 and not json.loads(again.stdout)["started"]

        work = tmp_path / "work"
        work.mkdir()
        run = subprocess.run(
            [sys.executable, str(HERE / "warm_flows.py")],
            capture_output=True, text=True, cwd=work, timeout=240,
            env=_env(home, KITARU_WARM_RAY="1", KITARU_TEST_MARK="from-the-driver"),
        )  # fmt: skip
        assert run.returncode == 0, run.stderr[-3000:]
        report = json.loads(run.stdout.strip().splitlines()[-1])
        # the worker was started by the warm head, yet sees the driver's environment and directory
        assert report["seen"]["mark"] == "from-the-driver"
        assert report["seen"]["cwd"] == str(work)
        assert report["metadata"]["ray_job_id"]  # the job that ran it on the warm Ray
        assert warm_ray.status(home) is not None  # the run joined it and left it up

        stopped = _kitaru(home, "down", "-o", "json")
        assert stopped.returncode == 0, stopped.stderr
        assert json.loads(stopped.stdout)["ray"]["pid"] == up["ray"]["pid"]
        assert _group_gone(up["ray"]["pid"])
        assert warm_ray.status(home) is None

    nothing = _kitaru(home, "down")
    assert nothing.returncode == 0
    assert "Nothing was up" in nothing.stdout


def test_up_names_the_process_holding_its_port_and_kills_nothing(tmp_path):
    with socket.socket() as holder:
        holder.bind(("", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _kitaru(tmp_path / "home", "up", "--port", str(port), "--no-server")
        assert result.returncode == 2
        assert f"port {port} is taken by" in result.stderr
        assert f"pid {os.getpid()}" in result.stderr
        assert "KITARU_RAY_ADDRESS" in result.stderr
        holder.getsockname()  # still ours: nothing was killed
    assert warm_ray.status(tmp_path / "home") is None


def test_a_run_starts_a_warm_ray_that_stops_itself_when_idle(tmp_path):
    """With no ``RAY_AUTH_MODE`` set and a token at hand, the head gets Ray's token auth, and the run still joins it."""
    home = tmp_path / "home"
    token = tmp_path / "auth_token"
    token.write_text(secrets.token_hex(32))
    env = _env(home, KITARU_WARM_RAY="1", KITARU_WARM_IDLE_MINUTES="0.05", RAY_AUTH_TOKEN_PATH=str(token))
    env.pop("RAY_AUTH_MODE", None)
    with _stopped_afterwards(home):
        run = subprocess.run([sys.executable, str(HERE / "warm_flows.py")], capture_output=True, text=True, timeout=240, env=env)
        assert run.returncode == 0, run.stderr[-3000:]
        recorded = json.loads((home / "warm" / "ray.json").read_text())
        assert recorded["origin"] == "run" and recorded["idle_minutes"] == pytest.approx(0.05)
        assert recorded["auth_mode"] == "token"
        # the driver process ended; with no driver left the head stops itself, group and all
        wait_for(lambda: warm_ray.status(home) is None and _group_gone(recorded["pid"]), timeout=120, message="idle stop")
