"""What the Vertex AI and SageMaker stand-ins share: an HTTP API on loopback, each job's replicas as local
processes, and a watcher that moves jobs on as their replicas exit."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kitaru.backends._standins._http import JsonServer
from kitaru.backends._standins._replicas import driver_only, join_environment, kill_replica, start_replica, stop_replica

__all__ = ["ReplicaJobs"]


class ReplicaJobs:
    """A control plane whose jobs run as replica processes; use as a context manager.

    Subclasses serve the API (``_handle``), start replicas with :meth:`_launch` and move running
    jobs on in ``_check`` (called every 0.2 s by the watcher).

    Args:
        images: Images that "exist"; a job with any other image fails.
        workdir: Where replicas run and log (``<job>/<replica>.log``).
        env: Added to every replica's environment (e.g. ``PYTHONPATH`` for code baked into the image).
        join_ray: Instead of forming a cluster, run only the primary replica's driver, joined to this Ray
            (for tests of the backend's protocol that need no second node).
    """

    content_type: str = "application/json"
    primary: str  # the replica that runs the Ray head and the driver

    def __init__(
        self, *, images: set[str], workdir: Path, env: Mapping[str, str] | None = None, join_ray: str | None = None
    ) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self._replicas: dict[str, dict[str, subprocess.Popen[bytes]]] = {}
        self._images, self._workdir, self._env, self._join_ray = set(images), workdir, dict(env or {}), join_ray
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._server: JsonServer | None = None
        self._watcher = threading.Thread(target=self._watch, name=f"{type(self).__name__}-watcher", daemon=True)

    @property
    def url(self) -> str:
        """The API's address (the client's endpoint)."""
        assert self._server is not None
        return self._server.url

    def __enter__(self) -> Any:
        self._server = JsonServer(self._handle, content_type=self.content_type)
        self._watcher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._watcher.join(10)
        if self._server is not None:
            self._server.close()
        for replicas in self._replicas.values():
            for process in replicas.values():
                stop_replica(process, grace=5)

    def log(self, job: str, replica: str | None = None) -> str:
        """What a replica (default: the primary) of ``job`` printed so far."""
        path = self._workdir / job / f"{replica or self.primary}.log"
        return path.read_text() if path.exists() else ""

    def kill(self, job: str, replica: str | None = None) -> None:
        """Kill a replica (default: the primary) hard, as when its machine dies: the platform then fails the job."""
        kill_replica(self._replicas[job][replica or self.primary])

    # -- for the subclasses -------------------------------------------------------------------------

    def _handle(self, method: str, path: str, query: dict[str, str], body: Any, headers: Mapping[str, str]) -> tuple[int, Any]:
        raise NotImplementedError

    def _check(self) -> None:
        raise NotImplementedError

    def _launch(
        self, folder: str, replica: str, command: Sequence[str], env: Mapping[str, str]
    ) -> subprocess.Popen[bytes] | None:
        """Start ``replica`` of a job (logging to ``<folder>/<replica>.log``) with ``env`` over this machine's and the
        image's; with ``join_ray`` only the primary runs, as the driver alone. ``None`` for a replica not started."""
        full = {**os.environ, **self._env, **env}
        command = list(command)
        if self._join_ray:
            if replica != self.primary:
                return None
            command, full = driver_only(command), join_environment(full, self._join_ray, {**os.environ, **self._env})
        if command[:1] == ["python"]:
            command[0] = sys.executable  # the image's python
        return start_replica(command, full, cwd=Path.cwd(), log=self._workdir / folder / f"{replica}.log")

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            self._check()
