"""The ``sagemaker`` backend through real boto3.

No AWS account is reachable here, and moto completes training jobs at once and cannot stop them: the
SageMaker API is a local stand-in (``kitaru.backends._standins.sagemaker``) speaking JSON 1.1 at
``endpoint_url``, whose responses are checked against botocore's output shapes. It runs each host as
a local process with its own ``resourceconfig.json``; the hosts run the real cluster launcher and
form a real two-node Ray cluster.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import container_standins as standins
import pytest

from kitaru.backends.sagemaker import SageMakerBackend, report_from_description
from kitaru.contracts.launch import BackendState, ExecutionSpec, LaunchAction, Submission
from kitaru.errors import KitaruBackendError, KitaruUsageError
from kitaru.testing import wait_for

REPO = Path(__file__).resolve().parents[2]
IMAGE = standins.SAGEMAKER_IMAGE
ROLE = standins.SAGEMAKER_ROLE


@pytest.fixture(autouse=True)
def aws_credentials(monkeypatch):
    standins.aws_test_credentials(monkeypatch)


@pytest.fixture
def sagemaker(tmp_path):
    with standins.sagemaker(tmp_path) as standin:  # checks every response matched botocore's output shapes
        yield standin


def backend(url: str, **options) -> SageMakerBackend:
    return SageMakerBackend(
        {
            "region": "us-east-1",
            "role_arn": ROLE,
            "endpoint_url": url,
            "output_path": "s3://kitaru/out",
            "image": IMAGE,
            **options,
        }
    )


def spec(exec_id="sm-1", target="tests.integration.container_flows:hello", action=LaunchAction.RUN, **kwargs):
    return ExecutionSpec(action, exec_id, target=target, server_url="http://kitaru.example.com", api_key="key-1", **kwargs)


def test_request_layout():
    request = backend("http://127.0.0.1:9", worker_ray_resources={"gpu_node": 1})._request(spec(storage_url="s3://b/k"), IMAGE)
    algorithm = request["AlgorithmSpecification"]
    assert algorithm["ContainerEntrypoint"] == ["python", "-m", "kitaru.runtime.launch"]
    assert algorithm["ContainerArguments"][:3] == ["--", "run", "tests.integration.container_flows:hello"]
    assert request["ResourceConfig"]["InstanceCount"] == 2 and request["StoppingCondition"]["MaxRuntimeInSeconds"] == 86400
    assert request["Environment"]["KITARU_STORAGE_URL"] == "s3://b/k" and "KITARU_HOME" not in request["Environment"]
    assert request["Environment"]["RAY_AUTH_MODE"] == "token" and len(request["Environment"]["RAY_AUTH_TOKEN"]) > 30
    assert request["Environment"]["KITARU_RAY_WORKER_START_ARGS"] == "--resources '{\"gpu_node\": 1}'"
    import botocore.session

    from kitaru.backends._standins.sagemaker import shape_errors

    model = botocore.session.get_session().get_service_model("sagemaker")
    assert shape_errors(model.operation_model("CreateTrainingJob").input_shape, request) == []


def test_status_mapping():
    assert (
        report_from_description({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Starting"}).state is BackendState.PENDING
    )
    assert (
        report_from_description({"TrainingJobStatus": "InProgress", "SecondaryStatus": "Training"}).state is BackendState.RUNNING
    )
    failed = report_from_description(
        {"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "FailureReason": "AlgorithmError: x"}
    )
    assert (failed.state, failed.message) == (BackendState.FAILED, "AlgorithmError: x")
    late = report_from_description(
        {"TrainingJobStatus": "Stopped", "SecondaryStatus": "MaxRuntimeExceeded", "StoppingCondition": {"MaxRuntimeInSeconds": 5}}
    )
    assert late.state is BackendState.FAILED and "max_runtime_seconds (5 s)" in late.message
    assert report_from_description({"TrainingJobStatus": "Stopped", "SecondaryStatus": "Stopped"}).state is BackendState.STOPPED


def test_bad_input_is_one_clear_line(sagemaker):
    with pytest.raises(KitaruUsageError, match="needs --backend-option role_arn=VALUE"):
        SageMakerBackend({"region": "us-east-1"})
    with pytest.raises(KitaruUsageError, match="needs an s3:// output"):
        backend(sagemaker.url, output_path=None).submit(spec())
    with pytest.raises(KitaruUsageError, match="asks for Ray resource 'launch_worker' that no SageMaker host offers"):
        backend(sagemaker.url).submit(spec(target=f"{REPO}/tests/integration/launch_flows.py:two_nodes"))
    with pytest.raises(KitaruUsageError, match="over SageMaker's 256"):
        backend(sagemaker.url).submit(spec(inputs={"text": "x" * 300}))
    assert sagemaker.jobs == {}
    with pytest.raises(KitaruBackendError, match="cannot reach SageMaker at http://127.0.0.1:9") as info:
        backend("http://127.0.0.1:9").submit(spec())
    assert "\n" not in str(info.value)
    # A fresh process without credentials (botocore keeps what it resolved once in a process).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_SHARED_CREDENTIALS_FILE="/nonexistent", AWS_CONFIG_FILE="/nonexistent", AWS_EC2_METADATA_DISABLED="true")
    code = (
        "from kitaru.backends.sagemaker import SageMakerBackend; from kitaru.contracts.launch import ExecutionSpec, LaunchAction;"
        f"SageMakerBackend({{'region': 'us-east-1', 'role_arn': '{ROLE}', 'endpoint_url': '{sagemaker.url}', 'output_path': 's3://k/o',"
        f" 'image': '{IMAGE}'}}).submit(ExecutionSpec(LaunchAction.RUN, 'e', target='m:f', server_url='http://s'))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False)
    assert "KitaruUsageError: no AWS credentials: configure a profile" in done.stderr.strip().splitlines()[-1]
    assert sagemaker.jobs == {}


def test_missing_image_fails_the_job(sagemaker):
    client = backend(sagemaker.url, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/missing:1")
    report = client.status(client.submit(spec()))
    assert report.state is BackendState.FAILED and "Cannot pull the algorithm image" in report.message


def test_stop_moves_stopping_to_stopped_and_names_stay_unique(sagemaker):
    """Hosts of plain sleeping processes (no Ray): a stop ends them; a new resume of the ended job gets a new name."""
    import boto3

    client = backend(sagemaker.url)
    request = client._request(spec(action=LaunchAction.RESUME), IMAGE)
    request["AlgorithmSpecification"].update(
        ContainerEntrypoint=["python", "-c", "import time; time.sleep(60)"], ContainerArguments=["--"]
    )
    boto = boto3.client("sagemaker", region_name="us-east-1", endpoint_url=sagemaker.url)
    boto.create_training_job(**request)
    submission = Submission("sagemaker", "sm-1", request["TrainingJobName"])
    assert client.submit(spec(action=LaunchAction.RESUME)) == client._submission(
        "sm-1", request["TrainingJobName"]
    )  # still running
    assert client.status(submission).state is BackendState.RUNNING
    client.cancel(submission)
    assert boto.describe_training_job(TrainingJobName=submission.submission_id)["TrainingJobStatus"] in ("Stopping", "Stopped")
    wait_for(
        lambda: (
            client.status(submission).state is BackendState.STOPPED
            and sagemaker.jobs[submission.submission_id]["TrainingJobStatus"] == "Stopped"
        ),
        timeout=30,
        interval=0.1,
    )
    client.cancel(submission)  # idempotent
    assert client.status(Submission("sagemaker", "x", "nope")).state is BackendState.STOPPED
    # The old job ended: a resume is a new job (its image is missing, so no host starts a Ray node here).
    again = backend(sagemaker.url, image="123456789012.dkr.ecr.us-east-1.amazonaws.com/missing:1").submit(
        spec(action=LaunchAction.RESUME)
    )
    assert again.submission_id == "kitaru-sm-1-resume-2"


@pytest.mark.ray
def test_two_node_cluster_from_resourceconfig_runs_the_flow(sagemaker, kitaru_home, monkeypatch, s3_emulator):
    """The training job's two hosts run the launcher: a real two-node Ray cluster whose head drives the flow.
    The driver's API key is not in the job: the head's launcher reads it from AWS Secrets Manager (moto's server)."""
    import boto3

    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient

    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_emulator.endpoint)  # for this process and the hosts
    with remote_server(resolve_database_url(), monkeypatch) as server_url:
        key = os.environ["KITARU_API_KEY"]
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(Name=f"kitaru/{kitaru_home.parent.name}", SecretString=key)["ARN"]
        client = backend(sagemaker.url, worker_ray_resources={"launch_worker": 1}, api_key_secret=arn)
        run = ExecutionSpec(
            LaunchAction.RUN,
            "sagemaker-e2e",
            target="tests/integration/launch_flows.py:two_nodes",
            inputs={"tag": "sagemaker"},
            server_url=server_url,
            api_key=os.environ["KITARU_API_KEY"],
            storage_url=(kitaru_home / "storage").as_uri(),
        )
        submission = client.submit(run)
        assert key not in json.dumps(sagemaker.jobs[submission.submission_id]["Environment"])
        logs = lambda: sagemaker.log(submission.submission_id) + sagemaker.log(submission.submission_id, "algo-2")  # noqa: E731
        try:
            report = wait_for(lambda: (r := client.status(submission)).state.is_finished and r, timeout=240, interval=0.5)
        except TimeoutError:
            pytest.fail(f"the job did not end within 240 s: {logs()}")
        assert report.state is BackendState.SUCCEEDED, logs()
        result = KitaruClient().executions.get("sagemaker-e2e").result()
        assert result["tag"] == "sagemaker" and result["driver_node"] != result["checkpoint_node"]


@pytest.mark.ray
def test_a_driver_joined_to_the_shared_ray(ray_session, kitaru_home, monkeypatch, tmp_path):
    """The stand-in runs only the first host's driver, joined to the tests' Ray (no second node): the
    protocol round trip with a real driver, at the cost of one process."""
    from conftest import remote_server, resolve_database_url
    from kitaru import KitaruClient

    with (
        remote_server(resolve_database_url(), monkeypatch) as server_url,
        standins.sagemaker(tmp_path, join_ray=ray_session) as standin,
    ):
        client = backend(standin.url)
        run = ExecutionSpec(
            LaunchAction.RUN,
            "sagemaker-joined",
            target="tests.integration.container_flows:hello",
            inputs={"name": "sagemaker"},
            server_url=server_url,
            api_key=os.environ["KITARU_API_KEY"],
            storage_url=(kitaru_home / "storage").as_uri(),
        )
        submission = client.submit(run)
        report = wait_for(lambda: (r := client.status(submission)).state.is_finished and r, timeout=120, interval=0.2)
        assert report.state is BackendState.SUCCEEDED, standin.log(submission.submission_id)
        assert KitaruClient().executions.get("sagemaker-joined").result() == "hello sagemaker"
        assert client.submit(run) == submission  # the same job
        assert standin.shape_violations == []
