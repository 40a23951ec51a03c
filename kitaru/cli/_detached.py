"""The CLI's side of detached drivers: start one and show progress until it has taken over."""

from __future__ import annotations

from collections.abc import Sequence

from kitaru.cli._output import progress
from kitaru.runtime import _detached
from kitaru.runtime._detached import Detached, Started, spawn

__all__ = ["spawn", "wait_started"]


def wait_started(driver: Detached, exec_ids: Sequence[str], started: Started) -> None:
    """Wait (with a progress display) until the driver holds every execution; its own error otherwise."""
    from kitaru._service import connect_service
    from kitaru.config import resolve_settings

    settings = resolve_settings()
    with progress(f"starting a driver process (pid {driver.process.pid}, log {driver.log})"):
        _detached.wait_started(driver, connect_service(settings.service_url, settings.api_key), exec_ids, started)
