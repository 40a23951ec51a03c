"""``kitaru server start|stop|status``: a real background uvicorn with workers, its bootstrap key, and the CLI."""

import json
import stat

import pytest
from kitaru_server import process
from typer.testing import CliRunner

from conftest import free_port
from kitaru.client._http import HttpService
from kitaru.errors import KitaruStateError, KitaruUsageError


def test_start_status_stop_with_workers_and_a_bootstrap_key(kitaru_home):
    port = free_port()
    state = process.start(port=port, workers=2)
    try:
        assert state.running and state.auth and state.url == f"http://127.0.0.1:{port}" and state.workers == 2
        key_file = kitaru_home / "server.key"
        assert key_file.read_text().strip() == state.admin_key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        assert (kitaru_home / "server.pid").read_text().strip() == str(state.pid)
        current = process.status()
        assert current.running and current.pid == state.pid and current.admin_key is None
        admin = HttpService(state.url, state.admin_key)
        assert admin.count_executions() == 0 and admin.list_api_keys()[0]["admin"] is True
        with pytest.raises(KitaruUsageError, match="requires an API key"):
            HttpService(state.url).count_executions()
        with pytest.raises(KitaruStateError, match="already runs"):
            process.start(port=free_port())
        admin.close()
    finally:
        stopped = process.stop()
    assert stopped.pid == state.pid and not process.status().running
    with pytest.raises(KitaruStateError, match="no Kitaru server"):
        process.stop()
    again = process.start(port=free_port(), no_auth=True)  # an admin key exists already: none is made; auth off on loopback
    try:
        assert again.admin_key is None and again.auth is False
        assert HttpService(again.url).count_executions() == 0
    finally:
        process.stop()


def test_no_auth_is_refused_off_loopback(kitaru_home):
    with pytest.raises(KitaruUsageError, match="only allowed on a loopback address"):
        process.start(host="0.0.0.0", port=free_port(), no_auth=True)
    assert not process.status().running


def test_a_taken_port_is_reported(kitaru_home):
    port = free_port()
    first = process.start(port=port, no_auth=True)
    try:
        other_home = kitaru_home / "other"
        with pytest.raises(KitaruUsageError, match=f"cannot listen on 127.0.0.1:{port}.*--port"):
            process.start(port=port, home=other_home, no_auth=True)  # the port is taken
        assert not process.status(home=other_home).running
    finally:
        process.stop()
    assert first.pid


def test_the_cli_commands(kitaru_home):
    from kitaru.cli._server import server_app

    runner = CliRunner()
    stopped = runner.invoke(server_app, ["status", "-o", "json"])
    assert stopped.exit_code == 0 and json.loads(stopped.output)["running"] is False
    port = free_port()
    started = runner.invoke(server_app, ["start", "--port", str(port), "--workers", "1"])
    try:
        assert started.exit_code == 0, started.output
        assert f"Kitaru server running at http://127.0.0.1:{port}" in started.output and "Admin API key" in started.output
        status = runner.invoke(server_app, ["status", "-o", "json"])
        assert json.loads(status.output)["url"] == f"http://127.0.0.1:{port}"
        assert "running at" in runner.invoke(server_app, ["status"]).output
    finally:
        result = runner.invoke(server_app, ["stop", "-o", "json"])
    assert result.exit_code == 0 and json.loads(result.output)["running"] is False


def test_start_succeeds_at_once_after_a_crash(kitaru_home):
    """A server killed with open client connections leaves them closing on its port; the next start must not wait."""
    import os
    import signal

    from kitaru.testing import wait_for

    port = free_port()
    first = process.start(port=port, no_auth=True)
    client = HttpService(first.url)  # keeps its connection open: the kill leaves it half-closed on the server's port
    assert client.count_executions() == 0
    os.killpg(first.pid, signal.SIGKILL)
    wait_for(lambda: not process.status().running, message="the killed server gone")
    again = process.start(port=port, no_auth=True)
    try:
        assert again.port == port and HttpService(again.url).count_executions() == 0
    finally:
        process.stop()
        client.close()
