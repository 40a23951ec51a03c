"""Starting a detached driver process (``python -m kitaru.runtime ...``) and waiting until it has taken over.

The process runs in its own session (``start_new_session=True``), so closing
the terminal or ending the command does not stop it; its output goes to a log
file under ``KITARU_HOME/logs/``. The command waits only until the driver has
claimed the execution (or failed to start: its ``error:`` line becomes the
command's error), then returns.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kitaru.cli._output import progress
from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruRuntimeError, KitaruUsageError

START_TIMEOUT_SECONDS = 120.0  # a local Ray start takes seconds on a small machine; a busy one, more


@dataclasses.dataclass
class Detached:
    """A started driver process and its log file."""

    process: subprocess.Popen[bytes]
    log: Path


def spawn(arguments: Sequence[str], *, label: str) -> Detached:
    """Start ``python -m kitaru.runtime ARGUMENTS`` detached, logging to ``KITARU_HOME/logs/<time>-<action>-<label>.log``."""
    from kitaru.config import resolve_settings

    logs = Path(resolve_settings().home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-{arguments[0]}-{label}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kitaru.runtime", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=os.getcwd(),
            env=env,
            start_new_session=True,
        )
    return Detached(process, log)


def wait_started(
    driver: Detached,
    exec_ids: Sequence[str],
    started: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = START_TIMEOUT_SECONDS,
) -> None:
    """Return once ``started(record)`` holds for every execution, or raise the driver's own error if it exits first."""
    from kitaru._service import connect_service
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    service = connect_service(settings.service_url, settings.api_key)
    pending = list(exec_ids)
    deadline = time.monotonic() + timeout
    delay = 0.05
    with progress(f"starting a driver process (pid {driver.process.pid}, log {driver.log})"):
        while pending:
            pending = [exec_id for exec_id in pending if not _started(service, exec_id, started)]
            if not pending:
                return
            code = driver.process.poll()
            if code is not None:
                # 0: it drove every execution to its end (or to a wait) already, too fast to be seen running
                if code != 0 and [exec_id for exec_id in pending if not _started(service, exec_id, started)]:
                    raise _driver_error(driver, code)
                return
            if time.monotonic() > deadline:
                raise KitaruRuntimeError(
                    f"the driver process (pid {driver.process.pid}) has not started within {timeout:.0f} s; "
                    f"see its log {driver.log}."
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.25)


def _started(service: Any, exec_id: str, started: Callable[[dict[str, Any]], bool]) -> bool:
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


def claimed_by_new_driver(before: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A ``started`` test for resume and retry: a driver other than the one recorded ``before`` holds the execution."""
    return lambda record: record.get("driver_id") is not None and record.get("driver_id") != before.get("driver_id")
