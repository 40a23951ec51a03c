"""Detached driver processes: ``python -m kitaru.runtime ...`` started by the CLI, the UI and MCP.

The process runs in its own session (``start_new_session=True``), so the
execution outlives the command or request that started it; its output goes to
a log file under ``KITARU_HOME/logs/``. The caller waits only until the driver
has taken the execution over, or has exited first: then the driver's own
``error:`` line becomes the caller's error.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruRuntimeError, KitaruUsageError

__all__ = [
    "DRIVER_PREFIX_ENV",
    "Detached",
    "continue_detached",
    "spawn",
    "wait_started",
]

DRIVER_PREFIX_ENV = "KITARU_DRIVER_ID_PREFIX"  # a launcher's prefix for its driver's ids: it tells its own from a rival

START_TIMEOUT_SECONDS = 120.0  # a driver imports Kitaru and joins (or starts) Ray first: seconds on a small machine

Started = Callable[[dict[str, Any]], bool]


@dataclasses.dataclass
class Detached:
    """A started driver process and its log file."""

    process: subprocess.Popen[bytes]
    log: Path


def spawn(arguments: Sequence[str], *, label: str, env: Mapping[str, str] | None = None) -> Detached:
    """Start ``python -m kitaru.runtime ARGUMENTS`` detached, logging to ``KITARU_HOME/logs/<time>-<action>-<label>.log``."""
    from kitaru.config import resolve_settings

    logs = Path(resolve_settings().home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{arguments[0]}-{label[:40]}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kitaru.runtime", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=os.getcwd(),
            env={**(env if env is not None else os.environ), "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
    return Detached(process, log)


def wait_started(
    driver: Detached, service: Any, exec_ids: Sequence[str], started: Started, *, timeout: float = START_TIMEOUT_SECONDS
) -> None:
    """Return once ``started(record)`` holds for every execution, or raise the driver's own error if it exits first.

    Raises:
        KitaruUsageError: the driver refused the request (its exit status 2: a bad selector, an unknown target...).
        KitaruRuntimeError: it failed, or did not start within ``timeout`` (the message names its log).
    """
    pending = list(exec_ids)
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        pending = [exec_id for exec_id in pending if not _has_started(service, exec_id, started)]
        if not pending:
            return
        code = driver.process.poll()
        if code is not None:
            # 0: it drove every execution to its end (or to a wait) already, too fast to be seen running
            if code != 0 and [exec_id for exec_id in pending if not _has_started(service, exec_id, started)]:
                raise _driver_error(driver, code)
            return
        if time.monotonic() > deadline:
            raise KitaruRuntimeError(
                f"the driver process (pid {driver.process.pid}) has not started within {timeout:.0f} s; see its log {driver.log}."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def continue_detached(service: Any, arguments: Sequence[str], before: Sequence[dict[str, Any]], *, label: str) -> Detached:
    """Start a driver that continues the executions ``before`` (resume, retry) and return once *it* holds them.

    Its driver ids carry a prefix of ours, so a rival that claimed an execution first is told apart from it.

    Raises:
        KitaruStateError: another driver took an execution first (a concurrent resume won); this one started nothing.
        KitaruError: the driver's own error, as :func:`wait_started` raises it.
    """
    import uuid

    prefix = f"{uuid.uuid4().hex[:12]}-"
    driver = spawn(arguments, label=label, env={**os.environ, DRIVER_PREFIX_ENV: prefix})
    for record in before:
        try:
            wait_started(driver, service, [record["exec_id"]], lambda r: str(r.get("driver_id") or "").startswith(prefix))
        except KitaruError:
            _raise_if_taken(service, record, prefix)
            raise
    return driver


def _raise_if_taken(service: Any, before: dict[str, Any], prefix: str) -> None:
    from kitaru.errors import KitaruStateError

    exec_id = before["exec_id"]
    now = service.get_execution(exec_id, with_calls=False)
    rival = str(now.get("driver_id") or "")
    if rival and not rival.startswith(prefix) and rival != before.get("driver_id"):
        raise KitaruStateError(
            f"another driver took execution {exec_id} first (it is {now['status']} now); nothing was started "
            "here: follow it with `kitaru executions get` or `logs`.",
            exec_id=exec_id,
            status=now["status"],
        ) from None


def _has_started(service: Any, exec_id: str, started: Started) -> bool:
    try:
        return started(service.get_execution(exec_id, with_calls=False))
    except KitaruNotFoundError:
        return False


def _driver_error(driver: Detached, code: int) -> KitaruError:
    """The error the driver printed (its last ``error:`` line), with the exit status telling usage from failure."""
    try:
        lines = driver.log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    message = next((line.removeprefix("error:").strip() for line in reversed(lines) if line.startswith("error:")), None)
    if message is None:
        message = f"the driver process exited with status {code} before it started; see its log {driver.log}"
    return (KitaruUsageError if code == 2 else KitaruRuntimeError)(message)
