"""The backend conformance suite: every compute backend starts drivers from an execution spec,
reports their state, cancels them, survives a crash of its driver, carries the spec's settings to
the driver, and treats a resubmitted run as the same execution.

A backend joins the suite by adding one parameter to the ``case`` fixture: how to get the backend,
the stack a spec names, and how to interrupt its driver hard.

The container backends (kuberay, vertex, sagemaker) run against local stand-ins of their control
planes (no Kubernetes cluster or cloud account is reachable here; see ``tests/container_standins.py``):
the real client libraries talk to them, and they run the real driver as a local process joined to
the tests' Ray, recording into a Kitaru server. Their driver crash is the stand-in killing the
replica hard, as when its machine dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import backend_flows
import container_standins as standins
import pytest

from kitaru import KitaruClient
from kitaru.contracts.launch import Backend, ExecutionSpec, LaunchAction, Submission
from kitaru.errors import KitaruNotFoundError
from kitaru.testing import wait_for

HERE = Path(__file__).resolve().parent


@dataclasses.dataclass
class BackendCase:
    """One backend under test: the backend, the stack its specs name, and how to kill its driver."""

    backend: Backend
    stack: str
    interrupt: Callable[[Submission], None]
    ended: tuple[str, ...]  # what the execution reads as once its driver was interrupted
    crash: Callable[[Submission], None] | None = None  # the driver's machine dying (default: ``interrupt``)

    def kill(self, submission: Submission) -> None:
        (self.crash or self.interrupt)(submission)


def _request_cancel(submission: Submission) -> None:
    KitaruClient().service.request_cancel(submission.exec_id)


CONTAINER_BACKENDS = ("kuberay", "vertex", "sagemaker")


@pytest.fixture(params=["local", "process", "ray", *CONTAINER_BACKENDS])
def case(request, ray_session, kitaru_home, monkeypatch, tmp_path) -> Iterator[BackendCase]:
    from kitaru.backends import get_backend

    monkeypatch.setenv("KITARU_RAY_ADDRESS", ray_session)  # detached drivers join the shared Ray session
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("KITARU_LEASE_SECONDS", "2")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    monkeypatch.chdir(HERE)
    storage = kitaru_home / "stack-storage"
    if request.param in CONTAINER_BACKENDS:
        with contextlib.ExitStack() as stack:
            yield _container_case(request.param, stack, ray_session, storage, tmp_path / "replicas", monkeypatch)
        return
    if request.param == "ray":  # jobs on the test cluster (a head and a second node), this directory as working_dir
        options = {"address": request.getfixturevalue("ray_cluster").dashboard_url}
        KitaruClient().stacks.create("conformance", backend="ray", storage_url=storage.as_uri(), backend_options=options)
        backend = get_backend("ray", options)
        yield BackendCase(backend, "conformance", backend.cancel, ("interrupted",))
        return
    KitaruClient().stacks.create("conformance", backend="local", storage_url=storage.as_uri())
    backend = get_backend(request.param)
    if request.param == "local":
        yield BackendCase(backend, "conformance", _request_cancel, ("cancelled",))
        return
    yield BackendCase(backend, "conformance", backend.cancel, ("interrupted",))


def _container_case(name: str, stack: contextlib.ExitStack, ray: str, storage: Path, workdir: Path, monkeypatch) -> BackendCase:
    """A container backend on its stand-in control plane, its drivers recording into a Kitaru server on this machine."""
    from conftest import remote_server, resolve_database_url
    from kitaru.backends import get_backend

    stack.enter_context(remote_server(resolve_database_url(), monkeypatch))
    env = standins.image_env(HERE)
    if name == "kuberay":
        api, operator = stack.enter_context(
            standins.kuberay(workdir, ray_address=ray, api_key=os.environ["KITARU_API_KEY"], env=env)
        )
        options = {"api_server": api.url, "namespace": "ns", "image": standins.KUBERAY_IMAGE}
        crash = lambda submission: operator.kill(submission.submission_id, "ns")  # noqa: E731
    elif name == "vertex":
        vertex = stack.enter_context(standins.vertex(workdir, env=env, join_ray=ray))
        options = {"project": "acme", "region": "europe-west4", "api_endpoint": vertex.url, "anonymous": True,
                   "image": standins.VERTEX_IMAGE}  # fmt: skip
        crash = lambda submission: vertex.kill(submission.submission_id)  # noqa: E731
    else:
        standins.aws_test_credentials(monkeypatch)
        sagemaker = stack.enter_context(standins.sagemaker(workdir, env=env, join_ray=ray))
        options = {"region": "us-east-1", "role_arn": standins.SAGEMAKER_ROLE, "endpoint_url": sagemaker.url,
                   "output_path": "s3://kitaru/out", "image": standins.SAGEMAKER_IMAGE}  # fmt: skip
        crash = lambda submission: sagemaker.kill(submission.submission_id)  # noqa: E731
    KitaruClient().stacks.create("conformance", backend=name, storage_url=storage.as_uri(), backend_options=options)
    backend = get_backend(name, options)
    return BackendCase(backend, "conformance", backend.cancel, ("interrupted",), crash=crash)


def spec(case: BackendCase, action: LaunchAction, exec_id: str, **fields: Any) -> ExecutionSpec:
    """A spec recorded where this process is configured, on the case's stack."""
    from kitaru.config import resolve_settings
    from kitaru.flow import connection

    return ExecutionSpec(action=action, exec_id=exec_id, **{**connection(resolve_settings(), case.stack), **fields})


def run_spec(case: BackendCase, log: Path, gate: Path, exec_id: str | None = None) -> ExecutionSpec:
    return spec(
        case,
        LaunchAction.RUN,
        exec_id or str(uuid.uuid4()),
        target="backend_flows:two_steps",
        function=backend_flows.two_steps,
        inputs={"log": str(log), "gate": str(gate)},
    )


def committed(exec_id: str, invocation_id: str) -> bool:
    return status(exec_id) != "absent" and any(
        c.invocation_id == invocation_id and c.status == "completed" for c in KitaruClient().executions.get(exec_id).checkpoints
    )


def status(exec_id: str) -> str:
    """The execution's status; ``absent`` before its driver recorded it (a remote job starts after submit returns)."""
    try:
        return KitaruClient().service.get_execution(exec_id, with_calls=False)["status"]
    except KitaruNotFoundError:
        return "absent"


@pytest.mark.ray
def test_submit_runs_the_spec_and_reports_its_state(case, tmp_path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    submission = case.backend.submit(run_spec(case, log, gate))
    assert submission.backend == case.backend.name and submission.exec_id
    wait_for(lambda: status(submission.exec_id) in ("running", "waiting"), timeout=120, message="the driver records it")
    assert case.backend.status(submission).state.value in ("pending", "running")
    gate.touch()
    wait_for(lambda: status(submission.exec_id) == "completed", timeout=90, message="the run completes")
    wait_for(lambda: case.backend.status(submission).state.is_finished, timeout=30, message="the driver ends")
    assert case.backend.status(submission).state.value == "succeeded"
    assert KitaruClient().executions.get(submission.exec_id).result() == "1:released"
    page = case.backend.dashboard_url(submission)
    assert page is None or str(submission.submission_id).rsplit("/", 1)[-1] in page


@pytest.mark.ray
def test_the_spec_settings_reach_the_driver(case, tmp_path, kitaru_home):
    """The driver records where the spec says, on the spec's stack (its storage holds the outputs)."""
    log, gate = tmp_path / "log", tmp_path / "gate"
    gate.touch()
    submission = case.backend.submit(run_spec(case, log, gate))
    wait_for(lambda: status(submission.exec_id) == "completed", timeout=90, message="the run completes")
    record = KitaruClient().service.get_execution(submission.exec_id)
    assert record["stack"] == "conformance"
    assert record["settings"]["storage_url"] == (kitaru_home / "stack-storage").as_uri()
    assert all(call["output"]["uri"].startswith((kitaru_home / "stack-storage").as_uri()) for call in record["checkpoints"])


@pytest.mark.ray
def test_cancel_stops_the_driver_and_is_idempotent(case, tmp_path):
    submission = case.backend.submit(run_spec(case, tmp_path / "log", tmp_path / "gate"))
    wait_for(lambda: (tmp_path / "log").exists(), timeout=120, message="the first call runs")
    case.interrupt(submission)
    wait_for(lambda: status(submission.exec_id) in case.ended, timeout=60, message="the driver is gone")
    wait_for(lambda: case.backend.status(submission).state.is_finished, timeout=30, message="the backend sees it end")
    case.backend.cancel(submission)  # again: nothing left to stop
    assert case.backend.status(submission).state.is_finished


@pytest.mark.ray
def test_a_resume_after_the_driver_died_reuses_committed_calls(case, tmp_path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    submission = case.backend.submit(run_spec(case, log, gate))
    exec_id = submission.exec_id
    wait_for(lambda: committed(exec_id, "record"), timeout=120, message="the first call is committed")
    case.kill(submission)
    wait_for(lambda: status(exec_id) in case.ended, timeout=60, message="the execution is interrupted")
    gate.touch()
    resumed = case.backend.submit(spec(case, LaunchAction.RESUME, exec_id))
    wait_for(lambda: status(exec_id) == "completed", timeout=90, message="the resumed run completes")
    assert resumed.exec_id == exec_id
    assert log.read_text().splitlines() == ["1"]  # the committed call was not run again
    assert KitaruClient().executions.get(exec_id).result() == "1:released"


@pytest.mark.ray
def test_a_resubmitted_run_is_the_same_execution(case, tmp_path):
    log, gate = tmp_path / "log", tmp_path / "gate"
    gate.touch()
    first = run_spec(case, log, gate)
    case.backend.submit(first)
    wait_for(lambda: status(first.exec_id) == "completed", timeout=90, message="the run completes")
    again = case.backend.submit(first)
    assert again.exec_id == first.exec_id
    wait_for(lambda: case.backend.status(again).state.is_finished, timeout=60, message="the second driver ends")
    assert [e.exec_id for e in KitaruClient().executions.list()] == [first.exec_id]
    assert log.read_text().splitlines() == ["1"]
