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
from collections.abc import Callable, Sequence
from typing import Any

from kitaru.runtime._detached import START_TIMEOUT_SECONDS, spawn, wait_started

__all__ = ["Started", "start_driver"]


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

    env = driver_environment(service, resolve_settings(), server_url, api_key)
    driver = spawn([*arguments], label=f"ui-{exec_id}", env=env)
    wait_started(driver, service, [exec_id], started, timeout=timeout)
    return Started(driver.process.pid, str(driver.log), exec_id)


def driver_environment(service: Any, settings: Any, server_url: str, api_key: str | None) -> dict[str, str]:
    """This process's environment, pointed at the database this server serves."""
    env = dict(os.environ)
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
