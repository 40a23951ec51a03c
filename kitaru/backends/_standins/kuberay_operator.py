"""A stand-in for the KubeRay operator's RayJob controller (no cluster runs here), driving the stand-in API server.

For every RayJob it applies the operator's own rules (``ValidationFailed``), adds its finalizer,
"starts the cluster" (``Initializing``; an image outside ``images`` never pulls: the head pod's
``ErrImagePull``/``ImagePullBackOff`` shows in ``status.rayClusterStatus.conditions`` until
``preRunningDeadlineSeconds`` fails the job), then runs the entrypoint as a local process joined
to a real local Ray (``Running``), and writes ``Complete`` with the Ray job's status, or ``Failed``
with ``DeadlineExceeded`` after ``activeDeadlineSeconds``. Deleting a RayJob stops its process
(the finalizer) before the object goes. Status is written through the ``/status`` subresource
with the object's ``resourceVersion``, as the operator does.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kitaru.backends._kuberay.rules import rayjob_error
from kitaru.backends._standins._replicas import kill_replica, start_replica, stop_replica

__all__ = ["FINALIZER", "KubeRayOperatorStandIn"]

FINALIZER = "ray.io/rayjob-finalizer"
AGENT = "kuberay-operator-standin"


class KubeRayOperatorStandIn:
    """Reconciles RayJobs of the API at ``api_url`` every ``interval`` seconds; use as a context manager.

    Args:
        api_url: The stand-in API server.
        ray_address: The local Ray the entrypoints join (``KITARU_RAY_ADDRESS``).
        images: Images that "exist"; any other image fails to pull.
        secrets: ``{(namespace, name): {key: value}}`` resolving ``secretKeyRef`` in the head's environment.
        workdir: Where entrypoints run and their output is kept (``<name>.log``).
        env: Added to every entrypoint's environment (e.g. ``PYTHONPATH`` for the code baked into the image).
    """

    def __init__(
        self,
        api_url: str,
        *,
        ray_address: str,
        images: set[str],
        workdir: Path,
        secrets: Mapping[tuple[str, str], Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        interval: float = 0.2,
    ) -> None:
        self._api = api_url
        self._ray = ray_address
        self._images = set(images)
        self._secrets = dict(secrets or {})
        self._env = dict(env or {})
        self._workdir = workdir
        self._interval = interval
        self._processes: dict[tuple[str, str], subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="kuberay-operator-standin", daemon=True)

    def __enter__(self) -> KubeRayOperatorStandIn:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for process in self._processes.values():
            stop_replica(process, grace=5)

    def log(self, name: str) -> str:
        """The output of RayJob ``name``'s entrypoint so far."""
        path = self._workdir / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def kill(self, name: str, namespace: str = "default") -> None:
        """Kill RayJob ``name``'s head pod hard (its node died): the entrypoint exits on SIGKILL and the job fails."""
        kill_replica(self._processes[(namespace, name)])

    # -- reconciliation -----------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            for job in self._request("GET", "/apis/ray.io/v1/rayjobs")[1].get("items", []):
                try:
                    self._reconcile(job)
                except Exception as exc:  # noqa: BLE001 - a stand-in keeps reconciling, as the operator does
                    print(f"kuberay operator stand-in: {exc!r}", file=sys.stderr)
            self._stop.wait(self._interval)

    def _reconcile(self, job: dict[str, Any]) -> None:
        meta, spec, status = job["metadata"], job["spec"], job.get("status") or {}
        key = (meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp"):
            self._finalize(job, key)
            return
        phase = status.get("jobDeploymentStatus", "")
        if phase == "":
            if error := rayjob_error(job):
                self._write_status(
                    job, {"jobDeploymentStatus": "ValidationFailed", "reason": "ValidationFailed", "message": error}
                )
                return
            job = self._put(job, finalizers=[FINALIZER])
            cluster = f"{meta['name']}-{meta['uid'][:5]}"
            self._write_status(
                job,
                {
                    "jobDeploymentStatus": "Initializing",
                    "startTime": _now(),
                    "rayClusterName": cluster,
                    "jobId": spec.get("jobId", meta["name"]),
                },
            )
        elif phase == "Initializing":
            self._initialize(job, key)
        elif phase == "Running":
            self._watch(job, key)

    def _initialize(self, job: dict[str, Any], key: tuple[str, str]) -> None:
        spec, status = job["spec"], job.get("status") or {}
        if self._past(status.get("startTime"), spec.get("preRunningDeadlineSeconds")):
            message = (
                f"The RayJob has passed the preRunningDeadlineSeconds. StartTime: {status['startTime']}. "
                f"PreRunningDeadlineSeconds: {spec['preRunningDeadlineSeconds']}"
            )
            self._write_status(
                job,
                {"jobDeploymentStatus": "Failed", "reason": "PreRunningDeadlineExceeded", "message": message, "endTime": _now()},
            )
            return
        head = (
            (spec.get("rayClusterSpec") or {})
            .get("headGroupSpec", {})
            .get("template", {})
            .get("spec", {})
            .get("containers", [{}])[0]
        )
        image = head.get("image")
        if image is not None and image not in self._images:
            reason = "ImagePullBackOff" if status.get("rayClusterStatus") else "ErrImagePull"
            condition = {
                "type": "HeadPodReady",
                "status": "False",
                "reason": reason,
                "message": f'Back-off pulling image "{image}"',
                "lastTransitionTime": _now(),
            }
            self._write_status(job, {"rayClusterStatus": {"state": "", "conditions": [condition]}})
            return
        env = {**os.environ, **self._env, **self._container_env(key[0], head.get("env") or []), "KITARU_RAY_ADDRESS": self._ray}
        command = shlex.split(spec["entrypoint"])
        if command[:1] == ["python"]:
            command[0] = sys.executable  # the image's python
        self._processes[key] = start_replica(command, env, cwd=self._workdir, log=self._workdir / f"{key[1]}.log")
        ready = {
            "type": "HeadPodReady",
            "status": "True",
            "reason": "HeadPodRunningAndReady",
            "message": "",
            "lastTransitionTime": _now(),
        }
        self._write_status(
            job,
            {
                "jobDeploymentStatus": "Running",
                "jobStatus": "RUNNING",
                "dashboardURL": f"{status.get('rayClusterName')}-head-svc.{key[0]}.svc.cluster.local:8265",
                "rayClusterStatus": {"state": "ready", "conditions": [ready]},
            },
        )

    def _watch(self, job: dict[str, Any], key: tuple[str, str]) -> None:
        spec, status = job["spec"], job.get("status") or {}
        process = self._processes.get(key)
        if process is None:
            return
        if process.poll() is None:
            if self._past(status.get("startTime"), spec.get("activeDeadlineSeconds")):
                stop_replica(process, grace=5)
                message = (
                    f"The RayJob has passed the activeDeadlineSeconds. StartTime: {status['startTime']}. "
                    f"ActiveDeadlineSeconds: {spec['activeDeadlineSeconds']}"
                )
                self._write_status(
                    job, {"jobDeploymentStatus": "Failed", "reason": "DeadlineExceeded", "message": message, "endTime": _now()}
                )
            return
        succeeded = process.returncode == 0
        message = (
            "Job finished successfully." if succeeded else f"Job entrypoint command failed with exit code {process.returncode}"
        )
        self._write_status(
            job,
            {
                "jobDeploymentStatus": "Complete",
                "jobStatus": "SUCCEEDED" if succeeded else "FAILED",
                "message": message,
                "endTime": _now(),
            },
        )

    def _finalize(self, job: dict[str, Any], key: tuple[str, str]) -> None:
        process = self._processes.pop(key, None)
        if process is not None and process.poll() is None:
            stop_replica(process, grace=5)  # the finalizer stops the Ray job before the RayJob goes
        self._put(job, finalizers=[f for f in job["metadata"].get("finalizers", []) if f != FINALIZER])

    def _container_env(self, namespace: str, env: list[dict[str, Any]]) -> dict[str, str]:
        out = {}
        for entry in env:
            if "value" in entry:
                out[entry["name"]] = entry["value"]
            elif ref := (entry.get("valueFrom") or {}).get("secretKeyRef"):
                value = self._secrets.get((namespace, ref["name"]), {}).get(ref["key"])
                if value is not None:
                    out[entry["name"]] = value
        return out

    # -- API calls ----------------------------------------------------------------------------------

    def _path(self, job: dict[str, Any]) -> str:
        return f"/apis/ray.io/v1/namespaces/{job['metadata']['namespace']}/rayjobs/{job['metadata']['name']}"

    def _put(self, job: dict[str, Any], *, finalizers: list[str]) -> dict[str, Any]:
        body = {**job, "metadata": {**job["metadata"], "finalizers": finalizers}}
        code, updated = self._request("PUT", self._path(job), body)
        return updated if code == 200 else job

    def _write_status(self, job: dict[str, Any], changes: dict[str, Any]) -> None:
        body = {
            "metadata": {"resourceVersion": job["metadata"]["resourceVersion"]},
            "status": {**(job.get("status") or {}), **changes},
        }
        self._request("PUT", self._path(job) + "/status", body)  # a 409 (stale) is retried at the next pass

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._api + path, data=data, method=method, headers={"Content-Type": "application/json", "User-Agent": AGENT}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    @staticmethod
    def _past(start: str | None, seconds: int | None) -> bool:
        if not start or not seconds:
            return False
        started = dt.datetime.fromisoformat(start.replace("Z", "+00:00"))
        return dt.datetime.now(dt.UTC) >= started + dt.timedelta(seconds=seconds)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
