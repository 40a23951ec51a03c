"""Stacks of the container backends (kuberay, vertex, sagemaker) from the CLI, their options checked by the
backend that declares them, listed in ``kitaru stack create --help``, and the backend registry."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from kitaru.backends import backend_options, get_backend
from kitaru.cli import app
from kitaru.contracts.launch import Backend
from kitaru.errors import KitaruUsageError


def cli(*args: str, code: int = 0):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, f"{args} -> {result.exit_code}: {result.stdout} {result.stderr}"
    if code:
        assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result


def test_stacks_of_each_backend_from_the_cli(kitaru_home):
    created = {
        "k8s": ("kuberay", ["namespace=kitaru", "cluster_selector=kitaru", "ttl_seconds_after_finished=60"]),
        "gcp": ("vertex", ["project=acme", "region=europe-west4", "worker_count=3", 'worker_ray_resources={"gpu_node": 1}']),
        "aws": ("sagemaker", ["region=us-east-1", "role_arn=arn:aws:iam::123456789012:role/kitaru", "instance_count=4"]),
    }
    for name, (backend, options) in created.items():
        args = ["stack", "create", name, "--backend", backend, "--registry", "registry.example.com", "-o", "json"]
        for option in options:
            args += ["--backend-option", option]
        stack = json.loads(cli(*args).stdout)
        assert stack["backend"] == backend
    shown = {s["name"]: s for s in json.loads(cli("stack", "list", "-o", "json").stdout)}
    assert shown["k8s"]["backend_options"] == {
        "namespace": "kitaru",
        "cluster_selector": "kitaru",
        "ttl_seconds_after_finished": 60,
    }
    assert shown["gcp"]["backend_options"]["worker_count"] == 3  # checked and typed by the backend
    assert shown["gcp"]["backend_options"]["worker_ray_resources"] == {"gpu_node": 1}
    assert shown["aws"]["backend_options"]["instance_count"] == 4


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--backend", "vertex", "--backend-option", "region=r"), "needs --backend-option project=VALUE"),
        (("--backend", "sagemaker", "--backend-option", "region=r"), "needs --backend-option role_arn=VALUE"),
        (("--backend", "kuberay", "--backend-option", "submission_mode=Shell"), "not one of HTTPMode"),
        (("--backend", "kuberay", "--backend-option", "ttl_seconds_after_finished=soon"), "must be int"),
        (("--backend", "kuberay", "--backend-option", "nmespace=x"), "has no option nmespace"),
    ],
)
def test_bad_backend_options_are_refused_in_one_line(kitaru_home, args, message):
    assert message in cli("stack", "create", "bad", *args, code=2).stderr
    assert "bad" not in [s["name"] for s in json.loads(cli("stack", "list", "-o", "json").stdout)]


def test_help_lists_every_backends_options():
    text = cli("stack", "create", "--help").stdout
    for name in ("kuberay", "vertex", "sagemaker"):
        assert f"{name} options" in text
        for option in backend_options(name):
            assert option.name in text


def test_registry_builds_backends_and_names_a_missing_extra(monkeypatch):
    kuberay = get_backend("kuberay", {"api_server": "http://127.0.0.1:9"}, container_registry="registry.example.com")
    vertex = get_backend("vertex", {"project": "p", "region": "r"})
    sagemaker = get_backend("sagemaker", {"region": "us-east-1", "role_arn": "arn:aws:iam::123456789012:role/kitaru"})
    for backend, name in ((kuberay, "kuberay"), (vertex, "vertex"), (sagemaker, "sagemaker")):
        assert isinstance(backend, Backend) and backend.name == name
    with pytest.raises(KitaruUsageError, match="unknown backend 'mainframe'"):
        get_backend("mainframe")
    monkeypatch.setitem(sys.modules, "kubernetes", None)  # as if the extra were not installed
    with pytest.raises(KitaruUsageError, match=r"pip install 'kitaru\[kuberay\]'"):
        get_backend("kuberay", {})


def test_the_ui_shows_container_backend_stacks(kitaru_home):
    from fastapi.testclient import TestClient
    from kitaru_server.api import create_app

    from kitaru import KitaruClient
    from kitaru.config import resolve_settings

    client = KitaruClient()
    client.stacks.create("k8s", backend="kuberay", container_registry="registry.example.com", backend_options={"namespace": "ml"})
    client.stacks.create("aws", backend="sagemaker", backend_options={"region": "us-east-1", "role_arn": "arn:aws:iam::1:role/k"})
    with TestClient(create_app(resolve_settings().database_url, auth=False), base_url="http://127.0.0.1") as browser:
        page = browser.get("/stacks", headers={"Accept": "text/html"}).text
    for text in ("k8s", "kuberay", "registry.example.com", "&#34;namespace&#34;: &#34;ml&#34;", "aws", "sagemaker"):
        assert text in page, text
