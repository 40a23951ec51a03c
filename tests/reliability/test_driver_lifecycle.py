"""A script that ends right after ``.run()`` never loses the executions it drives.

The process waits for them to finish or to suspend on a wait (saying so in one
line naming the exec id); Ctrl-C while it waits leaves them ``interrupted`` and
resumable; an execution is never ``failed`` because its driver process exited.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from kitaru import KitaruClient
from kitaru.contracts.statuses import ExecutionStatus
from kitaru.testing import wait_for

SCRIPT = Path(__file__).with_name("lifecycle_flows.py")


def start_script(scenario: str, home: Path, gcs_address: str, marker_dir: Path) -> tuple[subprocess.Popen[str], str]:
    exec_id = f"{scenario}-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KITARU_HOME": str(home), "KITARU_RAY_ADDRESS": gcs_address, "KITARU_LEASE_SECONDS": "30"}
    env.pop("KITARU_NO_PROMPT", None)  # stdin is not a TTY anyway
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), scenario, exec_id, str(marker_dir)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return process, exec_id


def test_script_ending_after_run_waits_for_its_execution(ray_session, kitaru_home, tmp_path):
    process, exec_id = start_script("quick", kitaru_home, ray_session, tmp_path)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr[-3000:]
    execution = KitaruClient().executions.get(exec_id)
    assert execution.status == "completed", execution.failure
    assert execution.result() == "done"
    lines = [line for line in stderr.splitlines() if exec_id in line]
    assert len(lines) == 1 and "waiting" in lines[0], stderr[-3000:]


def test_script_ending_while_its_flow_waits_suspends_it(ray_session, kitaru_home, tmp_path):
    process, exec_id = start_script("gate", kitaru_home, ray_session, tmp_path)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr[-3000:]
    record = KitaruClient().service.get_execution(exec_id, with_calls=False)
    assert record["status"] == "waiting" and record["driver_id"] is None, record
    assert any(exec_id in line and "approve" in line for line in stderr.splitlines()), stderr[-3000:]


def test_ctrl_c_while_waiting_at_exit_leaves_the_execution_interrupted(ray_session, kitaru_home, tmp_path):
    process, exec_id = start_script("slow", kitaru_home, ray_session, tmp_path)
    wait_for(lambda: (tmp_path / "started").exists() or process.poll() is not None, timeout=120)
    assert process.poll() is None, process.communicate()[1][-3000:]
    client = KitaruClient()
    wait_for(lambda: client.executions.get(exec_id).checkpoints, timeout=60, message="the checkpoint started")
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    execution = client.executions.get(exec_id)
    assert execution.status == "interrupted", (process.returncode, execution.status, execution.failure, stderr[-3000:])
    assert ExecutionStatus(execution.status).is_resumable
    assert execution.failure is None
