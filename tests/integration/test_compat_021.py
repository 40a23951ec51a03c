"""Kitaru 0.21's documented snippets run as written (docs/book: execution management, error handling,
artifacts, wait and input, replay, llm calls, MCP), and its unsupported names fail with their replacement."""

from __future__ import annotations

import pytest
from compat_flows import chat_flow, failing_flow, handle_flow, report_flow

import kitaru
import kitaru.testing
from kitaru import ExecutionStatus, FailureOrigin, KitaruClient
from kitaru.testing import wait_for


def test_execution_management_snippets(ray_home):
    handle = report_flow.run("durable agents")
    assert handle.wait(timeout=60) == "Report: Research notes about durable agents."
    exec_id = handle.exec_id
    client = kitaru.KitaruClient()
    execution = client.executions.get(exec_id)
    assert execution.flow_name == "report_flow" and execution.status is ExecutionStatus.COMPLETED
    assert execution.status.is_finished and execution.pending_wait is None and execution.failure is None
    assert [c.name for c in execution.list_checkpoints()] == ["research", "write_report"]
    assert {a.name for a in execution.artifacts} == {"research", "research_context", "write_report"}
    assert execution.refresh().exec_id == exec_id
    assert client.executions.latest(flow="report_flow").exec_id == exec_id
    assert [e.exec_id for e in client.executions.list(flow="report_flow", status="completed", limit=10)] == [exec_id]

    stats = client.executions.statistics()
    assert stats.groups[0].execution_count == 1
    by_status = client.executions.statistics(group_by=["status"], metrics=["duration_avg:duration:avg"])
    assert [(g.keys["status"], g.execution_count) for g in by_status.groups] == [("completed", 1)]
    assert by_status.groups[0].metrics["duration_avg"] >= 0

    entries = client.executions.logs(exec_id, checkpoint="research", limit=100)
    assert all(entry.checkpoint_name == "research" for entry in entries)

    saved = client.artifacts.list(exec_id, name="research_context")
    assert [(a.save_type, a.producing_call, a.direction) for a in saved] == [("context", "research", "output")]
    assert [a.name for a in client.artifacts.list(exec_id, producing_call="write_report")] == ["write_report"]
    assert client.artifacts.get(saved[0].artifact_id).load()["topic"] == "durable agents"

    [event] = client.executions.events(exec_id, kinds=["agent.thought"])
    assert (event.kind, event.checkpoint_name, event.payload["data"], event.payload["message"]) == (
        "agent.thought",
        "research",
        {"topic": "durable agents"},
        "researched",
    )
    assert {e.kind for e in client.executions.events(exec_id, checkpoint="write_report")} <= {
        "checkpoint.started",
        "checkpoint.returned",
    }


def test_error_handling_snippets(ray_home):
    handle = failing_flow.run(3)
    try:
        handle.wait(timeout=60)
    except kitaru.KitaruUserCodeError as exc:
        assert (exc.exec_id, exc.status, exc.failure_origin) == (handle.exec_id, ExecutionStatus.FAILED, FailureOrigin.USER_CODE)
    else:
        pytest.fail("the failed execution did not raise")
    execution = kitaru.KitaruClient().executions.get(handle.exec_id)
    assert (execution.failure.origin, execution.failure.exception_type) == (FailureOrigin.USER_CODE, "ValueError")
    assert "bad value 3" in execution.failure.message
    [call] = execution.checkpoints
    assert call.failure.type == "ValueError"
    for attempt in call.attempts:
        assert attempt.attempt_id == f"{call.call_id}:1" and attempt.failure.exception_type == "ValueError"
    with pytest.raises(ValueError):  # 0.21's usage errors are ValueErrors
        KitaruClient().executions.input(handle.exec_id, wait=None, value=1)


def test_wait_timeout_error_fields(ray_home):
    handle = handle_flow.run("slow")
    with pytest.raises(TimeoutError) as caught:  # 0.21's KitaruTimeoutError is a TimeoutError
        handle.wait(timeout=0.01)
    error = caught.value
    assert isinstance(error, kitaru.KitaruTimeoutError) and error.exec_id == handle.exec_id
    assert error.timeout_seconds == 0.01 and error.elapsed_seconds >= 0.01
    assert isinstance(error.last_status, ExecutionStatus)


def test_value_mode_load_names_the_fix(ray_home):
    handle = handle_flow.run("values")
    with pytest.raises(kitaru.KitaruExecutionError) as caught:
        handle.wait(timeout=60)
    assert "drop .load()" in str(caught.value) and 'checkpoint_returns="handle"' in str(caught.value)


def test_handle_mode_runs_the_021_artifacts_guide_and_input_resumes(ray_home):
    kitaru.configure(checkpoint_returns="handle")
    handle = handle_flow.run("handles")
    client = KitaruClient()
    wait_for(lambda: client.executions.get(handle.exec_id).pending_wait, timeout=60)
    execution = client.executions.get(handle.exec_id)
    assert execution.pending_wait.name == "approve_summary" and "Research notes about handles" in execution.pending_wait.question
    assert execution.pending_wait.wait_id == f"{handle.exec_id}:approve_summary"
    wait_for(lambda: client.service.get_execution(handle.exec_id, with_calls=False)["driver_id"] is None, timeout=30)
    answered = client.executions.input(handle.exec_id, wait="approve_summary", value=True)
    assert answered.exec_id == handle.exec_id and answered.pending_wait is None
    assert answered.wait(timeout=60) == "Report: Research notes about handles."


def test_replay_submission_snippet(ray_home):
    original = report_flow.run("replays")
    original.wait(timeout=60)
    client = KitaruClient()
    submission = client.executions.replay(original.exec_id, at="write_report")
    latest = client.executions.get(submission.results[0].replay_exec_id)
    assert latest.original_exec_id == original.exec_id and submission.exec_id == latest.exec_id
    assert submission.wait(timeout=60) == "Report: Research notes about replays."
    assert [(r.status, r.original_exec_id) for r in submission.results] == [("completed", original.exec_id)]
    waited = report_flow.replay(
        original.exec_id, at="write_report", invocation_overrides={"research": {"output": "edited"}}, wait=True
    )
    assert waited.results[0].status == "completed" and waited.get() == "Report: edited"

    comparison = kitaru.diff(original.exec_id, waited.exec_id)
    [(compared_id, calls)] = comparison.compared
    assert compared_id == waited.exec_id
    by_name = {c.name: c for c in calls}
    assert not by_name["research"].status_match or by_name["research"].output_changed
    assert by_name["research"].output_changed and by_name["write_report"].output_changed
    assert {e for e, _ in kitaru.diff(original.exec_id).compared} == {submission.exec_id, waited.exec_id}


def test_llm_with_a_list_of_chat_messages(ray_home):
    with kitaru.testing.FakeModelServer(reply="Durable replay.") as server:
        client = KitaruClient()
        client.secrets.set("creds", OPENAI_API_KEY="sk-from-secret")
        client.models.register("fast", model="openai/gpt-4o-mini", secret="creds", base_url=server.openai_base_url)
        assert chat_flow.run().wait(timeout=60) == "Durable replay."
        [request] = server.requests
    assert [m["role"] for m in request["body"]["messages"]] == ["system", "user", "assistant", "user"]
    [call] = client.executions.latest(flow="chat_flow").checkpoints
    assert call.invocation_id == "headline_refine" and call.checkpoint_type == "llm_call"
    with pytest.raises(kitaru.KitaruUsageError, match="list of"):
        kitaru.llm([{"role": "robot", "content": "hi"}])


def test_image_settings_are_recorded_on_the_execution(ray_home):
    kitaru.configure(image=kitaru.ImageSettings(base_image="python:3.11-slim", requirements=["httpx"]))
    handle = report_flow.run("images")
    handle.wait(timeout=60)
    record = KitaruClient().service.get_execution(handle.exec_id, with_calls=False)
    assert record["settings"]["image"] == {"base_image": "python:3.11-slim", "requirements": ["httpx"]}
    before = len(KitaruClient().executions.list())
    with pytest.raises(kitaru.KitaruUsageError, match="cannot use image 'python:3.12'"):
        report_flow.run("images", image="python:3.12")  # an explicit image needs a container backend
    assert len(KitaruClient().executions.list()) == before


def test_unsupported_021_names_name_their_replacement():
    with pytest.raises(kitaru.KitaruFeatureNotAvailableError, match=r"KitaruClient\(\)\.stacks"):
        from kitaru import create_stack  # noqa: F401
    with pytest.raises(kitaru.KitaruFeatureNotAvailableError, match="kitaru.diff"):
        kitaru.diff_matrix  # noqa: B018
    with pytest.raises(AttributeError):
        kitaru.no_such_name  # noqa: B018
    assert isinstance(kitaru.KitaruUsageError("x"), ValueError)
    assert isinstance(kitaru.KitaruFeatureNotAvailableError("x"), NotImplementedError)
    assert kitaru.KitaruExecutionError("m", failure_origin=FailureOrigin.BACKEND).origin is FailureOrigin.BACKEND


def test_configuration_of_checkpoint_returns(tmp_path, monkeypatch):
    from kitaru.config import resolve_settings

    (tmp_path / "pyproject.toml").write_text('[tool.kitaru]\ncheckpoint_returns = "handle"\nllm_estimated_costs = "off"\n')
    settings = resolve_settings(tmp_path)
    assert (settings.checkpoint_returns, settings.llm_cost) == ("handle", False)
    monkeypatch.setenv("KITARU_CHECKPOINT_RETURNS", "value")
    assert resolve_settings(tmp_path).checkpoint_returns == "value"
    with pytest.raises(kitaru.KitaruUsageError, match="'value' or 'handle'"):
        kitaru.configure(checkpoint_returns="lazy")


def test_mcp_registers_the_021_tool_names():
    pytest.importorskip("mcp")
    import asyncio

    from kitaru.mcp.server import build_server

    tools = {tool.name for tool in asyncio.run(build_server().list_tools())}
    for name in (
        "kitaru_executions_list",
        "kitaru_executions_get",
        "kitaru_executions_input",
        "kitaru_executions_replay",
        "kitaru_executions_run",
        "kitaru_executions_statistics",
        "kitaru_executions_diff",
        "kitaru_artifacts_list",
        "kitaru_status",
        "executions_list",
        "run",
    ):
        assert name in tools, name
