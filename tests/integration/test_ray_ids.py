"""Every attempt records where it ran on Ray (task id, node id, worker pid); the execution its Ray job id.

The CLI (``executions get``, ``-o json``) and the UI show them, the UI linking each
attempt to its task page in the Ray dashboard when the execution has one.
"""

from __future__ import annotations

import json
import os

from typer.testing import CliRunner

from kitaru import KitaruClient, checkpoint, flow


@checkpoint
def remote_step(x: int) -> int:
    return x + 1


@checkpoint(runtime="inline")
def inline_step(x: int) -> int:
    return x * 2


@flow
def two_steps(x: int) -> int:
    return inline_step(remote_step(x))


def test_attempts_record_their_ray_task_node_and_worker(ray_home):
    import ray

    handle = two_steps.run(1)
    assert handle.wait(timeout=60) == 4
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.metadata["ray_job_id"] == ray.get_runtime_context().get_job_id()
    by_name = {call.name: call.attempts[-1] for call in execution.checkpoints}
    remote, inline = by_name["remote_step"], by_name["inline_step"]
    assert remote.ray_task_id and remote.ray_node_id == ray.get_runtime_context().get_node_id()
    assert remote.worker_pid and remote.worker_pid != os.getpid()
    assert inline.ray_task_id is None and inline.worker_pid == os.getpid()

    from kitaru.cli import app

    shown = CliRunner().invoke(app, ["executions", "get", handle.exec_id, "-o", "json"])
    assert shown.exit_code == 0, shown.output
    start = shown.stdout.index("{")
    record = json.JSONDecoder().raw_decode(shown.stdout[start:])[0]
    attempts = {c["name"]: c["attempts"][-1] for c in record["checkpoints"]}
    assert attempts["remote_step"]["ray_task_id"] == remote.ray_task_id
    assert attempts["remote_step"]["worker_pid"] == remote.worker_pid
    text = CliRunner().invoke(app, ["executions", "get", handle.exec_id])
    assert remote.ray_task_id in text.stdout and str(remote.worker_pid) in text.stdout


def test_the_ui_links_an_attempt_to_its_ray_task_page(ray_session, kitaru_home):
    from fastapi.testclient import TestClient
    from kitaru_server import service_for
    from kitaru_server.api import create_app

    from kitaru.config import resolve_settings

    handle = two_steps.run(2)
    assert handle.wait(timeout=60) == 6
    service = service_for(resolve_settings().database_url)
    job_page = "http://127.0.0.1:8265/#/jobs/01000000"
    service.update_execution_metadata(handle.exec_id, {"dashboard_url": job_page})
    task_id = KitaruClient().executions.get(handle.exec_id).checkpoints[0].attempts[-1].ray_task_id
    with TestClient(create_app(service=service, auth=False), base_url="http://127.0.0.1") as client:
        html = client.get(f"/ui/fragments/executions/{handle.exec_id}/calls/remote_step").json()["html"]
    assert f'href="{job_page}/tasks/{task_id}"' in html
