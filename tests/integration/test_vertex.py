"""The ``vertex`` backend through the real ``google-cloud-aiplatform`` GAPIC client (REST transport).

No Google Cloud account is reachable here: the Vertex AI API is a local stand-in
(``kitaru.backends._standins.vertex``) speaking the same REST/JSON wire format, which runs each
replica of the CustomJob as a local process with ``CLUSTER_SPEC`` set; the replicas run the real
cluster launcher and form a real two-node Ray cluster.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import container_standins as standins
import pytest

from kitaru.backends.vertex import VertexBackend
from kitaru.contracts.launch import BackendState, ExecutionSpec, LaunchAction, Submission
from kitaru.errors import KitaruBackendError, KitaruUsageError
from kitaru.testing import wait_for

REPO = Path(__file__).resolve().parents[2]
IMAGE = standins.VERTEX_IMAGE


def backend(url: str, **options) -> VertexBackend:
    return VertexBackend(
        {"project": "acme", "region": "europe-west4", "api_endpoint": url, "anonymous": True, **options},
        container_registry="registry.example.com",
    )


def spec(exec_id="vx-1", target="tests.integration.container_flows:hello", action=LaunchAction.RUN, **kwargs):
    return ExecutionSpec(action, exec_id, target=target, server_url="http://kitaru.example.com", api_key="key-1", **kwargs)


@pytest.fixture
def vertex(tmp_path):
    with standins.vertex(tmp_path) as standin:
        yield standin


def test_custom_job_layout():
    job = backend(
        "http://127.0.0.1:9", worker_count=2, worker_ray_resources={"gpu_node": 1}, service_account="sa@acme"
    )._custom_job(spec(storage_url="gs://bucket/k"), "kitaru-vx-1-run", IMAGE)
    head, workers = job.job_spec.worker_pool_specs
    assert (head.replica_count, workers.replica_count) == (1, 2)
    assert list(head.container_spec.command) == ["python", "-m", "kitaru.runtime.launch"] == list(workers.container_spec.command)
    assert (
        list(head.container_spec.args)[:3] == ["--", "run", "tests.integration.container_flows:hello"]
        and not workers.container_spec.args
    )
    env = {e.name: e.value for e in head.container_spec.env}
    assert env["KITARU_SERVER_URL"] == "http://kitaru.example.com" and env["KITARU_STORAGE_URL"] == "gs://bucket/k"
    assert "KITARU_HOME" not in env
    worker_env = {e.name: e.value for e in workers.container_spec.env}
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == worker_env["RAY_AUTH_TOKEN"]  # one token per job
    assert {e.name: e.value for e in workers.container_spec.env}["KITARU_RAY_START_ARGS"] == "--resources '{\"gpu_node\": 1}'"
    assert job.labels["kitaru-job"] == "kitaru-vx-1-run" and job.job_spec.service_account == "sa@acme"


def test_bad_input_is_one_clear_line(vertex, monkeypatch):
    with pytest.raises(KitaruUsageError, match="needs --backend-option project=VALUE"):
        VertexBackend({"region": "r"})
    with pytest.raises(KitaruUsageError, match="asks for Ray resource 'launch_worker' that no Vertex worker offers"):
        backend(vertex.url).submit(spec(target=f"{REPO}/tests/integration/launch_flows.py:two_nodes"))
    with pytest.raises(KitaruUsageError, match="connect to a Kitaru server first"):
        backend(vertex.url).submit(ExecutionSpec(LaunchAction.RUN, "x", target="m:f"))
    assert vertex.jobs == {}
    with pytest.raises(KitaruBackendError, match="cannot reach Vertex AI at http://127.0.0.1:9") as info:
        backend("http://127.0.0.1:9").submit(spec())
    assert "\n" not in str(info.value)
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
    with pytest.raises(KitaruUsageError, match="credentials"):
        VertexBackend({"project": "p", "region": "r"}, container_registry="r").submit(spec())


def test_missing_image_fails_the_job(vertex):
    client = backend(vertex.url, image="registry.example.com/missing:1")
    submission = client.submit(spec())
    report = client.status(submission)
    assert report.state is BackendState.FAILED and "Unable to pull the image registry.example.com/missing:1" in report.message


def test_cancel_stops_every_replica_and_lookup_by_label(vertex):
    """A job of plain sleeping processes (no Ray): cancel stops every replica; resubmitting finds the job by label."""
    client = backend(vertex.url, worker_count=1)
    job = client._custom_job(spec(), "kitaru-vx-1-run", IMAGE)
    for pool in job.job_spec.worker_pool_specs:
        pool.container_spec.command[:] = ["python", "-c", "import time; time.sleep(60)"]
        del pool.container_spec.args[:]
    created = client._call("create_custom_job", parent=client._parent, custom_job=job)
    submission = Submission("vertex", "vx-1", created.name)
    assert client.submit(spec()).submission_id == created.name  # found by its label: no second job
    assert len(vertex.jobs) == 1
    assert client.status(submission).state is BackendState.RUNNING
    client.cancel(submission)
    wait_for(lambda: vertex.jobs[created.name]["state"] == "JOB_STATE_CANCELLED", timeout=30, interval=0.1)
    assert client.status(submission).state is BackendState.STOPPED
    client.cancel(submission)  # idempotent
    assert (
        client.status(Submission("vertex", "x", "projects/acme/locations/europe-west4/customJobs/404")).state
        is BackendState.STOPPED
    )


@pytest.mark.ray
def test_two_node_cluster_from_cluster_spec_runs_the_flow(vertex, kitaru_home, monkeypatch, tmp_path):
    """The CustomJob's two replicas run the launcher: a real two-node Ray cluster whose head drives the flow.
    The driver's API key is not in the job: the head's launcher reads it from Secret Manager (a stand-in, with
    the real client and application default credentials)."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient
    from kitaru.backends._standins.secretmanager import SecretManagerStandIn
    from kitaru.runtime.launch._secrets import SECRET_MANAGER_ENDPOINT_ENV

    with (
        remote_server(resolve_database_url(), monkeypatch) as server_url,
        SecretManagerStandIn({"projects/acme/secrets/kitaru-api-key": [os.environ["KITARU_API_KEY"]]}) as secrets,
    ):
        key = os.environ["KITARU_API_KEY"]
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(secrets.credentials_file(tmp_path / "adc.json")))
        monkeypatch.setenv(SECRET_MANAGER_ENDPOINT_ENV, secrets.url)  # the replicas' "image" reaches the stand-in
        version = "projects/acme/secrets/kitaru-api-key/versions/latest"
        client = backend(vertex.url, worker_count=1, worker_ray_resources={"launch_worker": 1}, api_key_secret=version)
        run = ExecutionSpec(
            LaunchAction.RUN,
            "vertex-e2e",
            target="tests/integration/launch_flows.py:two_nodes",
            inputs={"tag": "vertex"},
            server_url=server_url,
            api_key=os.environ["KITARU_API_KEY"],
            storage_url=(kitaru_home / "storage").as_uri(),
        )
        submission = client.submit(run)
        assert key not in json.dumps(vertex.jobs[submission.submission_id])
        job_id = submission.submission_id.rsplit("/", 1)[-1]
        logs = lambda: vertex.log(job_id) + vertex.log(job_id, "workerpool1-0")  # noqa: E731
        try:
            report = wait_for(lambda: (r := client.status(submission)).state.is_finished and r, timeout=240, interval=0.5)
        except TimeoutError:
            pytest.fail(f"the job did not end within 240 s: {logs()}")
        assert secrets.accessed == ["projects/acme/secrets/kitaru-api-key/versions/1"]
        assert report.state is BackendState.SUCCEEDED, logs()
        result = KitaruClient().executions.get("vertex-e2e").result()
        assert result["tag"] == "vertex" and result["driver_node"] != result["checkpoint_node"]


@pytest.mark.ray
def test_a_driver_joined_to_the_shared_ray(ray_session, kitaru_home, monkeypatch, tmp_path):
    """The stand-in runs only the primary replica's driver, joined to the tests' Ray (no second node): the
    protocol round trip with a real driver, at the cost of one process."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient

    with (
        remote_server(resolve_database_url(), monkeypatch) as server_url,
        standins.vertex(tmp_path, join_ray=ray_session) as standin,
    ):
        client = backend(standin.url)
        run = ExecutionSpec(
            LaunchAction.RUN,
            "vertex-joined",
            target="tests.integration.container_flows:hello",
            inputs={"name": "vertex"},
            server_url=server_url,
            api_key=os.environ["KITARU_API_KEY"],
            storage_url=(kitaru_home / "storage").as_uri(),
        )
        submission = client.submit(run)
        report = wait_for(lambda: (r := client.status(submission)).state.is_finished and r, timeout=120, interval=0.2)
        assert report.state is BackendState.SUCCEEDED, standin.log(submission.submission_id.rsplit("/", 1)[-1])
        assert KitaruClient().executions.get("vertex-joined").result() == "hello vertex"
        assert client.submit(run) == submission  # found by its label
