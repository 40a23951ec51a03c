"""Deployments: versioned code snapshots with tags; invoking one runs the snapshot, not the code on disk."""

from __future__ import annotations

import importlib
import json
import sys
import uuid

import pytest
from typer.testing import CliRunner

from kitaru import KitaruClient
from kitaru.cli import app
from kitaru.errors import KitaruNotFoundError, KitaruUsageError

FLOW_SOURCE = """
from kitaru import checkpoint, flow


def exclaim(text):  # a plain helper: Ray workers get it with the snapshot's code, by value
    return text + "!"


@checkpoint
def shout(text):
    return exclaim(text.upper())


@flow
def greet(name, punctuation="?"):
    return shout("{word} " + name) + punctuation
"""


@pytest.fixture
def flow_module(tmp_path, monkeypatch):
    """A module of its own on sys.path, defining ``greet``; ``rewrite(word)`` changes its code on disk."""
    name = f"deployed_{uuid.uuid4().hex[:8]}"
    path = tmp_path / "code" / f"{name}.py"
    path.parent.mkdir()

    def rewrite(word: str):
        path.write_text(FLOW_SOURCE.replace("{word}", word))
        sys.modules.pop(name, None)
        return importlib.import_module(name)

    monkeypatch.syspath_prepend(str(path.parent))
    yield rewrite
    sys.modules.pop(name, None)


def test_versions_tags_and_their_errors(kitaru_home, flow_module):
    deployments = KitaruClient().deployments
    module = flow_module("hello")
    first = module.greet.deploy(tags=["prod"], defaults={"punctuation": "."})
    second = module.greet.deploy(tags=["staging"])
    assert (first.version, second.version) == (1, 2)
    assert first.flow_ref == f"{module.__name__}:greet" and first.stack == "default"
    assert deployments.get("greet", tag="prod").version == 1
    assert deployments.get("greet").version == 2  # the newest

    deployments.tag("greet", 2, "prod")  # a tag names one version: it moves
    assert [(d.version, d.tags) for d in deployments.list("greet")] == [(2, ["staging", "prod"]), (1, [])]

    with pytest.raises(KitaruNotFoundError, match=r"has no deployment with tag 'canary'.*kitaru deployments list greet"):
        deployments.get("greet", tag="canary")
    with pytest.raises(KitaruNotFoundError, match="has no deployments"):
        deployments.invoke("nothing-deployed", tag="prod")
    with pytest.raises(KitaruUsageError, match=r"do not fit flow 'greet'\(name, punctuation\)"):
        deployments.invoke("greet", tag="prod", inputs={"nam": "x"})
    with pytest.raises(KitaruUsageError, match="do not fit"):
        module.greet.deploy(defaults={"volume": 11})
    assert KitaruClient().executions.list() == []  # nothing was started

    deployments.delete("greet", 1)
    assert [d.version for d in deployments.list("greet")] == [2]


@pytest.mark.ray
def test_invoke_runs_the_snapshot_and_records_its_version(ray_session, kitaru_home, flow_module):
    module = flow_module("hello")
    module.greet.deploy(tags=["prod"])
    changed = flow_module("goodbye")  # the code on disk moves on; the deployed snapshot does not

    handle = changed.greet.invoke(tag="prod", name="ray")
    assert handle.wait(timeout=120) == "HELLO RAY!?"
    execution = KitaruClient().executions.get(handle.exec_id)
    assert execution.metadata["deployment"] == {"flow": "greet", "version": 1}


def test_cli_deploy_list_tag_show_delete_and_a_bad_tag(kitaru_home, flow_module, monkeypatch):
    module = flow_module("hello")
    runner = CliRunner()
    target = f"{module.__file__}:greet"
    deployed = runner.invoke(app, ["deploy", target, "--tag", "prod", "-o", "json"])
    assert deployed.exit_code == 0, deployed.output
    assert json.loads(deployed.stdout)["version"] == 1
    assert runner.invoke(app, ["deploy", target]).exit_code == 0

    listed = json.loads(runner.invoke(app, ["deployments", "list", "-o", "json"]).stdout)
    assert [(d["flow"], d["version"], d["tags"]) for d in listed] == [("greet", 2, []), ("greet", 1, ["prod"])]
    assert runner.invoke(app, ["deployments", "tag", "greet", "2", "prod"]).exit_code == 0
    shown = json.loads(runner.invoke(app, ["deployments", "show", "greet", "--tag", "prod", "-o", "json"]).stdout)
    assert shown["version"] == 2

    bad = runner.invoke(app, ["invoke", "greet", "--tag", "canary", "--input", '{"name": "x"}'])
    assert bad.exit_code != 0 and "has no deployment with tag 'canary'" in bad.output
    assert runner.invoke(app, ["deployments", "delete", "greet", "1"]).exit_code == 0
    assert [d.version for d in KitaruClient().deployments.list()] == [2]


def test_the_ui_and_the_http_api_show_deployments(kitaru_home, flow_module):
    from fastapi.testclient import TestClient
    from kitaru_server import service_for
    from kitaru_server.api import create_app

    from kitaru.config import resolve_settings

    flow_module("hello").greet.deploy(tags=["prod"], defaults={"punctuation": "."})
    service = service_for(resolve_settings().database_url)
    with TestClient(create_app(service=service, auth=False), base_url="http://127.0.0.1") as browser:
        page = browser.get("/deployments")
        assert page.status_code == 200 and "greet" in page.text and "prod" in page.text
        api = browser.get("/api/v1/deployments/greet/resolve", params={"tag": "prod"}).json()
        assert api["version"] == 1 and api["defaults"] == {"punctuation": "."}
        missing = browser.get("/api/v1/deployments/greet/resolve", params={"tag": "canary"})
        assert missing.status_code == 404 and "canary" in missing.text
