"""The Helm chart ``deploy/helm/kitaru``, checked with the real ``helm`` (v4, fetched by ``make helm`` into
``.cache/helm``): ``helm lint --strict``, ``helm template`` of the default and a production values file,
every rendered core object validated strictly against Kubernetes 1.33's schemas (kubernetes-validate), and
the RBAC check: the rendered Role allows exactly the (verb, resource) pairs the ``kuberay`` backend used
against the stand-in API server (no cluster runs here)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import IN_CI

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "kitaru"
PRODUCTION = CHART / "ci" / "production-values.yaml"
KUBE_VERSION = "1.33.0"


@pytest.fixture(scope="module")
def helm(tmp_path_factory):
    """Run helm offline, with its own config, cache and data folders."""
    binary = os.environ.get("KITARU_HELM") or (
        str(REPO / ".cache/helm/helm") if (REPO / ".cache/helm/helm").exists() else shutil.which("helm")
    )
    if binary is None:
        message = "helm is not installed (`make helm` fetches it into .cache/helm)"
        if IN_CI:
            pytest.fail(message + " and CI must run the chart tests.")
        pytest.skip(message + ".")
    home = tmp_path_factory.mktemp("helm")
    env = {**os.environ, **{f"HELM_{kind}_HOME": str(home / kind.lower()) for kind in ("CACHE", "CONFIG", "DATA")}}

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([binary, *args], env=env, capture_output=True, text=True, check=False, timeout=120)
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    return run


def render(helm, *values: Path, sets: tuple[str, ...] = ()) -> list[dict]:
    args = ["template", "kitaru", str(CHART), "--namespace", "kitaru", "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


@pytest.mark.parametrize("values", [(), (PRODUCTION,)], ids=["default", "production"])
def test_lint_strict(helm, values):
    args = ["lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION]
    for path in values:
        args += ["-f", str(path)]
    assert "0 chart(s) failed" in helm(*args).stdout


@pytest.mark.parametrize(
    ("values", "kinds"),
    [
        ((), {"Deployment", "Service", "ConfigMap", "Secret", "Job", "ServiceAccount", "Role", "RoleBinding", "StatefulSet"}),
        ((PRODUCTION,), {"Deployment", "Service", "ConfigMap", "Job", "ServiceAccount", "Role", "RoleBinding", "Ingress"}),
    ],
    ids=["default", "production"],
)
def test_rendered_objects_validate_strictly(helm, values, kinds):
    import kubernetes_validate

    documents = render(helm, *values)
    assert {doc["kind"] for doc in documents} == kinds
    for doc in documents:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    (deployment,) = [doc for doc in documents if doc["kind"] == "Deployment"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"]["limits"]
    (job,) = [doc for doc in documents if doc["kind"] == "Job"]
    assert "pre-upgrade" in job["metadata"]["annotations"]["helm.sh/hook"]
    names = {env["name"] for env in container["env"]}
    assert {"KITARU_SERVER_DATABASE_URL", "KITARU_SECRET_KEY"} <= names


def test_values_schema_rejects_bad_values(helm):
    for bad in ("replicaCount=0", "image.pullPolicy=Sometimes", "unknownKey=1", "database.url=mysql://x"):
        done = helm("template", "kitaru", str(CHART), "--set", bad, check=False)
        assert done.returncode != 0 and "values don't meet the specifications of the schema" in done.stderr, bad
    done = helm("template", "kitaru", str(CHART), "--set", "postgresql.enabled=false", check=False)
    assert done.returncode != 0 and "set database.url or database.existingSecret" in done.stderr


def test_role_allows_exactly_what_the_kuberay_backend_does(helm):
    from kitaru.backends._standins.kubeapi import KubeApiStandIn
    from kitaru.backends.kuberay import KubeRayBackend
    from kitaru.contracts.launch import ExecutionSpec, LaunchAction

    with KubeApiStandIn() as api:
        backend = KubeRayBackend({"api_server": api.url, "namespace": "kitaru"}, container_registry="registry.example.com")
        for action, exec_id in ((LaunchAction.RUN, "rbac-1"), (LaunchAction.RESUME, "rbac-1")):
            spec = ExecutionSpec(
                action, exec_id, target="tests.integration.container_flows:hello", server_url="http://kitaru:8383"
            )
            submission = backend.submit(spec)
            backend.submit(spec)  # the existing RayJob is read back
            backend.status(submission)
            backend.cancel(submission)
        used = {pair for agent, pairs in api.seen.items() if agent.startswith("OpenAPI-Generator") for pair in pairs}
    assert used == {("create", "rayjobs"), ("get", "rayjobs"), ("delete", "rayjobs")}
    (role,) = [doc for doc in render(helm) if doc["kind"] == "Role"]
    allowed = {
        (verb, resource)
        for rule in role["rules"]
        if "ray.io" in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert allowed == used
