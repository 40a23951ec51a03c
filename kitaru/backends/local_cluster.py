"""A Ray cluster of nodes on this machine, for tests, benchmarks and trying the ``ray`` backend.

Each node is a ``ray start ... --block`` process in its own process group, on its own
free ports (a second node's dashboard agent would otherwise take the first one's default
port and job submission would fail with "No available agent to submit job"). A node is
stopped by signalling its own group, never with ``ray stop``, which kills every Ray on the
machine.

Example::

    with LocalRayCluster() as cluster:
        cluster.add_node(resources={"gpu_node": 1})
        print(cluster.dashboard_url)  # the Jobs API address for a ``ray`` stack
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["LocalRayCluster", "free_port"]

_START_TIMEOUT = 120.0
_STOP_GRACE = 3.0


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRayCluster:
    """A head node (with its dashboard and Jobs API) and any further nodes, all on this machine.

    Args:
        num_cpus: CPUs of the head node.
        object_store_memory: Bytes of object store per node.
        auth_token: Start with Ray token auth on, this token required; ``None``: auth disabled.
        env: Extra environment for the node processes (and so for the workers and job drivers they start).
    """

    def __init__(
        self,
        *,
        num_cpus: int = 1,
        object_store_memory: int = 200 * 1024**2,
        auth_token: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.auth_token = auth_token
        self._extra_env = dict(env or {})
        # Ray's unix sockets live under the temp dir: keep its path short.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="kr", dir="/tmp"))
        self.gcs_port = free_port()
        self.dashboard_port = free_port()
        self.nodes: list[subprocess.Popen[bytes]] = []

    @property
    def dashboard_url(self) -> str:
        """The dashboard and Jobs API address (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def gcs_address(self) -> str:
        """The address other nodes and ``ray.init(address=...)`` join."""
        return f"{_node_ip()}:{self.gcs_port}"

    def start(self) -> LocalRayCluster:
        """Start the head node and wait until its Jobs API answers.

        A head that times out while starting (its GCS overloaded on a busy machine) is started once more.
        """
        try:
            return self._start_head()
        except RuntimeError:
            self.temp_dir.mkdir(parents=True, exist_ok=True)
            self.gcs_port, self.dashboard_port = free_port(), free_port()
            return self._start_head()

    def _start_head(self) -> LocalRayCluster:
        self._start_node(
            "--head",
            "--port",
            str(self.gcs_port),
            "--dashboard-host",
            "127.0.0.1",
            "--dashboard-port",
            str(self.dashboard_port),
            "--ray-client-server-port",
            str(free_port()),
            "--num-cpus",
            str(self.num_cpus),
        )
        self._wait_for(self._jobs_api_ready, "the head node's Jobs API")
        self._wait_for(lambda: self._alive_nodes() >= 1, "the head node")
        return self

    def add_node(self, *, num_cpus: int = 1, resources: Mapping[str, float] | None = None) -> subprocess.Popen[bytes]:
        """Start one more node joining the head, and wait until the cluster counts it."""
        expected = len(self.nodes) + 1
        arguments = ["--address", self.gcs_address, "--num-cpus", str(num_cpus)]
        if resources:
            arguments += ["--resources", json.dumps(dict(resources))]
        node = self._start_node(*arguments)
        self._wait_for(lambda: self._alive_nodes() >= expected, f"node {expected}")
        return node

    def stop(self) -> None:
        """Stop every node (its whole process group), the added ones first."""
        for node in reversed(self.nodes):
            _stop_group(node)
        self.nodes.clear()
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def kill(self) -> None:
        """Kill every node at once, as when a cluster's machines die: each process group, and every process the
        nodes started in a session of its own (a job's driver), which a machine's death takes down too."""
        import psutil

        descendants = []
        for node in self.nodes:
            with contextlib.suppress(psutil.NoSuchProcess):
                descendants += psutil.Process(node.pid).children(recursive=True)
        for node in self.nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.pid, signal.SIGKILL)
        for process in descendants:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        for node in self.nodes:
            node.wait()
            _wait_group_gone(node.pid)
        self.nodes.clear()

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self._extra_env, "RAY_USAGE_STATS_ENABLED": "0"}
        # a job's entrypoint says `python`: this interpreter, as on a cluster whose image puts its Python first
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        env.pop("RAY_ADDRESS", None)
        if self.auth_token is None:
            env["RAY_AUTH_MODE"] = "disabled"
        else:
            env["RAY_AUTH_MODE"] = "token"
            env["RAY_AUTH_TOKEN"] = self.auth_token
        return env

    def _start_node(self, *arguments: str) -> subprocess.Popen[bytes]:
        ray = str(Path(sys.executable).with_name("ray"))
        # Each node its own temp dir: nodes sharing one would share (and clean up) each other's runtime_env files.
        temp_dir = self.temp_dir / f"n{len(self.nodes)}"
        command = [
            ray,
            "start",
            *arguments,
            "--block",
            "--disable-usage-stats",
            "--temp-dir",
            str(temp_dir),
            "--object-store-memory",
            str(self.object_store_memory),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-agent-grpc-port",
            str(free_port()),
            "--metrics-export-port",
            str(free_port()),
            "--runtime-env-agent-port",
            str(free_port()),
            "--node-manager-port",
            str(free_port()),
            "--object-manager-port",
            str(free_port()),
        ]
        log = (self.temp_dir / f"node-{len(self.nodes)}.log").open("ab")
        node = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self._env(), start_new_session=True
        )
        log.close()
        self.nodes.append(node)
        return node

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth_token}"} if self.auth_token else {}

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(self.dashboard_url + path, headers=self._headers())
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def _jobs_api_ready(self) -> bool:
        try:
            self._get("/api/version")
            return True
        except (OSError, ValueError):
            return False

    def node_ids(self) -> list[str]:
        """The ids of the cluster's live nodes."""
        return [raylet["nodeId"] for raylet in self._raylets()]

    def node_with_resource(self, name: str) -> str:
        """The id of the live node offering the custom resource ``name``."""
        wanted = _plain(name)
        for raylet in self._raylets():
            # the dashboard camel-cases the keys of its JSON, custom resources included (gpu_node -> gpuNode)
            if any(_plain(key) == wanted for key in raylet.get("resourcesTotal") or {}):
                return raylet["nodeId"]
        raise LookupError(f"no live node offers {name!r}")

    def _raylets(self) -> list[dict[str, Any]]:
        summary = self._get("/nodes?view=summary").get("data", {}).get("summary", [])
        return [node["raylet"] for node in summary if node.get("raylet", {}).get("state") == "ALIVE"]

    def _alive_nodes(self) -> int:
        try:
            return len(self._raylets())
        except (OSError, ValueError):
            return 0

    def _wait_for(self, ready: Any, what: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while not ready():
            dead = [node for node in self.nodes if node.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(path.read_text(errors="replace")[-2000:] for path in sorted(self.temp_dir.glob("node-*.log")))
                self.stop()
                raise RuntimeError(f"{what} did not start; node output:\n{logs}")
            time.sleep(0.25)


def _plain(name: str) -> str:
    return name.replace("_", "").lower()


def _node_ip() -> str:
    """The address Ray binds its nodes to (the machine's own interface, even when asked for loopback)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def _stop_group(node: subprocess.Popen[bytes]) -> None:
    """SIGTERM the node's process group, then SIGKILL it after a short grace (draining can take half a minute)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGTERM)
    try:
        node.wait(_STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(node.pid, signal.SIGKILL)
    node.wait()
    _wait_group_gone(node.pid)


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    """Wait until no process of the group is left (its members exit after the leader)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
