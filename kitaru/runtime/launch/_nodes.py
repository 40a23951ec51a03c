"""Starting and stopping this machine's Ray node: ``ray start ... --block`` in its own process group.

The node is stopped by its process group, never with ``ray stop`` (which stops every Ray on the
machine). ``KITARU_RAY_START_ARGS`` adds arguments to ``ray start`` (resources, ports, memory caps).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from kitaru.runtime.launch._roles import NodeRole

__all__ = ["ray_start_command", "reachable", "start_node", "stop_group"]


def ray_start_command(role: NodeRole, environ: Mapping[str, str]) -> list[str]:
    """The ``ray start`` command line of this node (head or worker), blocking until the node stops."""
    ray = Path(sys.executable).with_name("ray")
    command = [str(ray) if ray.exists() else "ray", "start", "--block", "--disable-usage-stats"]
    if role.is_head:
        command += ["--head", "--port", str(role.head_port), "--dashboard-host", "0.0.0.0"]
    else:
        command += ["--address", role.head_address]
    role_args = environ.get("KITARU_RAY_HEAD_START_ARGS" if role.is_head else "KITARU_RAY_WORKER_START_ARGS", "")
    return command + shlex.split(environ.get("KITARU_RAY_START_ARGS", "")) + shlex.split(role_args)


def start_node(role: NodeRole, environ: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start this node's Ray in a new process group (its output goes to this process's)."""
    print(f"kitaru launch: {role.name} starts the Ray {'head' if role.is_head else 'worker'}", flush=True)
    return subprocess.Popen(ray_start_command(role, environ), env=dict(environ), start_new_session=True)


def stop_group(process: subprocess.Popen[bytes], *, grace: float = 5.0) -> None:
    """Stop ``process`` and everything in its group: SIGTERM, then SIGKILL after ``grace`` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        # ray start --block exits before its raylet's agents; take the rest of the group with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


def reachable(address: str, *, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until(predicate, *, timeout: float, interval: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until true; ``TimeoutError`` naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)
