"""The scripts under ``examples/`` run as a user runs them: ``python examples/<name>.py``.

Each runs in a subprocess joining the shared Ray session (``KITARU_RAY_ADDRESS``),
and the test reads what it recorded from its ``KITARU_HOME``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(name: str, *, gcs_address: str, cwd: Path, env: dict[str, str], timeout: float = 240) -> str:
    """Run ``examples/<name>`` with ``env`` on top of this environment; returns its stdout (it must exit 0)."""
    full_env = {**os.environ, "KITARU_RAY_ADDRESS": gcs_address, "RAY_AUTH_MODE": "disabled", **env}
    for key in [k for k, v in full_env.items() if v is None]:
        del full_env[key]
    command = [sys.executable, str(EXAMPLES / name)]
    done = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{name} exited with {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return done.stdout


def recorded_exec_id(stdout: str) -> str:
    match = re.search(r"^started execution (\S+)$", stdout, re.MULTILINE)
    assert match, stdout
    return match.group(1)


EXPECTED_CALLS = ["fetch_sources", "analyse", "analyse_2", "analyse_3", "analyse_4", "summarise"]


def test_quickstart(ray_session, tmp_path):
    from kitaru import KitaruClient
    from kitaru.testing import isolated_home

    home = tmp_path / "home"
    stdout = run_example("quickstart.py", gcs_address=ray_session, cwd=EXAMPLES.parent, env={"KITARU_HOME": str(home)})

    exec_id = recorded_exec_id(stdout)
    assert f"KITARU_HOME: {home}" in stdout
    assert f"database:    sqlite:///{home / 'kitaru.db'}" in stdout
    assert f"storage:     {(home / 'storage').as_uri()}" in stdout
    assert "topic: durable agents" in stdout
    assert "sources: ['durable-execution', 'ray-tasks', 'ai-agents', 'human-in-the-loop']" in stdout
    assert f"execution {exec_id}: completed" in stdout
    for invocation_id in EXPECTED_CALLS:
        assert re.search(rf"^  {invocation_id} +completed +attempts=1 ", stdout, re.MULTILINE), invocation_id
    assert "[step fetch_sources] fetching up to 4 sources about 'durable agents'" in stdout
    assert f'KitaruClient().executions.get("{exec_id}")' in stdout

    with isolated_home(home):
        client = KitaruClient()
        execution = client.executions.get(exec_id)
        assert execution.flow == "research"
        assert execution.status == "completed"
        assert execution.inputs == {"topic": "durable agents", "limit": 4}
        report = execution.result()
        assert report["sources"] == ["durable-execution", "ray-tasks", "ai-agents", "human-in-the-loop"]
        assert report["total_words"] == sum(call.metadata["words"] for call in execution.checkpoints if call.name == "analyse")
        assert f"total_words: {report['total_words']}" in stdout
        assert [c.invocation_id for c in execution.checkpoints] == EXPECTED_CALLS
        assert {c.status for c in execution.checkpoints} == {"completed"}
        by_id = {c.invocation_id: c for c in execution.checkpoints}
        analyses = [by_id[i].call_id for i in EXPECTED_CALLS[1:5]]
        assert sorted(by_id["summarise"].parent_call_ids) == sorted(analyses)
        assert by_id["analyse_3"].output.load()["title"] == "ai-agents"
        logs = client.executions.logs(exec_id, checkpoint="fetch_sources")
        assert [entry.message for entry in logs] == ["fetching up to 4 sources about 'durable agents'"]


def test_quickstart_again_is_served_from_the_cache_and_defaults_to_home_dot_kitaru(ray_session, tmp_path):
    """A fresh clone has no KITARU_HOME: the data goes to ~/.kitaru, and a second run reuses every call."""
    from kitaru import KitaruClient
    from kitaru.testing import isolated_home

    user_home = tmp_path / "user"
    user_home.mkdir()
    env = {"HOME": str(user_home), "KITARU_HOME": None}
    # The working directory has no .kitaru/ above it, so ~/.kitaru is the home.
    first = run_example("quickstart.py", gcs_address=ray_session, cwd=tmp_path, env=env)
    second = run_example("quickstart.py", gcs_address=ray_session, cwd=tmp_path, env=env)

    home = user_home / ".kitaru"
    assert f"KITARU_HOME: {home}" in first
    assert (home / "kitaru.db").is_file()
    for invocation_id in EXPECTED_CALLS:
        assert re.search(rf"^  {invocation_id} +cached +attempts=0 ", second, re.MULTILINE), invocation_id
    with isolated_home(home):
        executions = KitaruClient().executions.list()
        assert [e.exec_id for e in executions] == [recorded_exec_id(second), recorded_exec_id(first)]
        assert all(e.status == "completed" for e in executions)
        assert executions[0].result() == executions[1].result()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "human_approval.py",
            ["waiting for 'review'", "refused: input for wait 'review' is invalid", "result: published: Durable"],
        ),
        (
            "replay_with_override.py",
            [
                "original: published a draft built on notes on Ray",
                "replay:   published a draft built on edited notes",
                "research     overridden",
                "write_draft  completed",
            ],
        ),
    ],
)
def test_feature_examples(ray_session, tmp_path, name, expected):
    stdout = run_example(
        name, gcs_address=ray_session, cwd=EXAMPLES.parent, env={"KITARU_HOME": str(tmp_path / "home"), "KITARU_NO_PROMPT": "1"}
    )
    for line in expected:
        assert line in stdout, stdout
