"""Process exit waits for the executions this process drives, as Python waits for non-daemon threads.

A script may end right after ``.run()``. Its drivers are daemon threads (Ctrl-C must
stay able to end the process), so the interpreter would freeze them mid-call, and its
executor shutdown makes their next call fail with "cannot schedule new futures after
interpreter shutdown". Instead, a hook registered with ``threading._register_atexit``
(it runs before non-daemon threads are joined and, being registered later, before
``concurrent.futures`` shuts its executors down) says in one line per execution that
the process waits, and joins the drivers. An execution then ends or suspends on its
next wait (input later resumes it in a detached driver). Ctrl-C while waiting, or a
script that ended with Ctrl-C, abandons them instead: each lease is released at once,
so the execution reads ``interrupted`` and ``resume`` continues it; nothing is recorded
as failed because the process exits.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kitaru.runtime._driver import ExecutionDriver

__all__ = ["abandon_all", "track", "untrack"]

_lock = threading.Lock()
_drivers: dict[str, ExecutionDriver] = {}
_hooked = False


def track(driver: ExecutionDriver) -> None:
    """Make process exit wait for ``driver`` (until :func:`untrack`)."""
    global _hooked
    with _lock:
        _drivers[driver.driver_id] = driver
        if not _hooked:
            threading._register_atexit(_at_exit)  # type: ignore[attr-defined]
            _hooked = True


def untrack(driver: ExecutionDriver) -> None:
    """The driver's execution ended or suspended: exit no longer waits for it."""
    with _lock:
        _drivers.pop(driver.driver_id, None)


def _tracked() -> list[ExecutionDriver]:
    with _lock:
        return list(_drivers.values())


def _at_exit() -> None:
    drivers = _tracked()
    if not drivers:
        return
    if isinstance(getattr(sys, "last_value", None), KeyboardInterrupt):
        _abandon(drivers)
        return
    for driver in drivers:
        driver.exiting.set()
        _say(
            f"kitaru: waiting for execution {driver.exec_id} to finish or suspend on a wait "
            f"(Ctrl-C leaves it interrupted; `kitaru executions resume {driver.exec_id}` continues it)"
        )
    try:
        # Polls rather than Thread.join: a Ctrl-C landing inside join() marks a running thread as stopped (bpo-45274).
        while _tracked():
            time.sleep(0.1)
    except KeyboardInterrupt:
        _abandon(_tracked())


def abandon_all(*, cancel_tasks: bool = True) -> list[str]:
    """Leave every execution this process drives ``interrupted`` (its lease released), one line each; their ids."""
    drivers = _tracked()
    _abandon(drivers, cancel_tasks=cancel_tasks)
    return [driver.exec_id for driver in drivers]


def _abandon(drivers: list[ExecutionDriver], *, cancel_tasks: bool = True) -> None:
    for driver in drivers:
        driver.abandon(cancel_tasks=cancel_tasks)
        _say(f"kitaru: execution {driver.exec_id} left interrupted; `kitaru executions resume {driver.exec_id}` continues it")


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError):  # stderr closed at exit
        pass
