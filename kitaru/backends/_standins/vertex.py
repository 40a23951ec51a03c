"""A stand-in for Vertex AI's CustomJob REST API (no Google Cloud account is reachable here).

Speaks the ``aiplatform.googleapis.com/v1`` wire format the real GAPIC client's REST transport
uses (camelCase JSON, ``/v1/projects/*/locations/*/customJobs[/*][:cancel]``, a ``filter`` on
labels) and runs every replica of every worker pool as a local process with ``CLUSTER_SPEC`` set,
each a Ray node on its own ports. The job is ``JOB_STATE_RUNNING`` while the primary replica
(worker pool 0) runs, then ``JOB_STATE_SUCCEEDED`` or ``JOB_STATE_FAILED`` by its exit status; a
cancel stops every replica (``JOB_STATE_CANCELLED``); an image outside ``images`` fails the job.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitaru.backends._standins._jobs import ReplicaJobs
from kitaru.backends._standins._replicas import free_port, node_start_args, stop_replica

__all__ = ["VertexStandIn"]

_COLLECTION = re.compile(r"^/v1/(?P<parent>projects/[^/]+/locations/[^/]+)/customJobs$")
_ITEM = re.compile(r"^/v1/(?P<name>projects/[^/]+/locations/[^/]+/customJobs/[^/:]+)(?P<cancel>:cancel)?$")
_FINISHED = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED"}


class VertexStandIn(ReplicaJobs):
    """The stand-in on a loopback port (``url``, the client's ``api_endpoint``); use as a context manager.

    Args:
        images: Images that "exist"; a job with any other image fails.
        workdir: Where replicas run and log (``<job id>/<replica>.log``).
        env: Added to every replica's environment (e.g. ``PYTHONPATH`` for code baked into the image).
        join_ray: Instead of forming a cluster, run only the primary replica's driver, joined to this Ray
            (for tests of the backend's protocol that need no second node).

    ``log(job_id, replica)`` reads a replica's output; ``kill(job_name, replica)`` kills one hard.
    """

    primary = "workerpool0-0"

    def __init__(
        self, *, images: set[str], workdir: Path, env: Mapping[str, str] | None = None, join_ray: str | None = None
    ) -> None:
        super().__init__(images=images, workdir=workdir, env=env, join_ray=join_ray)
        self._ids = itertools.count(1000)

    # -- the API ------------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        with self._lock:
            if match := _COLLECTION.match(path):
                if method == "POST":
                    return 200, self._create(match["parent"], body)
                if method == "GET":
                    return 200, self._list(match["parent"], query.get("filter", ""))
            elif match := _ITEM.match(path):
                job = self.jobs.get(match["name"])
                if job is None:
                    return 404, _error(404, "NOT_FOUND", f"CustomJob {match['name']} not found.")
                if match["cancel"] and method == "POST":
                    return self._cancel(job)
                if method == "GET":
                    return 200, job
        return 404, _error(404, "NOT_FOUND", f"no route {method} {path}")

    def _create(self, parent: str, body: Mapping[str, Any]) -> dict[str, Any]:
        job_id = str(next(self._ids))
        now = _now()
        job = {
            **body,
            "name": f"{parent}/customJobs/{job_id}",
            "state": "JOB_STATE_PENDING",
            "createTime": now,
            "updateTime": now,
        }
        self.jobs[job["name"]] = job
        pools = body.get("jobSpec", {}).get("workerPoolSpecs", [])
        images = {pool.get("containerSpec", {}).get("imageUri") for pool in pools}
        if missing := sorted(i for i in images if i not in self._images):
            job.update(
                state="JOB_STATE_FAILED",
                endTime=now,
                error={"code": 3, "message": f"Unable to pull the image {missing[0]}: not found."},
            )
            return job
        self._start(job, job_id, pools)
        job.update(state="JOB_STATE_RUNNING", startTime=_now())
        return job

    def _start(self, job: dict[str, Any], job_id: str, pools: list[dict[str, Any]]) -> None:
        addresses = {
            f"workerpool{i}": [f"127.0.0.1:{free_port()}" for _ in range(int(p.get("replicaCount", 1)))]
            for i, p in enumerate(pools)
        }
        replicas: dict[str, subprocess.Popen[bytes]] = {}
        for i, pool in enumerate(pools):
            container = pool.get("containerSpec", {})
            declared = {e["name"]: e.get("value", "") for e in container.get("env", [])}
            command = [*container.get("command", []), *container.get("args", [])]
            for index in range(int(pool.get("replicaCount", 1))):
                spec = {"cluster": addresses, "task": {"type": f"workerpool{i}", "index": index}, "environment": "cloud"}
                start_args = node_start_args(head=i == 0) + " " + declared.get("KITARU_RAY_START_ARGS", "")
                env = {**declared, "CLUSTER_SPEC": json.dumps(spec), "KITARU_RAY_START_ARGS": start_args}
                name = f"workerpool{i}-{index}"
                if (process := self._launch(job_id, name, command, env)) is not None:
                    replicas[name] = process
        self._replicas[job["name"]] = replicas

    def _list(self, parent: str, filter_: str) -> dict[str, Any]:
        wanted = dict(re.findall(r'labels\.([\w-]+)="([^"]*)"', filter_))
        jobs = [
            job
            for name, job in self.jobs.items()
            if name.startswith(parent + "/") and all(job.get("labels", {}).get(k) == v for k, v in wanted.items())
        ]
        return {"customJobs": jobs}

    def _cancel(self, job: dict[str, Any]) -> tuple[int, Any]:
        if job["state"] in _FINISHED:
            return 400, _error(400, "FAILED_PRECONDITION", f"CustomJob {job['name']} is already in state {job['state']}.")
        job.update(state="JOB_STATE_CANCELLING", updateTime=_now())
        threading.Thread(target=self._stop_replicas, args=(job, "JOB_STATE_CANCELLED"), daemon=True).start()
        return 200, {}

    def _stop_replicas(self, job: dict[str, Any], state: str, error: dict[str, Any] | None = None) -> None:
        for process in self._replicas.get(job["name"], {}).values():
            stop_replica(process, grace=10)
        with self._lock:
            job.update(state=state, endTime=_now(), updateTime=_now())
            if error:
                job["error"] = error

    def _check(self) -> None:
        with self._lock:
            running = [job for job in self.jobs.values() if job["state"] == "JOB_STATE_RUNNING"]
        for job in running:
            head = self._replicas.get(job["name"], {}).get(self.primary)
            if head is None or head.poll() is None:
                continue
            if head.returncode == 0:
                self._stop_replicas(job, "JOB_STATE_SUCCEEDED")
            else:
                message = f"The replica {self.primary} exited with a non-zero status of {head.returncode}."
                self._stop_replicas(job, "JOB_STATE_FAILED", {"code": 13, "message": message})


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
