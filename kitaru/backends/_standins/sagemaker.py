"""A stand-in for SageMaker's training-job API (no AWS account is reachable; moto completes jobs at once and has no stop).

Speaks SageMaker's JSON 1.1 protocol (``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``) at a
loopback ``endpoint_url`` for ``CreateTrainingJob``, ``DescribeTrainingJob`` and ``StopTrainingJob``.
A job runs ``InstanceCount`` host processes (``ContainerEntrypoint`` + ``ContainerArguments``, the
``Environment``), each with its own ``resourceconfig.json`` and a Ray node on its own ports, and
moves InProgress (Starting, Training) -> Completed (every host exited 0) or Failed (the first
non-zero exit, as ``AlgorithmError`` with what the host wrote to its ``/opt/ml/output/failure``),
and Stopping -> Stopped on a stop or once ``MaxRuntimeInSeconds`` passes (``MaxRuntimeExceeded``).
Every response is checked against botocore's output shape of its operation; violations are kept
in ``shape_violations``.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitaru.backends._standins._jobs import ReplicaJobs
from kitaru.backends._standins._replicas import free_port, node_start_args, stop_replica

__all__ = ["SageMakerStandIn", "shape_errors"]

_ACCOUNT, _NAME = "123456789012", re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class SageMakerStandIn(ReplicaJobs):
    """The stand-in on a loopback port (``url``, boto3's ``endpoint_url``); use as a context manager.

    Args:
        images: Images that "exist"; a job with any other image fails.
        workdir: Where hosts run and log (``<job>/<host>.log``) and their ``resourceconfig.json`` live.
        env: Added to every host's environment (e.g. ``PYTHONPATH`` for code baked into the image).
        join_ray: Instead of forming a cluster, run only the first host's driver, joined to this Ray
            (for tests of the backend's protocol that need no second node).

    ``log(job, host)`` reads a host's output; ``kill(job, host)`` kills one hard.
    """

    content_type = "application/x-amz-json-1.1"
    primary = "algo-1"

    def __init__(
        self,
        *,
        images: set[str],
        workdir: Path,
        env: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        join_ray: str | None = None,
    ) -> None:
        super().__init__(images=images, workdir=workdir, env=env, join_ray=join_ray)
        self.shape_violations: list[str] = []
        self._started: dict[str, float] = {}
        self._region = region
        import botocore.session

        self._model = botocore.session.get_session().get_service_model("sagemaker")

    # -- the API ------------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        operation = str(headers.get("X-Amz-Target", "")).removeprefix("SageMaker.")
        handler = getattr(self, f"_op_{operation}", None)
        if method != "POST" or handler is None:
            return 400, {"__type": "UnknownOperationException", "message": f"unknown operation {operation!r}"}
        with self._lock:
            code, payload = handler(body)
        if code == 200:
            output = self._model.operation_model(operation).output_shape
            if output is not None:
                self.shape_violations += [f"{operation}: {error}" for error in shape_errors(output, payload)]
        return code, payload

    def _op_CreateTrainingJob(self, body: Mapping[str, Any]) -> tuple[int, Any]:  # noqa: N802 - the operation's name
        name = str(body.get("TrainingJobName", ""))
        if not _NAME.fullmatch(name):
            return 400, _error(
                "ValidationException",
                f"1 validation error detected: Value '{name}' at 'trainingJobName' failed to satisfy constraint",
            )
        arn = f"arn:aws:sagemaker:{self._region}:{_ACCOUNT}:training-job/{name}"
        if name in self.jobs:
            message = (
                "Training job names must be unique within an AWS account and region, "
                f"and a training job with this name already exists ({arn})"
            )
            return 400, _error("ResourceInUse", message)
        now = time.time()
        job = {
            "TrainingJobName": name,
            "TrainingJobArn": arn,
            "ModelArtifacts": {
                "S3ModelArtifacts": f"{body['OutputDataConfig']['S3OutputPath'].rstrip('/')}/{name}/output/model.tar.gz"
            },
            "TrainingJobStatus": "InProgress",
            "SecondaryStatus": "Starting",
            "AlgorithmSpecification": body["AlgorithmSpecification"],
            "RoleArn": body["RoleArn"],
            "OutputDataConfig": body["OutputDataConfig"],
            "ResourceConfig": body["ResourceConfig"],
            "StoppingCondition": body.get("StoppingCondition", {"MaxRuntimeInSeconds": 86400}),
            "Environment": body.get("Environment", {}),
            "CreationTime": now,
            "LastModifiedTime": now,
            "SecondaryStatusTransitions": [
                {"Status": "Starting", "StartTime": now, "StatusMessage": "Preparing the instances for training"}
            ],
        }
        self.jobs[name] = job
        image = body["AlgorithmSpecification"].get("TrainingImage")
        if image not in self._images:
            self._finish(job, "Failed", "Failed", f"ClientError: Cannot pull the algorithm image {image}: it does not exist")
        else:
            self._start(job)
        return 200, {"TrainingJobArn": arn}

    def _op_DescribeTrainingJob(self, body: Mapping[str, Any]) -> tuple[int, Any]:  # noqa: N802
        job = self.jobs.get(str(body.get("TrainingJobName")))
        if job is None:
            return 400, _error("ValidationException", "Requested resource not found.")
        return 200, job

    def _op_StopTrainingJob(self, body: Mapping[str, Any]) -> tuple[int, Any]:  # noqa: N802
        job = self.jobs.get(str(body.get("TrainingJobName")))
        if job is None:
            return 400, _error("ValidationException", "Requested resource not found.")
        if job["TrainingJobStatus"] != "InProgress":
            return 400, _error(
                "ValidationException",
                f"The request was rejected because the training job is in status {job['TrainingJobStatus']}.",
            )
        self._set(job, "Stopping", "Stopping")
        threading.Thread(target=self._stop_hosts, args=(job, "Stopped", "Stopped", None), daemon=True).start()
        return 200, {}

    # -- hosts --------------------------------------------------------------------------------------

    def _start(self, job: dict[str, Any]) -> None:
        name, spec = job["TrainingJobName"], job["AlgorithmSpecification"]
        count = int(job["ResourceConfig"].get("InstanceCount", 1))
        hosts = [f"algo-{i + 1}" for i in range(count)]
        port = free_port()
        processes = {}
        for host in hosts:
            config = self._workdir / name / host / "resourceconfig.json"
            config.parent.mkdir(parents=True, exist_ok=True)
            instance_type = job["ResourceConfig"].get("InstanceType", "ml.m5.xlarge")
            group = {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
            config.write_text(json.dumps({
                "current_host": host, "current_instance_type": instance_type, "current_group_name": "homogeneousCluster",
                "hosts": hosts, "instance_groups": [group], "network_interface_name": "eth0",
            }))  # fmt: skip
            declared = job["Environment"]
            start_args = node_start_args(head=host == self.primary) + " " + declared.get("KITARU_RAY_START_ARGS", "")
            env = {
                **declared, "KITARU_RESOURCECONFIG": str(config), "KITARU_RAY_START_ARGS": start_args,
                "KITARU_FAILURE_FILE": str(config.parent / "failure"),  # /opt/ml/output/failure on a host
                # algo-1 resolves only inside SageMaker's network: every host reaches the head on loopback here.
                "KITARU_RAY_HEAD_ADDRESS": f"127.0.0.1:{port}", "KITARU_RAY_PORT": str(port),
            }  # fmt: skip
            command = [*spec.get("ContainerEntrypoint", []), *spec.get("ContainerArguments", [])]
            if (process := self._launch(name, host, command, env)) is not None:
                processes[host] = process
        self._replicas[name] = processes
        self._started[name] = time.time()
        self._set(job, "InProgress", "Training")

    def _check(self) -> None:
        with self._lock:
            running = [
                job
                for job in self.jobs.values()
                if job["TrainingJobStatus"] == "InProgress" and job["TrainingJobName"] in self._replicas
            ]
        for job in running:
            name = job["TrainingJobName"]
            hosts = self._replicas[name]
            failed = [(host, p.returncode) for host, p in hosts.items() if p.poll() not in (None, 0)]
            limit = job["StoppingCondition"].get("MaxRuntimeInSeconds")
            if failed:
                host, code = failed[0]
                failure = self._workdir / name / host / "failure"  # what the container wrote to /opt/ml/output/failure
                written = failure.read_text()[:1024].strip() if failure.exists() else ""
                reason = f"AlgorithmError: {written or f'the container on {host} exited with code {code}'}"
                reason += "; see its CloudWatch log stream"
                self._stop_hosts(job, "Failed", "Failed", reason)
            elif all(p.poll() == 0 for p in hosts.values()):
                with self._lock:
                    self._set(job, "Completed", "Completed")
            elif limit and time.time() - self._started[name] > limit:
                self._stop_hosts(job, "Stopped", "MaxRuntimeExceeded", None)

    def _stop_hosts(self, job: dict[str, Any], status: str, secondary: str, reason: str | None) -> None:
        for process in self._replicas.get(job["TrainingJobName"], {}).values():
            stop_replica(process, grace=10)
        with self._lock:
            self._finish(job, status, secondary, reason)

    def _finish(self, job: dict[str, Any], status: str, secondary: str, reason: str | None) -> None:
        self._set(job, status, secondary)
        job["TrainingEndTime"] = time.time()
        if reason:
            job["FailureReason"] = reason

    def _set(self, job: dict[str, Any], status: str, secondary: str) -> None:
        now = time.time()
        job.update(TrainingJobStatus=status, SecondaryStatus=secondary, LastModifiedTime=now)
        if secondary == "Training":
            job["TrainingStartTime"] = now
        transitions = job["SecondaryStatusTransitions"]
        if transitions[-1]["Status"] != secondary:
            transitions[-1]["EndTime"] = now
            transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": secondary})


def shape_errors(shape: Any, value: Any, path: str = "") -> list[str]:
    """How ``value`` departs from botocore's ``shape`` (missing required members, unknown members, wrong types)."""
    kind = shape.type_name
    where = path or "<root>"
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        errors = [f"{where}: missing {name}" for name in shape.required_members if name not in value]
        for key, item in value.items():
            member = shape.members.get(key)
            errors += (
                [f"{where}: unknown member {key}"] if member is None else shape_errors(member, item, f"{path}.{key}".lstrip("."))
            )
        return errors
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [error for i, item in enumerate(value) for error in shape_errors(shape.member, item, f"{path}[{i}]")]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{where}: expected a map"]
        return [error for key, item in value.items() for error in shape_errors(shape.value, item, f"{path}.{key}")]
    expected = {
        "string": str,
        "boolean": bool,
        "integer": int,
        "long": int,
        "timestamp": (int, float),
        "double": (int, float),
        "float": (int, float),
    }
    wanted = expected.get(kind)
    if wanted is not None and (not isinstance(value, wanted) or (kind != "boolean" and isinstance(value, bool))):
        return [f"{where}: expected {kind}, got {type(value).__name__}"]
    if kind == "string" and shape.enum and value not in shape.enum:
        return [f"{where}: {value!r} is not one of {shape.enum}"]
    return []


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}
