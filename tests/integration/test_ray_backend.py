"""The ``ray`` backend against real Ray clusters started on this machine.

One cluster (``ray_cluster`` in conftest.py: a head and a second node offering the custom
resource ``gpu_node``, each on its own ports and in its own process group) serves every test of
the session; a token-auth test starts its own head. Run through ``/work/bin/raylock`` on shared machines.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
import uuid

import numpy as np
import pytest

from kitaru import KitaruClient
from kitaru.backends import get_backend, launch, validate_backend_options
from kitaru.backends.local_cluster import LocalRayCluster, free_port
from kitaru.backends.ray import RayBackend
from kitaru.contracts.launch import BackendState, ExecutionSpec, LaunchAction
from kitaru.errors import KitaruBackendError, KitaruNotFoundError, KitaruUsageError
from kitaru.testing import wait_for
from tests.integration import ray_flows

TERMINAL = ("completed", "failed", "cancelled")


# --- options, no cluster ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs the cluster's dashboard address"),
        ({"address": "ray://head:10001"}, "not the Jobs API's http(s) URL"),
        ({"address": "http://h:8265", "runtime_env": "{not json"}, "runtime_env is not valid JSON"),
        ({"address": "http://h:8265", "runtime_env": "[1]"}, "must be a JSON object"),
        ({"address": "http://h:8265", "runtime_env": {"pipp": ["x"]}}, "unknown field(s) ['pipp']"),
        ({"address": "http://h:8265", "runtime_env": {"env_vars": {"OPENAI_API_KEY": "sk"}}}, "look like secrets"),
        ({"address": "http://h:8265", "auto_resume": "maybe"}, "auto_resume option is true or false"),
        ({"address": "http://h:8265", "adress": "x"}, "unknown option(s) ['adress']"),
    ],
)
def test_bad_options_are_one_clear_line(options, message):
    with pytest.raises(KitaruUsageError) as caught:
        validate_backend_options("ray", options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_options_are_normalised():
    options = validate_backend_options(
        "ray", {"address": "http://h:8265/", "runtime_env": '{"pip": ["httpx"]}', "auto_resume": "true"}
    )
    assert options["address"] == "http://h:8265"
    assert options["runtime_env"] == {"pip": ["httpx"]}
    assert options["auto_resume"] is True


def test_the_api_key_never_reaches_the_runtime_env(tmp_path):
    backend = RayBackend({"address": "http://h:8265", "working_dir": str(tmp_path)})
    spec = ExecutionSpec(
        LaunchAction.RUN, "e1", stack="prod", target="m:f", server_url="http://kitaru:8383", api_key="kitaru-secret-key"
    )
    env = backend.runtime_env(spec, "kitaru-run-e1")
    assert "kitaru-secret-key" not in repr(env)
    assert env["env_vars"]["KITARU_SERVER_URL"] == "http://kitaru:8383"
    assert env["env_vars"]["KITARU_RAY_ADDRESS"] == "auto"
    assert env["working_dir"] == str(tmp_path)
    assert backend._entrypoint(spec, ["run", "m:f"]).startswith("KITARU_API_KEY=kitaru-secret-key python -m kitaru.runtime")


def test_unreachable_address_fails_naming_it(kitaru_home):
    address = f"http://127.0.0.1:{free_port()}"
    backend = get_backend("ray", {"address": address})
    with pytest.raises(KitaruBackendError) as caught:
        backend.submit(ExecutionSpec(LaunchAction.RUN, "e1", target="tests.integration.ray_flows:placement"))
    assert address in str(caught.value) and "\n" not in str(caught.value)


def test_stack_create_validates_ray_options(kitaru_home):
    stacks = KitaruClient().stacks
    with pytest.raises(KitaruUsageError, match="dashboard address"):
        stacks.create("prod", backend="ray")
    stack = stacks.create("prod", backend="ray", backend_options={"address": "http://h:8265", "runtime_env": '{"pip": []}'})
    assert stack.backend_options == {"address": "http://h:8265", "runtime_env": {"pip": []}}  # defaults are not stored


# --- a real cluster ---------------------------------------------------------------------------


def spec_for(home, target: str, inputs: dict, *, exec_id: str | None = None, action=LaunchAction.RUN) -> ExecutionSpec:
    return ExecutionSpec(
        action,
        exec_id or f"ray-{uuid.uuid4().hex[:10]}",
        stack="prod",
        target=target,
        inputs=inputs,
        home=str(home),
        environment={"KITARU_LEASE_SECONDS": "3"},
    )


def wait_terminal(backend, submission, exec_id: str, timeout: float = 180.0) -> dict:
    """The execution's record once terminal; fails with the job's own words if the job ends without one."""
    client = KitaruClient()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            record = client.service.get_execution(exec_id, with_calls=False)
        except KitaruNotFoundError:
            record = None
        if record is not None and record["status"] in TERMINAL:
            return record
        report = backend.status(submission)
        if report.state.is_finished and (record is None or record["status"] not in TERMINAL):
            time.sleep(1)  # the driver's last commit may land just after the job ends
            record = client.service.get_execution(exec_id, with_calls=False) if record else None
            if record is None or record["status"] not in TERMINAL:
                logs = "\n".join(backend.logs(submission))
                pytest.fail(f"job {submission.submission_id} is {report.state} ({report.message}); log:\n{logs}")
        time.sleep(0.5)
    pytest.fail(f"execution {exec_id} did not finish within {timeout} s")


def assert_output_written_by_the_actor_of(cluster, node_id: str) -> None:
    """The runtime actor of ``node_id`` runs there and stored an output that the driver's node's actor passed on to it.

    The driver runs on the head: only a forwarded write (``write_output`` called on another node's
    actor) starts an actor on ``node_id`` and runs that method as a task of its own there.
    """
    from ray.util.state import list_actors, list_tasks

    actors = [a for a in list_actors(address=cluster.dashboard_url, filters=[("state", "=", "ALIVE")]) if a.name]
    actor_ids = {a.actor_id for a in actors if a.name.startswith("kitaru-runtime-") and a.name.endswith(f"-{node_id}")}
    assert actor_ids, f"no runtime actor on node {node_id}: {sorted(a.name for a in actors)}"

    def writes() -> list:
        tasks = list_tasks(address=cluster.dashboard_url, filters=[("func_or_class_name", "=", "RuntimeActor.write_output")])
        return [t for t in tasks if t.actor_id in actor_ids and t.node_id == node_id and t.state == "FINISHED"]

    wait_for(writes, timeout=30, message=f"a finished write_output of the runtime actor on node {node_id}")


def wait_job_finished(backend, submission, timeout: float = 60.0) -> BackendState:
    deadline = time.monotonic() + timeout
    while not (state := backend.status(submission).state).is_finished:
        assert time.monotonic() < deadline, f"job {submission.submission_id} is still {state}"
        time.sleep(0.25)
    return state


@pytest.fixture
def prod(ray_cluster, kitaru_home):
    """The stack ``prod`` on the session's cluster; yields its backend."""
    KitaruClient().stacks.create("prod", backend="ray", backend_options={"address": ray_cluster.dashboard_url})
    return get_backend("ray", KitaruClient().stacks.get("prod").backend_options)


@pytest.mark.ray
def test_flow_runs_as_a_job_and_places_checkpoints_by_resource(ray_cluster, prod, kitaru_home):
    spec = spec_for(kitaru_home, "tests.integration.ray_flows:placement", {"x": 1})
    submission = prod.submit(spec)
    assert submission.submission_id == f"kitaru-run-{spec.exec_id}"
    assert prod.submit(spec) == submission  # a resubmission is idempotent
    record = wait_terminal(prod, submission, spec.exec_id)
    assert record["status"] == "completed", record.get("failure")

    execution = KitaruClient().executions.get(spec.exec_id)
    assert execution.result() == 22
    assert execution.dashboard_url == f"{ray_cluster.dashboard_url}/#/jobs/{submission.submission_id}"
    nodes = {call.invocation_id: call.attempts[-1].ray_node_id for call in execution.checkpoints}
    gpu_node = ray_cluster.node_with_resource("gpu_node")
    assert nodes["on_gpu_node"] == nodes["gpu_array"] == gpu_node
    assert all(nodes.values()) and set(nodes.values()) <= set(ray_cluster.node_ids())
    array = next(call for call in execution.checkpoints if call.invocation_id == "gpu_array").output
    assert (array.serializer, array.digest_algorithm) == ("arrow", "blake3")
    np.testing.assert_array_equal(array.load(), np.full(ray_flows.GPU_ARRAY_ITEMS, 1.0))
    assert_output_written_by_the_actor_of(ray_cluster, gpu_node)

    assert wait_job_finished(prod, submission) is BackendState.SUCCEEDED  # the driver exits once the execution ended
    assert any(f"driving execution {spec.exec_id}" in line for line in prod.logs(submission))
    followed = list(prod.logs(submission, follow=True))  # tail_job_logs: ends with the job
    assert any(f"execution {spec.exec_id} is completed" in line for line in followed)
    driver_log = list(KitaruClient().executions.driver_logs(spec.exec_id))
    assert any(f"driving execution {spec.exec_id}" in line for line in driver_log)
    assert prod.dashboard_url(submission) == execution.dashboard_url
    assert prod.submit(spec) == submission  # still the same job once it has ended: nothing resubmitted


@pytest.mark.ray
def test_a_resource_no_node_has_fails_after_the_checkpoint_timeout(prod, kitaru_home):
    spec = spec_for(kitaru_home, "tests.integration.ray_flows:unplaceable", {})
    record = wait_terminal(prod, prod.submit(spec), spec.exec_id)
    assert record["status"] == "failed"
    assert record["failure"]["invocation_id"] == "nowhere"
    assert "asked for resources {'no_such_node': 1} that no node of the Ray cluster offers" in record["failure"]["message"]


@pytest.mark.ray
def test_cancel_stops_the_job(prod, kitaru_home):
    spec = spec_for(kitaru_home, "tests.integration.ray_flows:sleeper", {"seconds": 600})
    submission = prod.submit(spec)
    client = KitaruClient()
    deadline = time.monotonic() + 120
    while prod.status(submission).state is not BackendState.RUNNING or not _exists(client, spec.exec_id):
        assert time.monotonic() < deadline, "the driver did not start"
        time.sleep(0.5)
    prod.cancel(submission)
    assert wait_job_finished(prod, submission) is BackendState.STOPPED
    prod.cancel(submission)  # idempotent


@pytest.mark.ray
def test_a_runtime_env_that_fails_to_build_surfaces_the_jobs_error(ray_cluster, kitaru_home):
    package = f"http://127.0.0.1:{free_port()}/kitaru-missing-package.zip"  # nothing serves it
    options = {"address": ray_cluster.dashboard_url, "runtime_env": {"py_modules": [package]}}
    KitaruClient().stacks.create("unbuildable", backend="ray", backend_options=options)
    spec = dataclasses.replace(spec_for(kitaru_home, "tests.integration.ray_flows:placement", {"x": 1}), stack="unbuildable")
    with pytest.raises(KitaruBackendError) as caught:
        launch(spec, KitaruClient().service, detach=False)
    message = str(caught.value)
    assert f"job kitaru-run-{spec.exec_id} ended (failed) before its driver started" in message
    assert "kitaru-missing-package.zip" in message and "\n" not in message


def _exists(client, exec_id: str) -> bool:
    try:
        client.service.get_execution(exec_id, with_calls=False)
        return True
    except KitaruNotFoundError:
        return False


@pytest.fixture(scope="module")
def token_cluster():
    """A head with Ray token auth on."""
    with LocalRayCluster(num_cpus=1, auth_token="kitaru-test-token-" + uuid.uuid4().hex) as cluster:
        yield cluster


@pytest.mark.ray
def test_token_auth(token_cluster, kitaru_home, monkeypatch):
    backend = get_backend("ray", {"address": token_cluster.dashboard_url, "python": sys.executable})
    spec = spec_for(kitaru_home, "tests.integration.ray_flows:placement", {"x": 1})
    monkeypatch.setenv("RAY_AUTH_TOKEN", "wrong-token")
    with pytest.raises(KitaruBackendError) as caught:
        backend.submit(spec)
    assert "refused" in str(caught.value) and token_cluster.dashboard_url in str(caught.value)
    assert "\n" not in str(caught.value)

    monkeypatch.setenv("RAY_AUTH_TOKEN", token_cluster.auth_token)
    backend = get_backend("ray", {"address": token_cluster.dashboard_url})
    submission = backend.submit(spec)
    assert backend.status(submission).state in (BackendState.PENDING, BackendState.RUNNING, BackendState.SUCCEEDED)
    backend.cancel(submission)
    assert os.environ["RAY_AUTH_TOKEN"] not in repr(backend.runtime_env(spec, submission.submission_id))


@pytest.mark.ray
def test_the_client_runs_and_invokes_on_the_ray_stack(prod, kitaru_home, tmp_path, monkeypatch):
    """`.run(stack="prod")` and an invoked deployment both become jobs; the invoked one runs the snapshot."""
    from tests.integration import ray_flows

    handle = ray_flows.placement.run(4, stack="prod")
    assert handle.wait(timeout=180) == 52
    assert KitaruClient().executions.get(handle.exec_id).dashboard_url.startswith(prod.options.address)

    module = tmp_path / "code" / "invoked_flows.py"
    module.parent.mkdir()
    module.write_text(
        "from kitaru import checkpoint, flow\n\n"
        "@checkpoint\ndef word():\n    return 'deployed'\n\n"
        "@flow\ndef which():\n    return word()\n"
    )
    monkeypatch.syspath_prepend(str(module.parent))
    import invoked_flows

    invoked_flows.which.deploy(stack="prod", tags=["prod"])
    module.write_text(module.read_text().replace("'deployed'", "'on disk'"))
    invoked = invoked_flows.which.invoke(tag="prod")
    assert invoked.wait(timeout=180) == "deployed"
    assert KitaruClient().executions.get(invoked.exec_id).metadata["deployment"] == {"flow": "which", "version": 1}


@pytest.mark.ray
def test_the_cli_creates_a_ray_stack_and_runs_on_it(ray_cluster, kitaru_home):
    import json

    from typer.testing import CliRunner

    from kitaru.cli import app

    runner = CliRunner()
    bad = runner.invoke(app, ["stack", "create", "prod", "--backend", "ray", "--backend-option", "runtime_env=[1]"])
    assert bad.exit_code != 0 and "dashboard address" in bad.output
    created = runner.invoke(
        app, ["stack", "create", "prod", "--backend", "ray", "--backend-option", f"address={ray_cluster.dashboard_url}"]
    )
    assert created.exit_code == 0, created.output
    ran = runner.invoke(
        app, ["run", "tests.integration.ray_flows:placement", "--stack", "prod", "--input", '{"x": 2}', "-o", "json"]
    )
    assert ran.exit_code == 0, ran.output
    assert json.loads(ran.stdout)["result"] == 32
