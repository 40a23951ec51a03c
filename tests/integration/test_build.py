"""``kitaru build``: a flow's image files (dependencies only) and the commands that build and push it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from kitaru._images import image_spec, plan_build
from kitaru.cli import app

FLOW = "tests.integration.container_flows:hello"


def test_plan_pins_kitaru_adds_storage_extras_and_tags_by_content():
    spec = image_spec({"requirements": ["httpx"], "apt_packages": ["git"], "environment": {"MODE": "prod"}})
    plan = plan_build(spec, flow="hello", registry="registry.example.com/team", storage_url="s3://bucket/x")
    assert plan.requirements.splitlines()[0].startswith("kitaru[s3]==")
    assert "httpx" in plan.requirements.splitlines()
    assert "FROM python:3.11-slim" in plan.dockerfile and "apt-get install -y --no-install-recommends git" in plan.dockerfile
    assert 'ENV MODE="prod"' in plan.dockerfile and 'CMD ["python", "-m", "kitaru.runtime.launch"]' in plan.dockerfile
    assert plan.tag.startswith("registry.example.com/team/kitaru-hello:")
    same = plan_build(spec, flow="hello", registry="registry.example.com/team", storage_url="s3://bucket/x")
    changed = plan_build(image_spec({"requirements": ["httpx", "rich"]}), flow="hello", registry="registry.example.com/team")
    assert same.tag == plan.tag and changed.tag != plan.tag  # rebuilt only when the dependencies change
    pinned = plan_build(image_spec({"requirements": ["kitaru[llm]>=0.1"]}), flow="hello", registry=None)
    assert pinned.requirements == "kitaru[llm]>=0.1\n" and pinned.tag.startswith("kitaru-hello:")


def test_build_command_writes_the_files_and_prints_the_commands(kitaru_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    created = runner.invoke(app, ["stack", "create", "prod", "--registry", "registry.example.com", "--storage-url", "gs://b/k"])
    assert created.exit_code == 0, created.output
    result = runner.invoke(app, ["build", FLOW, "--stack", "prod", "-r", "httpx", "--apt", "git", "--env", "A=1", "-o", "json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["image"].startswith("registry.example.com/kitaru-hello:")
    dockerfile = (tmp_path / "build" / "image-hello" / "Dockerfile").read_text()
    requirements = (tmp_path / "build" / "image-hello" / "requirements.txt").read_text().splitlines()
    assert "git" in dockerfile and 'ENV A="1"' in dockerfile
    assert requirements[0].startswith("kitaru[gcs]==") and "httpx" in requirements
    assert report["commands"] == [
        f"docker build -t {report['image']} -f build/image-hello/Dockerfile build/image-hello",
        f"docker push {report['image']}",
    ]
    text = runner.invoke(app, ["build", FLOW, "--stack", "prod"])
    assert text.exit_code == 0 and "docker push registry.example.com/kitaru-hello:" in text.stdout


def test_deploy_images_copy_what_exists_and_run_what_is_installed():
    """No Docker engine runs here: the Dockerfiles are checked for what they copy, install and start."""
    import importlib
    import re
    import shlex
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    for name, extras, module in (("runtime", "s3,gcs,azure", "kitaru.runtime.launch"), ("server", "server", "kitaru_server.api")):
        text = (root / "deploy" / "docker" / f"{name}.Dockerfile").read_text()
        for line in re.findall(r"^COPY (.+)$", text, re.MULTILINE):
            *sources, _ = shlex.split(line)
            assert all((root / source).exists() for source in sources), line
        assert "-c constraints.txt" in text and extras in text
        assert module in text
        importlib.import_module(module)
