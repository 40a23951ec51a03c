"""A script's exit: Ray is left at once unless a checkpoint's output may still be on its way to the terminal.

Ray copies what its workers print to the driver's terminal a moment after they print it (its
log monitor polls their files), and its own exit hook always waits half a second for that.
Kitaru leaves Ray itself when no driver is left and no checkpoint of an execution that just
ended printed; a checkpoint that printed still has its line on the terminal.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

SCRIPT = textwrap.dedent(
    """
    import sys
    from kitaru import checkpoint, flow

    @checkpoint
    def speak(word: str) -> str:
        if word:
            print(f"checkpoint says {word}", flush=True)
        return word

    @flow
    def talk(word: str) -> str:
        return speak(word)

    print("result:", talk.run(sys.argv[1]).wait(), flush=True)
    """
)


def _run(tmp_path: Path, gcs_address: str, word: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "talk.py"
    script.write_text(SCRIPT)
    env = {
        **os.environ,
        "KITARU_HOME": str(tmp_path / "home"),
        "KITARU_RAY_ADDRESS": gcs_address,
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    return subprocess.run([sys.executable, str(script), word], env=env, capture_output=True, text=True, timeout=240)


def test_a_checkpoint_that_printed_still_reaches_the_terminal(ray_session, tmp_path):
    done = _run(tmp_path, ray_session, "hello-from-the-worker")
    assert done.returncode == 0, done.stderr
    assert "result: hello-from-the-worker" in done.stdout
    assert "checkpoint says hello-from-the-worker" in done.stdout + done.stderr  # Ray's copy, prefixed by the task


def test_a_silent_script_exits_cleanly(ray_session, tmp_path):
    done = _run(tmp_path, ray_session, "")
    assert done.returncode == 0, done.stderr
    assert "result: " in done.stdout
    assert "Traceback" not in done.stderr
