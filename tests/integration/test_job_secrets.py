"""The Kitaru API key of a Vertex or SageMaker job comes from the cloud's secret store, never the job's environment.

AWS Secrets Manager is moto's real server. Google ships no Secret Manager emulator: its
``AccessSecretVersion`` is the local stand-in of ``kitaru.backends._standins.secretmanager``, read
by the real ``google-cloud-secret-manager`` client (REST transport) with real application default
credentials carrying the stand-in's token.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import container_standins as standins
import pytest

from kitaru.backends._standins.secretmanager import SecretManagerStandIn
from kitaru.contracts.launch import ExecutionSpec, LaunchAction
from kitaru.errors import KitaruUsageError
from kitaru.runtime.launch._secrets import API_KEY_SECRET_ENV, SECRET_MANAGER_ENDPOINT_ENV, read_api_key, secret_reference

VERSION = "projects/acme/secrets/kitaru-api-key/versions/latest"


@pytest.fixture
def aws_secrets(s3_emulator, monkeypatch):
    """boto3 in this process and its children reaches moto's Secrets Manager; returns a client of it."""
    import boto3

    standins.aws_test_credentials(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_emulator.endpoint)
    return boto3.client("secretsmanager", region_name="us-east-1")


@pytest.fixture
def gcp_secrets(tmp_path, monkeypatch):
    with SecretManagerStandIn({"projects/acme/secrets/kitaru-api-key": ["old-key", "gcp-key"]}) as standin:
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(standin.credentials_file(tmp_path / "adc.json")))
        monkeypatch.setenv(SECRET_MANAGER_ENDPOINT_ENV, standin.url)
        yield standin


def test_the_key_is_read_from_aws_secrets_manager(aws_secrets):
    arn = aws_secrets.create_secret(Name="kitaru/api-key", SecretString="aws-key")["ARN"]
    aws_secrets.create_secret(Name="kitaru/as-json", SecretString=json.dumps({"api_key": "json-key"}))
    aws_secrets.create_secret(Name="kitaru/blank", SecretString=" ")
    read = lambda secret: read_api_key(secret_reference("aws-secretsmanager", secret, region="us-east-1"))  # noqa: E731
    assert read(arn) == read("kitaru/api-key") == {"KITARU_API_KEY": "aws-key"}
    assert read("kitaru/as-json") == {"KITARU_API_KEY": "json-key"}  # the console's key/value form
    with pytest.raises(KitaruUsageError, match="secret kitaru/missing: ResourceNotFoundException: ") as missing:
        read("kitaru/missing")
    with pytest.raises(KitaruUsageError, match="secret kitaru/blank is empty"):
        read("kitaru/blank")
    with pytest.raises(KitaruUsageError, match="is not a secret reference"):
        read_api_key({API_KEY_SECRET_ENV: "kitaru/api-key"})
    assert "\n" not in str(missing.value)
    assert read_api_key({}) == {}  # no reference: the key (if any) is in the environment


def test_the_key_is_read_from_secret_manager(gcp_secrets, tmp_path, monkeypatch):
    read = lambda secret: read_api_key({**os.environ, **secret_reference("gcp-secretmanager", secret)})  # noqa: E731
    assert read(VERSION) == {"KITARU_API_KEY": "gcp-key"}
    assert read(VERSION.replace("latest", "1")) == {"KITARU_API_KEY": "old-key"}
    assert gcp_secrets.accessed == [
        "projects/acme/secrets/kitaru-api-key/versions/2",
        "projects/acme/secrets/kitaru-api-key/versions/1",
    ]
    with pytest.raises(KitaruUsageError, match="Secret Manager projects/acme/secrets/nope/versions/1: 404 ") as missing:
        read("projects/acme/secrets/nope/versions/1")
    assert "\n" not in str(missing.value)
    adc = json.loads((tmp_path / "adc.json").read_text())
    (tmp_path / "other.json").write_text(json.dumps({**adc, "token": "someone-elses"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "other.json"))
    with pytest.raises(KitaruUsageError, match="credentials could not read projects/acme/.*check its service account"):
        read(VERSION)  # refused, and no new token from Google's token endpoint (unreachable here)


def test_a_head_that_cannot_read_its_secret_stops_with_one_line(aws_secrets, tmp_path):
    """The launcher reads the secret before it starts Ray: a missing secret ends the node at once, exit status 2."""
    config = tmp_path / "resourceconfig.json"
    config.write_text(json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]}))
    env = {**os.environ, **secret_reference("aws-secretsmanager", "kitaru/missing", region="us-east-1")}
    done = subprocess.run(
        [sys.executable, "-m", "kitaru.runtime.launch", "--resourceconfig", str(config), "--", "run", "m:f", "--exec-id", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "error: cannot read the Kitaru API key from AWS Secrets Manager secret kitaru/missing: ResourceNotFoundException: "
        "Secrets Manager can't find the specified secret.; check the secret and that the job's role may "
        "secretsmanager:GetSecretValue it."
    ]


def spec() -> ExecutionSpec:
    return ExecutionSpec(
        LaunchAction.RUN,
        "sec-1",
        target="m:f",
        server_url="http://kitaru.example.com",
        api_key="plain-key",
        storage_url="s3://b/k",
    )


def test_with_the_option_no_job_carries_the_key():
    from kitaru.backends.sagemaker import SageMakerBackend
    from kitaru.backends.vertex import VertexBackend

    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:kitaru/api-key-AbCdEf"
    aws = {"region": "us-east-1", "role_arn": standins.SAGEMAKER_ROLE, "image": standins.SAGEMAKER_IMAGE}
    request = SageMakerBackend({**aws, "api_key_secret": arn})._request(spec(), standins.SAGEMAKER_IMAGE)
    assert "plain-key" not in json.dumps(request)
    reference = json.loads(request["Environment"][API_KEY_SECRET_ENV])
    assert reference == {"source": "aws-secretsmanager", "secret": arn, "region": "eu-west-1"}  # the ARN's region
    by_name = SageMakerBackend({**aws, "api_key_secret": "kitaru/api-key"})._request(spec(), standins.SAGEMAKER_IMAGE)
    assert json.loads(by_name["Environment"][API_KEY_SECRET_ENV])["region"] == "us-east-1"
    assert SageMakerBackend(aws)._request(spec(), standins.SAGEMAKER_IMAGE)["Environment"]["KITARU_API_KEY"] == "plain-key"

    gcp = {"project": "acme", "region": "europe-west4", "anonymous": True, "api_endpoint": "http://127.0.0.1:9"}
    job = VertexBackend({**gcp, "api_key_secret": VERSION})._custom_job(spec(), "kitaru-sec-1-run", standins.VERTEX_IMAGE)
    for pool in job.job_spec.worker_pool_specs:
        env = {e.name: e.value for e in pool.container_spec.env}
        assert "KITARU_API_KEY" not in env and json.loads(env[API_KEY_SECRET_ENV])["secret"] == VERSION

    with pytest.raises(KitaruUsageError, match="is not a secret version: projects/P/secrets/S/versions/V"):
        VertexBackend({**gcp, "api_key_secret": "kitaru-api-key"})
    with pytest.raises(KitaruUsageError, match="is not a Secrets Manager secret ARN"):
        SageMakerBackend({**aws, "api_key_secret": "arn:aws:s3:::bucket"})


def test_a_sagemaker_job_that_cannot_read_its_secret_fails_with_the_launchers_line(aws_secrets, kitaru_home, tmp_path):
    """The head's launcher writes why it stopped to SageMaker's failure file: the job's ``FailureReason``, and the
    one line the launch path raises."""
    from kitaru import KitaruClient
    from kitaru.backends.remote import wait_started
    from kitaru.backends.sagemaker import SageMakerBackend
    from kitaru.errors import KitaruBackendError

    with standins.sagemaker(tmp_path / "hosts") as sagemaker:
        options = {"region": "us-east-1", "role_arn": standins.SAGEMAKER_ROLE, "endpoint_url": sagemaker.url,
                   "output_path": "s3://kitaru/out", "image": standins.SAGEMAKER_IMAGE, "instance_count": 1,
                   "api_key_secret": "kitaru/not-there"}  # fmt: skip
        backend = SageMakerBackend(options)
        submission = backend.submit(spec())
        with pytest.raises(KitaruBackendError) as info:
            wait_started(backend, submission, KitaruClient().service, lambda record: True)
    message = str(info.value)
    assert "before its driver started execution 'sec-1': AlgorithmError: cannot read the Kitaru API key " in message
    assert "from AWS Secrets Manager secret kitaru/not-there: ResourceNotFoundException" in message and "\n" not in message
