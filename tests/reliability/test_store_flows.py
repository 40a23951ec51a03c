"""Flows end to end with S3 (moto), GCS (fake-gcs-server) and Azure (Azurite) as the stack's storage.

A fan-out, a resume after the driver is SIGKILLed, and a replay: each on every object store, then the
storage is checked whole (every object's BLAKE3 digest matches its name, every committed output exists).
"""

from __future__ import annotations

import json
import random
import uuid

import blake3
import pytest

from kitaru import KitaruClient
from kitaru.storage import Storage
from kitaru.testing import wait_for

pytestmark = pytest.mark.ray
OBJECT_STORES = ["s3", "gs", "abfs"]


@pytest.fixture(params=OBJECT_STORES)
def cloud_stack(request, ray_session, kitaru_home, tmp_path, monkeypatch):
    """A stack named ``cloud`` whose storage is a fresh prefix on the store, used by every run (``KITARU_STACK``)."""
    from conftest import STORE_EMULATORS

    emulator = request.getfixturevalue(STORE_EMULATORS[request.param])
    url = f"{emulator.url}/flows-{uuid.uuid4().hex[:8]}"
    KitaruClient().stacks.create("cloud", storage_url=url, storage_options=emulator.options)
    monkeypatch.setenv("KITARU_STACK", "cloud")
    return Storage(url, emulator.options)


def assert_store_is_whole(storage: Storage, execution) -> None:
    for digest in storage.list_objects():
        uri = storage.uri_for(storage.object_path(digest))
        assert blake3.blake3(storage.fs.cat_file(storage.fs._strip_protocol(uri))).hexdigest() == digest, f"corrupt {uri}"
    for call in execution.checkpoints:
        if call.status == "completed":
            assert call.output is not None and call.output.uri.startswith(storage.url)
            assert storage.exists(call.output.uri), f"committed output {call.output.uri} is missing"


def test_fanout_and_replay_on_the_store(cloud_stack, tmp_path):
    from crash_flows import EXPECTED, fanout

    counter_dir = tmp_path / "counters"
    counter_dir.mkdir()
    handle = fanout.run(str(counter_dir), 8, -1, -1, cache=False)
    assert handle.wait(timeout=120) == EXPECTED["fanout"]()
    client = KitaruClient()
    execution = client.executions.get(handle.exec_id)
    assert len(execution.checkpoints) == 9
    assert_store_is_whole(cloud_stack, execution)
    artifact = next(a for a in client.artifacts.list(exec_id=handle.exec_id) if a.invocation_id == "combine")
    assert artifact.load() == EXPECTED["fanout"]() and artifact.digest_algorithm == "blake3"

    replay = client.executions.replay(handle.exec_id, at="combine")
    assert replay.wait(timeout=120) == EXPECTED["fanout"]()
    replayed = client.executions.get(replay.exec_id)
    assert {c.status for c in replayed.checkpoints if c.name == "step"} == {"replayed"}
    assert_store_is_whole(cloud_stack, replayed)


def test_driver_sigkill_then_resume_on_the_store(cloud_stack, ray_session, kitaru_home, tmp_path):
    from crash_flows import EXPECTED
    from test_crash_injection import run_driver_until_killed

    counter_dir = tmp_path / "counters"
    counter_dir.mkdir()
    exec_id = run_driver_until_killed(kitaru_home, ray_session, "chain", counter_dir, random.Random(7))
    client = KitaruClient()
    wait_for(lambda: client.executions.get(exec_id).status in ("interrupted", "completed"), timeout=30, message="lease lapse")
    before = client.executions.get(exec_id)
    committed = {c.invocation_id for c in before.checkpoints if c.status == "completed"}
    if before.status == "interrupted":
        result = client.executions.resume(exec_id).wait(timeout=120)
    else:
        result = before.result()
    assert result == EXPECTED["chain"]()
    after = client.executions.get(exec_id)
    runs = {path.name: len(path.read_text().splitlines()) for path in counter_dir.iterdir()}
    for call in after.checkpoints:
        if call.invocation_id in committed:
            index = 0 if call.invocation_id == "step" else int(call.invocation_id.rsplit("_", 1)[1]) - 1
            assert runs[f"step_{index}"] == 1, f"{call.invocation_id} was committed before the crash but ran again"
    assert_store_is_whole(cloud_stack, after)


def test_a_flow_on_a_brokered_stack_in_remote_mode(ray_session, kitaru_home, s3_emulator, tmp_path, monkeypatch):
    """Remote mode: the stack holds no keys; the driver and its workers get STS credentials from the server."""
    import boto3
    from crash_flows import fanout

    from conftest import remote_server, resolve_database_url

    iam = boto3.client(
        "iam", endpoint_url=s3_emulator.endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=f"kitaru-flows-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=json.dumps(trust))
    with remote_server(resolve_database_url(), monkeypatch):
        client = KitaruClient()
        client.secrets.set("aws-root", aws_access_key_id="test", aws_secret_access_key="test")
        url = f"s3://kitaru/brokered-{uuid.uuid4().hex[:8]}"
        credentials = {
            "provider": "aws",
            "role_arn": role["Role"]["Arn"],
            "secret": "aws-root",
            "sts_endpoint_url": s3_emulator.endpoint,
        }
        client.stacks.create(
            "brokered",
            storage_url=url,
            storage_options={"endpoint_url": s3_emulator.endpoint, "client_kwargs": {"region_name": "us-east-1"}},
            backend_options={"credentials": credentials},
        )
        monkeypatch.setenv("KITARU_STACK", "brokered")
        counter_dir = tmp_path / "counters"
        counter_dir.mkdir()
        handle = fanout.run(str(counter_dir), 4, -1, -1, cache=False)
        assert handle.wait(timeout=120) == sum(i * 10 + 1 for i in range(4))
        execution = client.executions.get(handle.exec_id)
        recorded = client.service.get_execution(handle.exec_id, with_calls=False)["settings"]["storage_options"]
        assert recorded == {
            "endpoint_url": s3_emulator.endpoint,
            "client_kwargs": {"region_name": "us-east-1"},
            "kitaru_broker": "brokered",
        }
        assert_store_is_whole(Storage(url, s3_emulator.options), execution)
