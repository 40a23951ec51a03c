"""The ``kitaru`` CLI: every command, ``-o json`` shapes, exit codes (0/1/2), one-line errors, no Ray for queries,
and detached drivers (``python -m kitaru.runtime``) that outlive the command."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kitaru import KitaruClient
from kitaru.cli import app
from kitaru.client import Execution, Stack
from kitaru.testing import wait_for

FLOWS = """
import os
import re
import time

import kitaru
from kitaru import checkpoint, flow


@checkpoint
def double(x):
    print(f"doubling {x}")
    return 2 * x


@checkpoint
def fragile(x, marker):
    if not os.path.exists(marker):
        raise ValueError(f"no marker for {x}")
    return x + 1


@checkpoint
def slow(seconds):
    time.sleep(seconds)
    return seconds


@flow
def pipeline(x=1):
    return double(x) + 1


@flow
def needs_marker(x, marker):
    return fragile(double(x), marker)


@flow
def approval(topic="ray", timeout=0.2):
    n = double(len(topic))
    answer = kitaru.wait(schema=str, name="review", question="ok?", timeout=timeout)
    return f"{n}:{answer}"


@flow
def counting(timeout=0.2):
    return kitaru.wait(schema=int, name="count", timeout=timeout) + 1


@flow
def sleepy(seconds=30.0):
    return slow(seconds)


if __name__ == "__main__":
    raise SystemExit("the CLI must not run the script's main block")
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A directory with a flows script, as the working directory; no server configured (tests that want one, such as
    the remote ``ray_home``, request this fixture first)."""
    for name in ("KITARU_SERVER_URL", "KITARU_API_KEY", "KITARU_STACK", "KITARU_STORAGE_URL", "KITARU_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    directory = tmp_path / "project"
    directory.mkdir()
    (directory / "cli_flows.py").write_text(FLOWS)
    monkeypatch.chdir(directory)
    return directory


@pytest.fixture
def detached_env(monkeypatch, ray_session):
    """Detached drivers join the shared Ray session and hold a short lease."""
    monkeypatch.setenv("KITARU_RAY_ADDRESS", ray_session)
    monkeypatch.setenv("KITARU_LEASE_SECONDS", "1")


def kitaru(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    # The shared test Ray session copies worker output ("(double pid=...) ...") to this process's stdout and stderr.
    result.stdout_bytes = _without_ray_lines(result.stdout_bytes)
    if result.stderr_bytes is not None:
        result.stderr_bytes = _without_ray_lines(result.stderr_bytes)
    assert result.exit_code == code, (
        f"kitaru {' '.join(args)} -> {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    if code:
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr  # one line
    return result


_RAY_LINE = re.compile(rb"^(\x1b\[[0-9;]*m)?\(|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\t|.* pid=")


def _without_ray_lines(output: bytes) -> bytes:
    """Drop what Ray's log monitor prints (worker lines "(name pid=...)", its own timestamped warnings)."""
    return b"".join(line for line in output.splitlines(keepends=True) if not _RAY_LINE.match(line))


def as_json(*args: str):
    return json.loads(kitaru(*args, "-o", "json").stdout)


def public_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.repr and not f.name.startswith("_")}


def seed(count: int, **overrides) -> list[str]:
    """Finished executions written through the service layer (no flow runs)."""
    from kitaru_server import service_for

    from kitaru.config import resolve_settings

    settings = resolve_settings()
    service = service_for(settings.database_url)
    ids = []
    for i in range(count):
        record = {
            "exec_id": f"seed-{i}",
            "flow": ("alpha", "beta")[i % 2],
            "flow_ref": "m:f",
            "status": ("completed", "failed")[i % 2],
            "created_at": time.time() + i,
            "inputs": {"preview": {"i": i}},
            "settings": settings.for_workers(),
            **overrides,
        }
        service.create_execution(record)
        ids.append(record["exec_id"])
    return ids


# --- no Ray: project, configuration, queries ------------------------------------------------------


def test_help_lists_every_command_group(kitaru_home, project):
    out = kitaru("--help").stdout
    for command in ("init", "login", "logout", "status", "info", "run", "executions", "stack", "model", "secrets"):
        assert command in out
    assert "replay" in kitaru("executions", "--help").stdout
    kitaru("executions", "nope", code=2)
    kitaru("executions", "list", "--limit", "0", code=2)
    kitaru("executions", "list", "-o", "yaml", code=2)


def test_init_is_idempotent(kitaru_home, project):
    first = as_json("init")
    assert first["created"] is True and Path(first["config"]).is_file()
    (project / ".kitaru" / "config.yaml").write_text("cache: false\n")
    assert as_json("init")["created"] is False
    assert (project / ".kitaru" / "config.yaml").read_text() == "cache: false\n"  # kept
    assert "!config.yaml" in (project / ".kitaru" / ".gitignore").read_text()
    settings = as_json("info")["settings"]
    assert settings["cache"] == {"value": False, "source": str(project / ".kitaru" / "config.yaml")}
    assert settings["home"]["source"] == "configure()"  # isolated_home; the environment and project come below it


def test_login_logout_and_the_user_config_source(kitaru_home, project, monkeypatch):
    saved = as_json("login", "http://127.0.0.1:9/", "--api-key", "secret-key-1234", "--no-verify")
    path = Path(saved["config"])
    assert path == kitaru_home / "user-config.yaml" and stat.S_IMODE(path.stat().st_mode) == 0o600
    info = as_json("info")
    assert info["settings"]["server_url"] == {"value": "http://127.0.0.1:9", "source": f"user config ({path})"}
    assert info["settings"]["api_key"]["value"] == "****1234"  # never printed in full
    monkeypatch.setenv("KITARU_SERVER_URL", "http://127.0.0.1:10")
    assert as_json("info")["settings"]["server_url"]["source"] == "environment KITARU_SERVER_URL"  # the environment wins
    monkeypatch.delenv("KITARU_SERVER_URL")
    assert as_json("logout")["server_url"] == "http://127.0.0.1:9"
    assert as_json("info")["settings"]["server_url"]["value"] is None
    kitaru("login", "127.0.0.1:8383", "--no-verify", code=2)


def test_status_counts_executions_by_status(kitaru_home, project):
    seed(5)
    status = as_json("status")
    assert status["mode"] == "embedded" and status["reachable"] is True
    assert status["counts"] == {"completed": 3, "failed": 2} and status["total"] == 5
    assert "completed" in kitaru("status").stdout


def test_executions_list_and_get_print_the_client_objects(kitaru_home, project):
    seed(6)
    listed = as_json("executions", "list")
    assert len(listed) == 6 and set(listed[0]) == public_fields(Execution)
    assert [e["exec_id"] for e in listed][:2] == ["seed-5", "seed-4"]  # newest first
    assert {e["flow"] for e in as_json("executions", "list", "--flow", "alpha")} == {"alpha"}
    assert {e["status"] for e in as_json("executions", "list", "--status", "failed")} == {"failed"}
    assert len(as_json("executions", "list", "--limit", "2")) == 2
    got = as_json("executions", "get", "seed-1")
    assert set(got) == public_fields(Execution) and got["inputs"] == {"i": 1} and got["checkpoints"] == []
    assert "seed-1" in kitaru("executions", "list").stdout
    error = kitaru("executions", "get", "missing", code=2).stderr
    assert "'missing' not found" in error and "kitaru executions list" in error
    kitaru("executions", "logs", "missing", code=2)
    kitaru("executions", "cancel", "missing", code=2)
    kitaru("executions", "resume", "missing", code=2)
    kitaru("executions", "retry", "seed-0", code=1)  # completed: not failed
    kitaru("executions", "resume", code=2)  # neither an id nor --all


def test_stacks(kitaru_home, project):
    [default] = as_json("stack", "list")
    assert default["name"] == "default" and default["builtin"] and set(default) == public_fields(Stack)
    created = as_json(
        "stack",
        "create",
        "team",
        "--storage-url",
        "shared",
        "--storage-option",
        "secret=abc",
        "--storage-option",
        "region=eu",
        "--registry",
        "ghcr.io/acme",
    )
    assert created["storage_url"] == (project / "shared").as_uri()
    assert created["storage_options"] == {"secret": "****", "region": "eu"}  # secret-looking values masked
    assert as_json("stack", "show", "team")["container_registry"] == "ghcr.io/acme"
    assert as_json("stack", "current")["name"] == "default"
    kitaru("init")
    used = as_json("stack", "use", "team")
    assert used["config"] == str(project / ".kitaru" / "config.yaml") and "stack: team" in Path(used["config"]).read_text()
    storage = as_json("info")["settings"]["storage_url"]
    assert storage == {"value": (project / "shared").as_uri(), "source": "stack 'team'"}  # what a run would use
    current = as_json("stack", "current")
    assert current["name"] == "team" and current["source"] == used["config"]
    assert "* " in kitaru("stack", "list").stdout.split("team")[0].splitlines()[-1]  # marked active
    user = as_json("stack", "use", "default", "--user")
    assert user["config"] == str(kitaru_home / "user-config.yaml")
    for args, message in (
        (("create", "gpu", "--backend", "ray"), "needs the cluster's dashboard address"),
        (("create", "gpu", "--backend", "vertex"), "needs --backend-option project=VALUE"),
        (("create", "gpu", "--backend", "kuberay", "--backend-option", "namespce=x"), "has no option namespce"),
        (("create", "x", "--backend", "mainframe"), "unknown backend"),
        (("use", "ghost"), "kitaru stack list"),
        (("show", "ghost"), "kitaru stack list"),
        (("delete", "default"), "built in"),
        (("create", "default"), "built in"),
    ):
        assert message in kitaru("stack", *args, code=2).stderr
    assert "already exists" in kitaru("stack", "create", "team", code=1).stderr
    assert as_json("stack", "create", "team", "--replace", "--storage-url", "s3://bucket/x")["storage_url"] == "s3://bucket/x"
    assert as_json("stack", "delete", "team")["was_active"] is True
    assert [s["name"] for s in as_json("stack", "list")] == ["default"]


def test_models_and_secrets(kitaru_home, project):
    alias = as_json("model", "register", "fast", "--model", "openai/gpt-5-nano", "--secret", "creds", "--default")
    assert alias == {**alias, "alias": "fast", "model": "openai/gpt-5-nano", "secret": "creds", "default": True}
    assert [a["alias"] for a in as_json("model", "list")] == ["fast"]
    kitaru("model", "register", "bad", "--model", "nope/x", code=2)
    info = as_json("secrets", "set", "creds", "OPENAI_API_KEY=sk-secret-value", "ORG=acme")
    assert info["keys"] == ["OPENAI_API_KEY", "ORG"]
    shown = kitaru("secrets", "show", "creds").stdout + kitaru("secrets", "list", "-o", "json").stdout
    assert "OPENAI_API_KEY" in shown and "sk-secret-value" not in shown
    kitaru("secrets", "set", "creds", "no-equals-sign", code=2)
    kitaru("secrets", "delete", "creds")
    assert "not found" in kitaru("secrets", "show", "creds", code=2).stderr


def test_bad_input_json_is_a_usage_error(kitaru_home, project):
    assert "--input is not valid JSON" in kitaru("run", "cli_flows.py:pipeline", "--input", "{bad", code=2).stderr
    assert "JSON object" in kitaru("run", "cli_flows.py:pipeline", "--input", "[1]", code=2).stderr
    assert "has no attribute" in kitaru("run", "cli_flows.py:missing", code=2).stderr
    assert "not a flow" in kitaru("run", "cli_flows.py:double", code=2).stderr
    assert "does not exist" in kitaru("run", "nowhere.py:flow", code=2).stderr
    assert "cannot be imported" in kitaru("run", "no_such_module:flow", code=2).stderr
    kitaru("run", "no-colon", code=2)
    assert "has no attribute" in kitaru("run", "cli_flows.py:missing", "--detach", code=2).stderr  # the detached driver's error


def test_an_unreachable_server_is_one_line_naming_it(kitaru_home, project, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once closed
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("KITARU_SERVER_URL", url)
    started = time.monotonic()
    error = kitaru("executions", "list", code=1).stderr
    assert time.monotonic() - started < 3 and url in error
    status = json.loads(CliRunner().invoke(app, ["status", "-o", "json"]).stdout)
    assert status["mode"] == "remote" and status["reachable"] is False and url in status["error"]


def test_a_wrong_api_key_is_one_line(kitaru_home, project, monkeypatch):
    pytest.importorskip("fastapi")
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    from kitaru.client._http import close_http_services
    from kitaru.config import resolve_settings

    service = service_for(resolve_settings().database_url)
    key = service.create_api_key("cli", kind="user", admin=True)["key"]
    with serve_in_thread(create_app(service=service, auth=True)) as url:
        try:
            monkeypatch.setenv("KITARU_SERVER_URL", url)
            monkeypatch.setenv("KITARU_API_KEY", "wrong-key")
            assert "refused the API key" in kitaru("executions", "list", code=2).stderr  # a usage error: fix the key
            kitaru("login", url, "--api-key", "wrong-key", code=2)  # verified before it is saved
            monkeypatch.setenv("KITARU_API_KEY", key)
            assert as_json("executions", "list") == []
            assert as_json("status")["reachable"] is True
        finally:
            close_http_services()


def test_the_entry_point_and_query_commands_never_import_ray(kitaru_home, project):
    script = Path(sys.executable).with_name("kitaru")
    done = subprocess.run([str(script), "executions", "get", "nope"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert subprocess.run([sys.executable, "-m", "kitaru.cli", "--help"], capture_output=True, timeout=60).returncode == 0
    check = (
        "import sys\nfrom kitaru.cli import app\ntry:\n    app(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
        "print('RAY' if 'ray' in sys.modules else 'NO-RAY', file=sys.stderr)"
    )
    seed(2)
    for command in (
        ["executions", "list"],
        ["executions", "get", "seed-0"],
        ["executions", "logs", "seed-0"],
        ["status"],
        ["info"],
        ["stack", "list"],
        ["stack", "current"],
        ["model", "list"],
        ["secrets", "list"],
    ):
        done = subprocess.run([sys.executable, "-c", check, *command], capture_output=True, text=True, timeout=60)
        assert done.stderr.strip().endswith("NO-RAY"), (command, done.stderr)


# --- with Ray: running, waits, resume, retry, replay, cancel ----------------------------------------


def test_run_waits_and_prints_the_result(project, ray_home):
    assert kitaru("run", "cli_flows.py:pipeline", "--input", '{"x": 20}').stdout.strip() == "41"
    shown = as_json("run", "cli_flows:pipeline", "--input", '{"x": 3}', "--exec-id", "fixed-id")
    assert shown["result"] == 7 and shown["exec_id"] == "fixed-id" and shown["status"] == "completed"
    assert as_json("run", "cli_flows:pipeline", "--input", '{"x": 3}', "--exec-id", "fixed-id")["result"] == 7  # idempotent
    error = kitaru(
        "run", "cli_flows.py:needs_marker", "--input", json.dumps({"x": 1, "marker": str(project / "m")}), code=1
    ).stderr
    assert "ValueError" in error and "kitaru executions retry" in error
    logs = as_json("executions", "logs", "fixed-id")
    assert [entry["message"] for entry in logs] == ["doubling 3"] and logs[0]["source"] == "step"
    assert as_json("executions", "logs", "fixed-id", "--source", "runner") == []
    assert "doubling 3" in kitaru("executions", "logs", "fixed-id", "--follow", "--checkpoint", "double").stdout
    kitaru("executions", "logs", "fixed-id", "--source", "worker", code=2)


def test_a_run_uses_the_active_stack_storage(project, kitaru_home, ray_session, monkeypatch):
    kitaru("stack", "create", "elsewhere", "--storage-url", str(project / "stack-storage"))
    monkeypatch.setenv("KITARU_STACK", "elsewhere")
    shown = as_json("run", "cli_flows.py:pipeline", "--input", '{"x": 2}')
    assert shown["result"] == 5 and shown["stack"] == "elsewhere"
    assert shown["checkpoints"][0]["artifacts"][0]["uri"].startswith((project / "stack-storage").as_uri())
    monkeypatch.setenv("KITARU_STACK", "ghost")
    assert (
        "stack 'ghost' not found; list the stacks with `kitaru stack list`"
        in kitaru("run", "cli_flows.py:pipeline", code=2).stderr
    )


def test_detached_run_input_and_resume(project, ray_home, detached_env):
    exec_id = kitaru("run", "cli_flows.py:approval", "--detach", "--input", '{"topic": "durable"}').stdout.strip()
    client = KitaruClient()
    wait_for(
        lambda: (
            client.service.get_execution(exec_id, with_calls=False)["driver_id"] is None
            and client.executions.get(exec_id).pending_waits
        ),
        timeout=60,
        message="suspended on its wait",
    )
    answered = as_json("executions", "input", exec_id, "--value", "looks good")  # not JSON, but the wait expects a string
    assert answered["wait"] == "review" and answered["value"] == "looks good" and answered["resumed"] is True
    assert Path(answered["log"]).parent == Path(os.environ["KITARU_HOME"]) / "logs"
    wait_for(lambda: client.executions.get(exec_id).status == "completed", timeout=60, message="completed")
    assert client.executions.get(exec_id).result() == "14:looks good"
    assert "already answered" in kitaru("executions", "input", exec_id, "--wait", "review", "--value", '"again"', code=1).stderr

    other = as_json("run", "cli_flows.py:counting", "--detach")["exec_id"]
    wait_for(
        lambda: (
            client.executions.get(other).pending_waits
            and client.service.get_execution(other, with_calls=False)["driver_id"] is None
        ),
        timeout=60,
        message="suspended",
    )
    assert "--value is not valid JSON" in kitaru("executions", "input", other, "--value", "many", code=2).stderr
    kitaru("executions", "input", other, "--value", '"many"', code=2)  # valid JSON, wrong type for the schema
    assert as_json("executions", "input", other, "--value", "41", "--no-resume")["resumed"] is False
    assert client.executions.get(other).status == "waiting"  # left suspended
    resumed = as_json("executions", "resume", other, "--wait")
    assert resumed["status"] == "completed" and client.executions.get(other).result() == 42


def test_retry_and_replay_in_detached_drivers(project, ray_home, detached_env):
    marker = project / "marker"
    kitaru(
        "run", "cli_flows.py:needs_marker", "--exec-id", "fails", "--input", json.dumps({"x": 2, "marker": str(marker)}), code=1
    )
    marker.write_text("ok")
    retried = as_json("executions", "retry", "fails", "--wait")
    assert retried["status"] == "completed" and [c["status"] for c in retried["checkpoints"]] == ["completed", "completed"]
    assert KitaruClient().executions.get("fails").result() == 5

    replayed = as_json("executions", "replay", "fails", "--at", "fragile", "--override", 'double={"output": 10}', "--wait")
    assert replayed["original_exec_id"] == "fails" and replayed["status"] == "completed"
    assert {c["invocation_id"]: c["status"] for c in replayed["checkpoints"]}["double"] == "overridden"
    assert KitaruClient().executions.get(replayed["exec_id"]).result() == 11
    flow_arg = as_json(
        "executions", "replay", "fails", "--at", "double", "--flow-override", "x=4", "--exec-id", "replay-2", "--wait"
    )
    assert flow_arg["exec_id"] == "replay-2" and KitaruClient().executions.get("replay-2").result() == 9
    assert (
        "matches no call" in kitaru("executions", "replay", "fails", "--at", "nothing", code=2).stderr
    )  # the driver's own error
    assert "must be one of" in kitaru("executions", "replay", "fails", "--at", "double", "--override", "double=5", code=2).stderr
    kitaru("executions", "replay", "missing", "--at", "double", code=2)


def test_cancel_and_resume_all_after_a_killed_driver(project, ray_home, detached_env):
    client = KitaruClient()
    started = as_json("run", "cli_flows.py:sleepy", "--detach", "--input", '{"seconds": 60}')
    exec_id = started["exec_id"]
    wait_for(
        lambda: [c for c in client.executions.get(exec_id).checkpoints if c.status == "running"], timeout=60, message="running"
    )
    cancelled = as_json("executions", "cancel", exec_id)
    assert cancelled["status"] == "cancelled"
    kitaru("executions", "cancel", exec_id, code=1)  # already cancelled

    victim = as_json("run", "cli_flows.py:sleepy", "--detach", "--input", '{"seconds": 1.5}')
    wait_for(lambda: client.executions.get(victim["exec_id"]).checkpoints, timeout=60, message="a call started")
    os.kill(victim["pid"], signal.SIGKILL)  # the detached driver dies; its lease lapses after 1 s
    wait_for(lambda: client.executions.get(victim["exec_id"]).status == "interrupted", timeout=30, message="interrupted")
    resumed = as_json("executions", "resume", "--all")
    assert resumed["exec_ids"] == [victim["exec_id"]] and Path(resumed["log"]).is_file()
    wait_for(lambda: client.executions.get(victim["exec_id"]).status == "completed", timeout=60, message="completed")
    assert as_json("executions", "resume", "--all")["exec_ids"] == []


def test_a_losing_concurrent_resume_says_another_driver_took_it(project, kitaru_home, detached_env):
    client = KitaruClient()
    exec_id = as_json("run", "cli_flows.py:sleepy", "--input", '{"seconds": 20}', "--detach")["exec_id"]
    wait_for(lambda: client.executions.get(exec_id).checkpoints, timeout=60, message="the slow call started")
    kitaru("executions", "cancel", exec_id)
    command = [sys.executable, "-m", "kitaru.cli", "executions", "resume", exec_id]
    racers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        outcomes = sorted((racer.wait(timeout=180), *racer.communicate()) for racer in racers)
        (won, won_out, _), (lost, lost_out, lost_err) = outcomes
        assert (won, lost) == (0, 1), outcomes
        assert won_out.startswith(f"resumed {exec_id}")
        assert lost_err.startswith(f"error: another driver took execution {exec_id} first") and lost_err.count("\n") == 1
        assert "resumed" not in lost_out + lost_err
    finally:
        kitaru("executions", "cancel", exec_id)  # the winner's driver stops here
