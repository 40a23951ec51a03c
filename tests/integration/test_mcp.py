"""The MCP server, driven by the SDK's own client over stdio (and streamable HTTP).

The server runs as ``python -m kitaru.mcp`` (and ``kitaru mcp``) in a subprocess with
an isolated ``KITARU_HOME``; its detached drivers join the shared test Ray session
through ``KITARU_RAY_ADDRESS``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the MCP server needs the mcp extra (make test installs it)")

import anyio  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters, stdio_client  # noqa: E402

TESTS = Path(__file__).parent
TOOLS = {
    "executions_list",
    "executions_get",
    "executions_latest",
    "executions_logs",
    "executions_events",
    "run",
    "executions_input",
    "executions_abort_wait",
    "executions_resume",
    "executions_resume_all",
    "executions_retry",
    "executions_cancel",
    "executions_replay",
    "artifacts_list",
    "artifacts_get",
    "stacks_list",
    "stacks_get",
    "deployments_list",
    "deployments_invoke",
    "status",
    "executions_statistics",
    "executions_diff",
}
TOOLS |= {f"kitaru_{name}" for name in TOOLS - {"run"}} | {"kitaru_executions_run"}  # Kitaru 0.21's names too


def server_env(home: Path, ray_address: str | None = None) -> dict[str, str]:
    """The server's environment: this one without KITARU_* settings (but the Kitaru server's URL and key, when a test
    runs remote), plus an isolated home and this directory on the path."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("KITARU_") or key in ("KITARU_SERVER_URL", "KITARU_API_KEY")
    }
    env.update(
        KITARU_HOME=str(home),
        RAY_AUTH_MODE="disabled",
        KITARU_NO_PROMPT="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
    )
    if ray_address:
        env["KITARU_RAY_ADDRESS"] = ray_address
    return env


@contextlib.asynccontextmanager
async def stdio_session(env: dict[str, str], errlog: Path) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=["-m", "kitaru.mcp"], env=env, cwd=str(TESTS))
    with errlog.open("a") as log:
        async with Client(stdio_client(params, errlog=log)) as client:
            yield client


async def call(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, f"{tool}({arguments}) failed: {result.content[0].text}"
    return result.structured_content


async def call_error(client: Client, tool: str, **arguments: Any) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error, f"{tool}({arguments}) did not fail: {result.structured_content}"
    return result.content[0].text


async def until(probe: Callable[[], Awaitable[Any]], *, timeout: float = 90.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        await anyio.sleep(0.2)


def test_every_tool_has_a_description_and_an_input_schema(tmp_path):
    async def scenario() -> None:
        async with stdio_session(server_env(tmp_path / "home"), tmp_path / "server.log") as client:
            tools = (await client.list_tools()).tools
            assert {tool.name for tool in tools} == TOOLS
            for tool in tools:
                assert tool.description and len(tool.description) > 20, tool.name
                assert tool.input_schema["type"] == "object", tool.name
                for name, prop in tool.input_schema.get("properties", {}).items():
                    assert prop.get("description"), f"{tool.name}.{name} has no description"
            status = await call(client, "status")
            assert status["mode"] == "embedded" and status["reachable"] and status["total"] == 0

    anyio.run(scenario)


def test_bad_arguments_are_tool_errors_and_the_server_keeps_serving(tmp_path):
    async def scenario() -> None:
        async with stdio_session(server_env(tmp_path / "home"), tmp_path / "server.log") as client:
            assert "execution 'nope' not found" in await call_error(client, "executions_get", exec_id="nope")
            assert "limit" in await call_error(client, "executions_list", limit="many")
            assert "exec_id" in await call_error(client, "executions_logs")
            assert "Unknown tool" in await call_error(client, "executions_frobnicate")
            assert "artifact_id, or exec_id and name" in await call_error(client, "artifacts_get", exec_id="nope")
            assert "not found" in await call_error(client, "executions_replay", exec_id="nope", at="draft")
            assert "no_such_module" in await call_error(client, "run", target="no_such_module:flow")  # the driver's own error
            assert "not MODULE:FLOW" in await call_error(client, "run", target="no-colon")
            assert "stack 'missing' not found" in await call_error(client, "stacks_get", name="missing")
            assert (await call(client, "executions_list"))["count"] == 0  # still serving

    anyio.run(scenario)


@pytest.mark.ray
def test_run_wait_input_and_replay_through_mcp(tmp_path, ray_session, ray_home):
    """Embedded, and remote (the MCP server and its drivers reach a Kitaru server by KITARU_SERVER_URL)."""
    from kitaru import KitaruClient

    service = KitaruClient().service  # this process reads the same executions, to see when the driver has suspended

    async def scenario() -> None:
        async with stdio_session(server_env(ray_home, ray_session), tmp_path / "server.log") as client:
            assert (await call(client, "status"))["mode"] == ("remote" if os.environ.get("KITARU_SERVER_URL") else "embedded")
            started = await call(client, "run", target="mcp_flows:review", inputs={"topic": "ray", "timeout": 1.0})
            exec_id = started["exec_id"]
            assert started["driver"]["pid"] > 0 and started["execution"]["flow"] == "review"

            async def suspended() -> bool:
                record = service.get_execution(exec_id, with_calls=False)
                return record["status"] == "waiting" and record["driver_id"] is None

            await until(suspended, what="the driver suspending on its wait")
            execution = await call(client, "executions_get", exec_id=exec_id)
            assert execution["status"] == "waiting"
            assert [(w["name"], w["question"], w["schema"]) for w in execution["pending_waits"]] == [
                ("approve", "Publish the draft?", {"type": "boolean"})
            ]
            listed = await call(client, "executions_list", status="waiting")
            assert [e["exec_id"] for e in listed["executions"]] == [exec_id]
            assert (await call(client, "executions_latest", flow="review"))["exec_id"] == exec_id

            assert "approve" in await call_error(client, "executions_input", exec_id=exec_id, value="maybe")  # fails the schema
            answered = await call(client, "executions_input", exec_id=exec_id, value=True, wait_seconds=120)
            assert answered["wait"] == "approve" and answered["resumed"] and answered["driver"]["pid"] > 0
            done = answered["execution"]
            assert done["status"] == "completed", done
            assert done["result"] == "published: draft about ray"
            assert [c["name"] for c in done["checkpoints"]] == ["draft", "publish"] and done["pending_waits"] == []

            logs = await call(client, "executions_logs", exec_id=exec_id, source="step")
            assert any("drafting ray" in entry["message"] for entry in logs["entries"])
            artifacts = (await call(client, "artifacts_list", exec_id=exec_id, kind="output"))["artifacts"]
            draft_output = next(a for a in artifacts if a["invocation_id"] == done["checkpoints"][0]["invocation_id"])
            assert (await call(client, "artifacts_get", artifact_id=draft_output["artifact_id"]))["value"] == "draft about ray"

            replay = await call(client, "executions_replay", exec_id=exec_id, at="publish", wait_seconds=120)
            replayed = replay["execution"]
            assert replay["exec_id"] != exec_id and replayed["original_exec_id"] == exec_id
            assert replayed["status"] == "completed" and replayed["result"] == "published: draft about ray"
            assert [c["status"] for c in replayed["checkpoints"]] == ["replayed", "completed"]
            assert "already completed" in await call_error(client, "executions_resume", exec_id=exec_id)

    anyio.run(scenario)


def test_kitaru_mcp_serves_streamable_http(tmp_path):
    port = _free_port()
    command = [sys.executable, "-c", "from kitaru.cli import main; main()", "mcp", "--transport", "http", "--port", str(port)]
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(command, env=server_env(tmp_path / "home"), stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_port(port, process, tmp_path / "server.log")

        async def scenario() -> None:
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                assert {tool.name for tool in (await client.list_tools()).tools} == TOOLS
                assert (await call(client, "status"))["reachable"]
                assert "not found" in await call_error(client, "executions_get", exec_id="nope")

        anyio.run(scenario)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"kitaru mcp exited with {process.returncode}: {log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise AssertionError(f"kitaru mcp did not listen on port {port} within {timeout} s: {log.read_text()}")


@pytest.mark.ray
def test_cancel_resume_abort_wait_and_retry_through_mcp(tmp_path, ray_session, kitaru_home):
    marker = tmp_path / "marker"

    async def scenario() -> None:
        async with stdio_session(server_env(kitaru_home, ray_session), tmp_path / "server.log") as client:
            exec_id = (await call(client, "run", target="mcp_flows:review", inputs={"topic": "mcp"}, wait_seconds=60))["exec_id"]
            assert (await call(client, "executions_get", exec_id=exec_id))["status"] == "waiting"  # its driver polls for input
            assert (await call(client, "executions_cancel", exec_id=exec_id))["status"] == "cancelled"
            resumed = await call(client, "executions_resume", exec_id=exec_id, wait_seconds=60)
            assert resumed["driver"]["pid"] > 0 and [w["name"] for w in resumed["execution"]["pending_waits"]] == ["approve"]
            aborted = await call(client, "executions_abort_wait", exec_id=exec_id, wait_seconds=60)
            assert aborted["wait"] == "approve" and not aborted["resumed"]  # the live driver took the abort itself
            assert aborted["execution"]["status"] == "cancelled"

            started = await call(client, "run", target="mcp_flows:fragile", inputs={"marker": str(marker)}, wait_seconds=60)
            failed = started["execution"]
            assert failed["status"] == "failed" and "is missing" in failed["failure"]["message"]
            assert "not failed" in await call_error(client, "executions_retry", exec_id=exec_id)
            marker.touch()
            retried = (await call(client, "executions_retry", exec_id=failed["exec_id"], wait_seconds=60))["execution"]
            assert retried["status"] == "completed" and retried["result"] == "ok"

    anyio.run(scenario)
