"""Running a container's command as a local process: one Ray node per replica, on its own ports.

Every node on one machine needs its own ports (the dashboard agent's default port is shared by
every Ray here), and is started in its own process group so it can be stopped without touching
any other Ray on the machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = [
    "driver_only",
    "free_port",
    "join_environment",
    "kill_replica",
    "node_start_args",
    "start_replica",
    "stop_replica",
]


def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def node_start_args(*, head: bool, resources: Mapping[str, float] | None = None) -> str:
    """``KITARU_RAY_START_ARGS`` for one local node: its own ports, one CPU, a small object store."""
    ports = ["--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
    if head:
        ports += ["--dashboard-port", "--ray-client-server-port"]
    args = [f"{flag} {free_port()}" for flag in ports]
    args += ["--num-cpus 1", f"--object-store-memory {100 * 1024**2}"]
    if resources:
        import json

        args.append(f"--resources '{json.dumps(dict(resources))}'")
    return " ".join(args)


def start_replica(
    command: Sequence[str], env: Mapping[str, str], *, cwd: str | os.PathLike[str], log: Path
) -> subprocess.Popen[bytes]:
    """Start ``command`` in its own process group, its output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            list(command), env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_replica(process: subprocess.Popen[bytes], *, grace: float = 15.0) -> None:
    """Ask the replica to stop (SIGTERM to its group, as a platform does), then SIGKILL the group after ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_replica(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the replica's whole group at once, as when its machine dies: nothing in it gets to clean up."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def join_environment(env: Mapping[str, str], ray_address: str, base: Mapping[str, str]) -> dict[str, str]:
    """``env`` for a driver joining the Ray at ``ray_address``, with that Ray's auth settings (``base``), not the job's."""
    joined = {key: value for key, value in env.items() if key not in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
    joined.update({key: base[key] for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN") if key in base})
    return {**joined, "KITARU_RAY_ADDRESS": ray_address}


def driver_only(command: Sequence[str]) -> list[str]:
    """The driver the cluster launcher would run on the head (``python -m kitaru.runtime.launch -- ARGS``):
    for a stand-in that joins an existing Ray instead of forming a cluster."""
    arguments = list(command)
    if "--" not in arguments:
        raise ValueError(f"not a launcher command with driver arguments: {arguments}")
    return ["python", "-m", "kitaru.runtime", *arguments[arguments.index("--") + 1 :]]
