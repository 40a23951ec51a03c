"""The ``kuberay`` backend: RayJob bodies checked against the real CRD schema and the operator's rules,
and the backend driven through the real ``kubernetes`` client.

No Kubernetes cluster can run here: the API server is a local stand-in for the custom-objects routes
(``kitaru.backends._standins.kubeapi``: resourceVersion, 404/409, strict field validation, finalizers)
and the KubeRay operator is a stand-in (``kitaru.backends._standins.kuberay_operator``) that runs the
entrypoint as a local process on a real local Ray and writes the RayJob's status transitions back.
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import container_standins as standins
import pytest

from conftest import IN_CI
from kitaru.backends._kuberay.body import rayjob_body
from kitaru.backends._kuberay.rules import rayjob_error
from kitaru.backends._kuberay.schema import load_schema
from kitaru.backends._kuberay.validation import problems, validate
from kitaru.backends._options import validate_options
from kitaru.backends._standins.kubeapi import KubeApiStandIn
from kitaru.backends.kuberay import OPTIONS, KubeRayBackend, report_from_status
from kitaru.contracts.launch import BackendState, ExecutionSpec, LaunchAction, Submission
from kitaru.errors import KitaruBackendError, KitaruUsageError
from kitaru.testing import wait_for

REPO = Path(__file__).resolve().parents[2]
# ../shared beside the clone (CI), or beside the folder of a git worktree
CRDS = next(
    (p / "kuberay-crds" for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()),
    REPO.parent / "shared" / "kuberay-crds",
)
FLOWS = Path(__file__).resolve().parent / "launch_flows.py"
IMAGE = standins.KUBERAY_IMAGE


def options(**overrides):
    return validate_options("kuberay", OPTIONS, overrides)


def body(**overrides):
    return rayjob_body(
        name="kitaru-ex-1-run",
        namespace="ns",
        exec_id="ex-1",
        action="run",
        command=["python", "-m", "kitaru.runtime", "run", "m:f", "--exec-id", "ex-1"],
        image=IMAGE,
        environment={"KITARU_SERVER_URL": "https://kitaru.example.com"},
        options=options(**overrides),
    )


def test_vendored_schemas_equal_the_crds():
    if not CRDS.is_dir():
        if IN_CI:
            pytest.fail(f"{CRDS} is missing and CI must check the vendored schemas against it")
        pytest.skip(f"{CRDS} is absent (a fresh clone without ../shared)")
    import yaml

    for plural in ("rayjobs", "rayclusters"):
        crd = yaml.load((CRDS / f"ray.io_{plural}.yaml").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        (v1,) = [version for version in crd["spec"]["versions"] if version["name"] == "v1"]
        assert load_schema(plural) == v1["schema"]["openAPIV3Schema"], plural


def test_body_passes_the_schema_and_the_operator_and_carries_the_settings():
    job = body()
    assert problems(job) == []
    spec = job["spec"]
    assert spec["submissionMode"] == "HTTPMode" and spec["jobId"] == "kitaru-ex-1-run"
    assert spec["shutdownAfterJobFinishes"] is True and spec["ttlSecondsAfterFinished"] == 300
    assert spec["activeDeadlineSeconds"] > 0 and spec["preRunningDeadlineSeconds"] > 0
    cluster = spec["rayClusterSpec"]
    assert cluster["authOptions"] == {"mode": "token"}
    head = cluster["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert head["image"] == IMAGE
    key = [e for e in head["env"] if e["name"] == "KITARU_API_KEY"]
    assert key == [
        {"name": "KITARU_API_KEY", "valueFrom": {"secretKeyRef": {"name": "kitaru-api-key", "key": "api-key", "optional": True}}}
    ]
    selector = body(cluster_selector="shared", ray_auth_secret="ray-token")
    assert problems(selector) == []
    assert selector["spec"]["clusterSelector"] == {"ray.io/cluster": "shared"} and "rayClusterSpec" not in selector["spec"]
    assert body(ray_auth_secret="ray-token")["spec"]["rayClusterSpec"]["authOptions"] == {
        "mode": "token",
        "secretName": "ray-token",
    }


def broken(change):
    job = copy.deepcopy(body())
    change(job)
    return job


OPERATOR_RULES = [
    (
        lambda j: j["metadata"].update(name="k" * 48),
        "The RayJob metadata is invalid: RayJob name should be no more than 47 characters",
    ),
    (
        lambda j: j["metadata"].update(name="1-job"),
        "The RayJob metadata is invalid: RayJob name should be a valid DNS1035 label: [a DNS-1035",
    ),
    (
        lambda j: j["spec"].update(shutdownAfterJobFinishes=False),
        "The RayJob spec is invalid: a RayJob with shutdownAfterJobFinishes set to false cannot have TTLSecondsAfterFinished",
    ),
    (
        lambda j: j["spec"].update(activeDeadlineSeconds=0),
        "The RayJob spec is invalid: activeDeadlineSeconds must be a positive integer",
    ),
    (
        lambda j: j["spec"].update(preRunningDeadlineSeconds=-1),
        "The RayJob spec is invalid: preRunningDeadlineSeconds must be a positive integer",
    ),
    (lambda j: j["spec"].update(clusterSelector={"other": "x"}), "cluster name in ClusterSelector should not be empty"),
    (
        lambda j: j["spec"].update(clusterSelector={"ray.io/cluster": "x"}, backoffLimit=1),
        "The RayJob spec is invalid: BackoffLimit is incompatible with ClusterSelector mode",
    ),
    (
        lambda j: j["spec"].update(clusterSelector={"ray.io/cluster": "x"}, submissionMode="SidecarMode"),
        "ClusterSelector is not supported in SidecarMode",
    ),
    (
        lambda j: j["spec"].update(submissionMode="SidecarMode", submitterPodTemplate={"spec": {"containers": []}}),
        "Currently, SidecarMode doesn't support SubmitterPodTemplate",
    ),
    (
        lambda j: j["spec"]["rayClusterSpec"].update(rayVersion="2.40.0"),
        "The RayJob spec is invalid: authOptions.mode is 'token' but minimum Ray version is 2.52.0, got 2.40.0",
    ),
]


@pytest.mark.parametrize(("change", "message"), OPERATOR_RULES)
def test_operator_rules_with_the_operators_messages(change, message):
    job = broken(change)
    assert (rayjob_error(job) or "").startswith(message)
    with pytest.raises(KitaruUsageError, match="would be rejected: ") as info:  # some are in the schema too
        validate(job)
    assert "\n" not in str(info.value)


def test_schema_rejects_unknown_fields_and_wrong_types():
    job = broken(lambda j: j["spec"].update(entrypointz="x", activeDeadlineSeconds="soon"))
    assert problems(job) == ["spec.activeDeadlineSeconds: 'soon' is not of type 'integer'", 'unknown field "spec.entrypointz"']
    nested = broken(
        lambda j: j["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0].update(imagePolicy="x")
    )
    assert problems(nested) == ['unknown field "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0.imagePolicy"']


def test_status_mapping():
    spec = {"activeDeadlineSeconds": 5, "preRunningDeadlineSeconds": 9}
    cases = [
        ({}, BackendState.PENDING, None),
        ({"jobDeploymentStatus": "Initializing"}, BackendState.PENDING, None),
        ({"jobDeploymentStatus": "Running", "jobStatus": "RUNNING"}, BackendState.RUNNING, None),
        ({"jobDeploymentStatus": "Complete", "jobStatus": "SUCCEEDED"}, BackendState.SUCCEEDED, None),
        (
            {"jobDeploymentStatus": "Complete", "jobStatus": "FAILED", "message": "exit 1"},
            BackendState.FAILED,
            "the driver failed: exit 1",
        ),
        (
            {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": "m"},
            BackendState.FAILED,
            "activeDeadlineSeconds (5 s)",
        ),
        (
            {"jobDeploymentStatus": "Failed", "reason": "SubmissionFailed", "message": "m"},
            BackendState.FAILED,
            "could not submit the driver",
        ),
        (
            {"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed", "message": "m"},
            BackendState.FAILED,
            "rejected the RayJob",
        ),
        ({"jobDeploymentStatus": "Failed", "reason": "PreRunningDeadlineExceeded", "message": "m"}, BackendState.FAILED, "(9 s)"),
    ]
    for status, state, words in cases:
        report = report_from_status(status, spec)
        assert report.state is state, status
        assert words is None or words in (report.message or ""), (status, report)
    pulling = {
        "jobDeploymentStatus": "Initializing",
        "rayClusterStatus": {
            "conditions": [{"type": "HeadPodReady", "status": "False", "reason": "ErrImagePull", "message": "no such image"}]
        },
    }
    assert report_from_status(pulling, spec).message == "image pull failed: ErrImagePull: no such image"


def test_standin_api_server_speaks_the_custom_objects_protocol():
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    with KubeApiStandIn() as api:
        configuration = client.Configuration()
        configuration.host = api.url
        objects = client.CustomObjectsApi(client.ApiClient(configuration))
        args = ("ray.io", "v1", "ns", "rayjobs")
        created = objects.create_namespaced_custom_object(*args, body=body(), field_validation="Strict")
        assert created["metadata"]["resourceVersion"] and created["metadata"]["uid"]
        with pytest.raises(ApiException) as conflict:
            objects.create_namespaced_custom_object(*args, body=body(), field_validation="Strict")
        assert conflict.value.status == 409 and json.loads(conflict.value.body)["reason"] == "AlreadyExists"
        with pytest.raises(ApiException) as missing:
            objects.get_namespaced_custom_object(*args, "nope")
        assert missing.value.status == 404
        unknown = broken(lambda j: j["spec"].update(surprise=1))
        unknown["metadata"]["name"] = "other"
        with pytest.raises(ApiException) as strict:
            objects.create_namespaced_custom_object(*args, body=unknown, field_validation="Strict")
        assert strict.value.status == 400 and 'unknown field "spec.surprise"' in json.loads(strict.value.body)["message"]
        stale = {"metadata": {"resourceVersion": "0"}, "status": {"jobDeploymentStatus": "Running"}}
        with pytest.raises(ApiException) as old:
            objects.replace_namespaced_custom_object_status(*args, "kitaru-ex-1-run", stale)
        assert old.value.status == 409 and json.loads(old.value.body)["reason"] == "Conflict"
        fresh = {
            "metadata": {"resourceVersion": created["metadata"]["resourceVersion"]},
            "status": {"jobDeploymentStatus": "Running"},
        }
        assert (
            objects.replace_namespaced_custom_object_status(*args, "kitaru-ex-1-run", fresh)["status"]["jobDeploymentStatus"]
            == "Running"
        )
        objects.delete_namespaced_custom_object(*args, "kitaru-ex-1-run")
        assert api.objects == {}


def submit_spec(exec_id="ex-1", target="tests.integration.container_flows:hello", **kwargs):
    return ExecutionSpec(LaunchAction.RUN, exec_id, target=target, server_url="http://kitaru.example.com", **kwargs)


def test_bad_input_is_refused_before_sending_with_one_line(tmp_path, monkeypatch):
    with KubeApiStandIn() as api:
        backend = KubeRayBackend({"api_server": api.url}, container_registry="registry.example.com")
        with pytest.raises(KitaruUsageError, match="asks for Ray resource 'launch_worker' that no worker group offers"):
            backend.submit(submit_spec(target=f"{FLOWS}:two_nodes"))
        with pytest.raises(KitaruUsageError, match="connect to a Kitaru server first"):
            backend.submit(ExecutionSpec(LaunchAction.RUN, "ex-1", target="m:f"))
        with pytest.raises(KitaruUsageError, match="call .run\\(\\) with keyword arguments"):
            backend.submit(ExecutionSpec(LaunchAction.RUN, "ex-1", target="m:f", server_url="http://s", args=(1,)))
        with pytest.raises(KitaruUsageError, match="needs an image"):
            KubeRayBackend({"api_server": api.url}).submit(submit_spec())
        with pytest.raises(KitaruUsageError, match="no worker group|would be rejected"):
            KubeRayBackend({"api_server": api.url, "active_deadline_seconds": 0}, container_registry="r").submit(submit_spec())
        assert api.objects == {} and not api.seen  # nothing reached the API server
    with pytest.raises(KitaruUsageError, match="has no option nme"):
        KubeRayBackend({"nme": "x"})
    with pytest.raises(KitaruUsageError, match="one of HTTPMode"):
        KubeRayBackend({"submission_mode": "Shell"})
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing-kubeconfig"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KitaruUsageError, match="no Kubernetes credentials"):
        KubeRayBackend({}, container_registry="r").submit(submit_spec())
    unreachable = KubeRayBackend({"api_server": "http://127.0.0.1:9"}, container_registry="r")
    with pytest.raises(KitaruBackendError, match="cannot reach the Kubernetes API server at http://127.0.0.1:9") as info:
        unreachable.submit(submit_spec())
    assert "\n" not in str(info.value)


@pytest.fixture
def cluster(tmp_path):
    """The stand-in API server and operator (entrypoints join no Ray unless a test gives one)."""
    with standins.kuberay(tmp_path, ray_address="127.0.0.1:1") as (api, operator):
        yield api, operator


def raw_job(api, name, entrypoint, **spec):
    """A RayJob created directly (a plain process as entrypoint): the backend is then asked about it."""
    from kubernetes import client

    configuration = client.Configuration()
    configuration.host = api.url
    job = body()
    job["metadata"]["name"] = job["spec"]["jobId"] = name
    job["spec"].update(entrypoint=entrypoint, **spec)
    client.CustomObjectsApi(client.ApiClient(configuration)).create_namespaced_custom_object("ray.io", "v1", "ns", "rayjobs", job)
    return Submission("kuberay", "ex", name)


def test_image_that_does_not_exist_fails_with_the_pull_error_and_is_deleted(cluster):
    api, _ = cluster
    backend = KubeRayBackend({"api_server": api.url, "namespace": "ns", "image": "registry.example.com/missing:1"})
    submission = backend.submit(submit_spec())
    report = wait_for(lambda: (r := backend.status(submission)).state.is_finished and r, timeout=20, interval=0.1)
    assert report.state is BackendState.FAILED
    assert report.message == 'image pull failed: ErrImagePull: Back-off pulling image "registry.example.com/missing:1"'
    wait_for(lambda: api.objects == {}, timeout=10, message="the RayJob deleted")  # nothing left waiting for its deadline


def test_deadline_exceeded_and_cancel(cluster):
    api, operator = cluster
    backend = KubeRayBackend({"api_server": api.url, "namespace": "ns"})
    sleepy = 'python -c "import time; time.sleep(60)"'
    late = raw_job(api, "late", sleepy, activeDeadlineSeconds=1)
    report = wait_for(lambda: (r := backend.status(late)).state.is_finished and r, timeout=20, interval=0.1)
    assert report.state is BackendState.FAILED and "activeDeadlineSeconds (1 s)" in report.message
    cancelled = raw_job(
        api, "cancelled", "python -c \"import os, time; print(os.environ['KITARU_API_KEY'], flush=True); time.sleep(60)\""
    )
    wait_for(lambda: backend.status(cancelled).state is BackendState.RUNNING, timeout=20, interval=0.1)
    wait_for(lambda: "sekrit" in operator.log("cancelled"), timeout=20)  # the API key came from the secret
    backend.cancel(cancelled)
    wait_for(lambda: ("rayjobs", "ns", "cancelled") not in api.objects, timeout=20, interval=0.1)
    assert backend.status(cancelled).state is BackendState.STOPPED  # gone: its driver no longer runs
    backend.cancel(cancelled)  # idempotent


@pytest.mark.ray
def test_run_end_to_end_on_a_local_ray(ray_session, kitaru_home, monkeypatch, tmp_path):
    """A flow submitted as a RayJob runs to completion: the operator stand-in runs the entrypoint on the local Ray,
    the driver records into a Kitaru server, and the finished RayJob is deleted once its TTL passed."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient

    with remote_server(resolve_database_url(), monkeypatch) as server_url:
        key = os.environ["KITARU_API_KEY"]
        with standins.kuberay(tmp_path, ray_address=ray_session, api_key=key) as (api, op):
            backend = KubeRayBackend(
                {
                    "api_server": api.url,
                    "namespace": "ns",
                    "ttl_seconds_after_finished": 1,
                    "dashboard_url_template": "https://ray.example.com/{namespace}/{name}/#/jobs/{job_id}",
                },
                container_registry="registry.example.com",
            )
            spec = ExecutionSpec(
                LaunchAction.RUN,
                "kuberay-e2e",
                target="tests.integration.container_flows:hello",
                inputs={"name": "kuberay"},
                server_url=server_url,
                api_key=key,
                storage_url=(kitaru_home / "storage").as_uri(),
            )
            submission = backend.submit(spec)
            assert backend.submit(spec) == submission  # idempotent
            assert submission.dashboard_url == "https://ray.example.com/ns/kitaru-kuberay-e2e-run/#/jobs/kitaru-kuberay-e2e-run"
            sent = api.objects[("rayjobs", "ns", submission.submission_id)]
            assert key not in json.dumps(sent)  # the key travels in a secret, never in the object
            report = wait_for(lambda: (r := backend.status(submission)).state.is_finished and r, timeout=120, interval=0.2)
            assert report.state is BackendState.SUCCEEDED, op.log(submission.submission_id)
            assert KitaruClient().executions.get("kuberay-e2e").result() == "hello kuberay"
            time.sleep(1.1)  # the TTL of the finished RayJob
            wait_for(lambda: backend.status(submission).state is BackendState.STOPPED, timeout=10, interval=0.2)
            assert api.objects == {}  # reading its status after the TTL deleted it


@pytest.mark.parametrize("manifest", sorted((REPO / "deploy" / "kuberay").glob("*.yaml")), ids=lambda p: p.name)
def test_deploy_manifests_pass_the_crd_schema_and_the_operator(manifest):
    import yaml

    documents = [doc for doc in yaml.safe_load_all(manifest.read_text()) if doc]
    assert documents
    for document in documents:
        assert problems(document) == [], f"{manifest.name}: {document['metadata']['name']}"
