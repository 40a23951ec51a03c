"""The one launch path: a client's drivers record where the client reads, stacks pick their backend,
and a spec a backend cannot run fails before anything starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from kitaru import KitaruClient, checkpoint, flow
from kitaru.errors import KitaruUsageError, KitaruUserCodeError


@checkpoint
def step(marker: str) -> str:
    if not Path(marker).exists():
        raise RuntimeError("not fixed yet")
    return "fixed"


@flow
def fragile(marker: str) -> str:
    return step(marker)


@flow(image="registry.example/agents:1")
def pictured() -> str:
    return "ran here"


@checkpoint
def echo(value: str) -> str:
    return value


@flow
def say(value: str) -> str:
    return echo(value)


@pytest.mark.ray
def test_a_client_acts_on_its_own_server_not_the_configured_one(ray_session, kitaru_home, tmp_path, monkeypatch):
    """``KitaruClient(server_url=X, api_key=K)`` retries and replays on X, while this process is configured embedded."""
    from kitaru_server import service_for
    from kitaru_server.api import create_app
    from kitaru_server.testing import serve_in_thread

    other = service_for(f"sqlite:///{tmp_path / 'other.db'}")
    key = other.create_api_key("tests", kind="service_account", admin=True)["key"]
    marker = tmp_path / "fixed"
    with serve_in_thread(create_app(service=other, auth=True)) as url:
        monkeypatch.setenv("KITARU_SERVER_URL", url)
        monkeypatch.setenv("KITARU_API_KEY", key)
        failed = fragile.run(str(marker))
        with pytest.raises(KitaruUserCodeError):
            failed.wait(timeout=60)
        monkeypatch.delenv("KITARU_SERVER_URL")
        monkeypatch.delenv("KITARU_API_KEY")

        client = KitaruClient(server_url=url, api_key=key)
        marker.touch()
        assert client.executions.retry(failed.exec_id).wait(timeout=60) == "fixed"
        replay = client.executions.replay(failed.exec_id, at="step", wait=True)
        assert other.get_execution(replay.exec_id, with_calls=False)["original_exec_id"] == failed.exec_id
        assert replay.get() == "fixed"
    assert KitaruClient().executions.list() == []  # nothing reached the configured (embedded) database


@pytest.mark.ray
def test_an_explicit_image_on_a_local_stack_fails_before_anything_starts(ray_session, kitaru_home):
    with pytest.raises(KitaruUsageError, match="cannot use image 'python:3.11'"):
        say.run("x", image="python:3.11")
    assert KitaruClient().executions.list() == []


@pytest.mark.ray
def test_a_decorator_image_is_recorded_and_ignored_on_this_machine(ray_session, kitaru_home):
    handle = pictured.run()
    assert handle.wait(timeout=60) == "ran here"
    assert KitaruClient().service.get_execution(handle.exec_id, with_calls=False)["settings"]["image"] == {
        "base_image": pictured.image
    }
    assert handle.dashboard_url is None  # a driver thread shares this process's Ray job: no page of its own


def test_a_stack_naming_an_unavailable_backend_fails_in_one_line(kitaru_home):
    from kitaru.backends import backend_for_stack, get_backend

    with pytest.raises(
        KitaruUsageError,
        match=r"^unknown backend 'mainframe'; the available backends are: kuberay, local, process, ray, sagemaker, vertex\.$",
    ):
        get_backend("mainframe")
    assert backend_for_stack("default", detach=False).name == "local"
    assert backend_for_stack("local", detach=True).name == "process"


def test_a_server_beyond_loopback_starts_no_local_driver_unless_a_stack_allows_it(kitaru_home):
    """UI and MCP actions reach the launcher with API input: beyond loopback it runs nothing on the server's machine."""
    from kitaru.client._launcher import ClientLauncher
    from kitaru.config import resolve_settings
    from kitaru.contracts.launch import ExecutionSpec, LaunchAction

    client = KitaruClient()
    client.stacks.create("shared-host", backend="local", backend_options={"server_drivers": True})
    client.stacks.create("plain", backend="local")
    database_url = resolve_settings().database_url
    exposed = ClientLauncher(database_url, bind_host="0.0.0.0")
    for stack in ("default", "plain"):
        with pytest.raises(KitaruUsageError, match="beyond loopback.*server_drivers=true"):
            exposed.launch(ExecutionSpec(LaunchAction.RESUME, "e1", stack=stack))
    exposed._refuse_local_drivers_beyond_loopback("shared-host")  # allowed by an admin: no refusal
    ClientLauncher(database_url, bind_host="127.0.0.1")._refuse_local_drivers_beyond_loopback("plain")
    with pytest.raises(KitaruUsageError, match="server_drivers"):
        client.stacks.create("typo", backend="local", backend_options={"server_driver": True})
