"""The launcher's command: head (start Ray, wait for the workers, run the driver) or worker (join, leave with the head)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from kitaru.errors import KitaruError
from kitaru.runtime.launch._nodes import reachable, start_node, stop_group, wait_until
from kitaru.runtime.launch._roles import NodeRole, detect_role
from kitaru.runtime.launch._secrets import read_api_key

__all__ = ["main"]

SAGEMAKER_FAILURE = "/opt/ml/output/failure"  # SageMaker reports its first 1024 characters as the job's FailureReason


def main(argv: Sequence[str] | None = None) -> int:
    """Run this node's part of the cluster; returns the process's exit status."""
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # a stopped job: unwind so the Ray node is stopped too
    environ = dict(os.environ)
    try:
        role = detect_role(environ, resourceconfig=args.resourceconfig)
        driver = _driver_arguments(args.driver, environ) if role.is_head else []
        if role.is_head:  # the driver's API key, from the cloud's secret store when the job names one
            environ.update(read_api_key(environ))
    except KitaruError as exc:
        return _fail(str(exc), environ)
    try:
        if role.is_head:
            return _run_head(role, driver, environ, join_timeout=args.join_timeout)
        return _run_worker(role, environ, join_timeout=args.join_timeout, interval=args.poll_interval)
    except TimeoutError as exc:
        return _fail(f"{role.name}: {exc}", environ)


def _fail(message: str, environ: Mapping[str, str]) -> int:
    """Report why this node cannot start: on stderr, and where SageMaker takes a job's ``FailureReason`` from."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    path = environ.get("KITARU_FAILURE_FILE")
    if path is None and os.path.isdir(os.path.dirname(SAGEMAKER_FAILURE)):
        path = SAGEMAKER_FAILURE
    if path:
        with contextlib.suppress(OSError):
            Path(path).write_text(message[:1024])
    return 2


def _run_head(role: NodeRole, driver: list[str], environ: Mapping[str, str], *, join_timeout: float) -> int:
    node = start_node(role, environ)
    try:
        wait_until(
            lambda: _alive(node) and reachable(role.head_address),
            timeout=join_timeout,
            interval=0.2,
            what=f"the Ray head at {role.head_address}",
        )
        _wait_for_nodes(role, node, timeout=join_timeout)
        env = {**environ, "KITARU_RAY_ADDRESS": role.head_address}
        print(f"kitaru launch: {role.node_count} nodes joined; running the driver", flush=True)
        process = subprocess.Popen([sys.executable, "-m", "kitaru.runtime", *driver], env=env)
        try:
            return process.wait()
        finally:
            if process.poll() is None:  # the job is being stopped: let the driver end its execution cleanly
                process.terminate()
                try:
                    process.wait(15)
                except subprocess.TimeoutExpired:
                    process.kill()
    finally:
        stop_group(node)


def _run_worker(role: NodeRole, environ: Mapping[str, str], *, join_timeout: float, interval: float) -> int:
    wait_until(
        lambda: reachable(role.head_address), timeout=join_timeout, interval=interval, what=f"the Ray head at {role.head_address}"
    )
    node = start_node(role, environ)
    try:
        misses = 0
        while misses < 3:  # a few misses in a row: the head stopped (its job is done), not a network blip
            if not _alive(node):
                return node.returncode or 1
            misses = 0 if reachable(role.head_address) else misses + 1
            time.sleep(interval)
        print(f"kitaru launch: {role.name}: the head at {role.head_address} is gone; leaving", flush=True)
        return 0
    finally:
        stop_group(node)


def _wait_for_nodes(role: NodeRole, node: subprocess.Popen[bytes], *, timeout: float) -> None:
    import ray

    ray.init(address=role.head_address, logging_level="WARNING", log_to_driver=False)
    try:
        wait_until(
            lambda: _alive(node) and sum(1 for n in ray.nodes() if n["Alive"]) >= role.node_count,
            timeout=timeout,
            interval=0.5,
            what=f"{role.node_count} Ray nodes",
        )
    finally:
        ray.shutdown()


def _alive(node: subprocess.Popen[bytes]) -> bool:
    if node.poll() is not None:
        raise TimeoutError(f"the Ray node exited with status {node.returncode} before the cluster formed")
    return True


def _driver_arguments(argv: list[str], environ: Mapping[str, str]) -> list[str]:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if argv:
        return argv
    from kitaru.errors import KitaruUsageError

    try:
        arguments = json.loads(environ.get("KITARU_DRIVER_ARGS") or "null")
    except ValueError as exc:
        raise KitaruUsageError(f"KITARU_DRIVER_ARGS is not a JSON list ({exc}).") from None
    if not isinstance(arguments, list) or not arguments:
        raise KitaruUsageError("the head has no driver to run: pass `-- run TARGET --exec-id ID` or set KITARU_DRIVER_ARGS.")
    return [str(argument) for argument in arguments]


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m kitaru.runtime.launch",
        description="Start this node's Ray (head or worker) from CLUSTER_SPEC or resourceconfig.json; the head runs the driver.",
    )
    parser.add_argument("--resourceconfig", help="path of SageMaker's resourceconfig.json (default: the platform's)")
    parser.add_argument("--join-timeout", type=float, default=600.0, help="seconds to wait for the head and the workers")
    parser.add_argument("--poll-interval", type=float, default=2.0, help="seconds between a worker's checks of the head")
    parser.add_argument("driver", nargs=argparse.REMAINDER, help="-- then the arguments of python -m kitaru.runtime")
    return parser
