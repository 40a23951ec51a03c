"""Detached driver processes started by the UI's actions (resume, retry, replay, input to a suspended execution).

Like the CLI, the UI runs ``python -m kitaru.runtime ...`` in a new session, so
the execution outlives the request (and the server). The driver must record
into this server's database: when that is the embedded database of the
server's ``KITARU_HOME`` it uses it directly, otherwise it reports to this
server over HTTP with the caller's key. The request returns once the driver has
taken the execution over (or exited: its ``error:`` line becomes the error).
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

from kitaru.errors import KitaruError, KitaruNotFoundError, KitaruRuntimeError, KitaruUsageError

__all__ = ["Started", "start_driver"]

START_TIMEOUT_SECONDS = 120.0  # a driver imports Kitaru and joins (or starts) Ray first


@dataclasses.dataclass(frozen=True)
class Started:
    """A driver process that took over its execution."""

    pid: int
    log: str
    exec_id: str


def start_driver(
    service: Any,
    arguments: Sequence[str],
    exec_id: str,
    started: Callable[[dict[str, Any]], bool],
    *,
    server_url: str,
    api_key: str | None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> Started:
    """Run ``python -m kitaru.runtime ARGUMENTS`` detached and return once ``started(record of exec_id)`` holds.

    Raises:
        KitaruUsageError: the driver refused to start (a bad selector, an unimportable flow...).
        KitaruRuntimeError: it failed or did not start in time (the message names its log).
    """
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    logs = Path(settings.home) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{time.strftime('%Y%m%d-%H%M%S')}-ui-{arguments[0]}-{exec_id[:40]}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "kitaru.runtime", *arguments],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=driver_environment(service, settings, server_url, api_key),
            start_new_session=True,
        )
    _wait(service, process, log, exec_id, started, timeout)
    return Started(process.pid, str(log), exec_id)


def driver_environment(service: Any, settings: Any, server_url: str, api_key: str | None) -> dict[str, str]:
    """This process's environment, pointed at the database this server serves."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if getattr(service, "database_url", None) == settings.database_url:
        for name in ("KITARU_SERVER_URL", "KITARU_API_KEY"):  # the server's own embedded database: no HTTP round trips
            env.pop(name, None)
        return env
    env["KITARU_SERVER_URL"] = server_url.rstrip("/")
    if api_key:
        env["KITARU_API_KEY"] = api_key
    else:
        env.pop("KITARU_API_KEY", None)
    return env


def _wait(
    service: Any,
    process: subprocess.Popen[bytes],
    log: Path,
    exec_id: str,
    started: Callable[[dict[str, Any]], bool],
    timeout: float,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while not _has_started(service, exec_id, started):
        code = process.poll()
        if code is not None:
            if code != 0 and not _has_started(service, exec_id, started):
                raise _driver_error(log, code)
            return  # 0: it drove the execution to its end (or a wait) before it was seen running
        if time.monotonic() > deadline:
            raise KitaruRuntimeError(
                f"the driver process (pid {process.pid}) has not started within {timeout:.0f} s; see its log {log}."
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def _has_started(service: Any, exec_id: str, started: Callable[[dict[str, Any]], bool]) -> bool:
    try:
        return started(service.get_execution(exec_id, with_calls=False))
    except KitaruNotFoundError:
        return False


def _driver_error(log: Path, code: int) -> KitaruError:
    """The driver's last ``error:`` line; exit status 2 means it refused the request (a usage error)."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        lines = []
    message = next((line.removeprefix("error:").strip() for line in reversed(lines) if line.startswith("error:")), None)
    if message is None:
        message = f"the driver process exited with status {code} before it started; see its log {log}"
    return (KitaruUsageError if code == 2 else KitaruRuntimeError)(message)
